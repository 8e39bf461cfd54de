#!/usr/bin/env bash
# bench/plaintext.sh: nexus (--shards 1) vs NGINX (1 worker, return 200) on GET /plaintext, both
# on CPU 0, load from CPU 1 (wrk and nxload, plain and pipelined), rounds interleaved; prints the
# table (median, min-max, ratio) and appends it with machine details to bench/RESULTS.md.
#
# env: ROUNDS (3), DUR seconds per run (10), CONNS (64), DEPTH pipelined rows (16), WARMUP s (2),
#      SMOKE=1 (one 1 s round, no RESULTS.md unless RESULTS is set), RESULTS (file to append to,
#      empty = none), NEXUS_BIN, NXLOAD_BIN, SUBJECT=nginx (a 2nd NGINX in nexus's place: tests
#      this script), SERVER_CPU (0), LOAD_CPU (1), KEEP_TMP=1 (keep logs and configs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

SMOKE=${SMOKE:-0}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-16}
WARMUP=${WARMUP:-2}
SUBJECT=${SUBJECT:-nexus}
if [ "$SMOKE" = 1 ]; then
    ROUNDS=1 DUR=1 WARMUP=0
    RESULTS=${RESULTS-}
else
    RESULTS=${RESULTS-$here/RESULTS.md}
fi
case "$SUBJECT" in nexus | nginx) ;; *) nxb_die "SUBJECT must be nexus or nginx" ;; esac
[ "$SUBJECT" = nginx ] && RESULTS=${RESULTS_SELFTEST-} # a self-test is not a result

nxb_require wrk nginx taskset curl ss cmake pgrep getconf
if [ "$SUBJECT" = nexus ] && [ -z "${NEXUS_BIN-}" ]; then nxb_build "$root" nexus nxload; fi
if [ -z "${NXLOAD_BIN-}" ]; then nxb_build "$root" nxload; fi
NEXUS_BIN=${NEXUS_BIN:-$root/build/nexus}
NXLOAD_BIN=${NXLOAD_BIN:-$root/build/nxload}
[ -x "$NXLOAD_BIN" ] || nxb_die "nxload not found at $NXLOAD_BIN"
[ "$SUBJECT" = nginx ] || [ -x "$NEXUS_BIN" ] || nxb_die "nexus not found at $NEXUS_BIN"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d /tmp/nx-plaintext.XXXXXX)
chmod 755 "$tmp"
a_pid="" b_pid="" ok=0
cleanup() {
    nxb_stop "$a_pid"
    nxb_stop "$b_pid"
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$ok" != 1 ]; then
        nxb_log "logs and configs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers: A = nexus (or a 2nd NGINX with SUBJECT=nginx), B = NGINX ----

start_nginx() { # NAME PORT: starts NGINX pinned to the server CPU; sets started_pid
    local dir=$tmp/$1
    mkdir -p "$dir"
    nxb_nginx_conf "$here/nginx-plaintext.conf.in" "$dir/nginx.conf" "$2" "$dir"
    "${NXB_PIN_SERVER[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' >"$dir/stderr.log" 2>&1 &
    started_pid=$!
}

a_port=$(nxb_free_port)
b_port=$(nxb_free_port)
a_name=nexus
ring_mode=n/a
if [ "$SUBJECT" = nexus ]; then
    mcp_port=$(nxb_free_port)
    "${NXB_PIN_SERVER[@]}" "$NEXUS_BIN" --port "$a_port" --mcp-port "$mcp_port" --shards 1 \
        >"$tmp/nexus.stdout" 2>"$tmp/nexus.log" &
    a_pid=$!
else
    a_name=nginx-A
    start_nginx nginx-a "$a_port"
    a_pid=$started_pid
fi
start_nginx nginx-b "$b_port"
b_pid=$started_pid

a_url=http://127.0.0.1:$a_port/plaintext
b_url=http://127.0.0.1:$b_port/plaintext
nxb_wait_http "$a_url" "$a_pid" 15 || {
    tail -n 20 "$tmp/nexus.log" "$tmp"/nginx-a/*.log 2>/dev/null >&2 || true
    nxb_die "$a_name did not answer $a_url"
}
nxb_wait_http "$b_url" "$b_pid" 15 || {
    tail -n 20 "$tmp"/nginx-b/*.log >&2 || true
    nxb_die "nginx did not answer $b_url"
}

if [ "$SUBJECT" = nexus ]; then
    # the ring mode from the startup log line, else from /health
    ring_mode=$(grep -o '"ring_mode":"[a-z_]*"' "$tmp/nexus.log" | head -n 1 | cut -d'"' -f4 || true)
    if [ -z "$ring_mode" ]; then
        ring_mode=$(curl -fsS --max-time 2 "http://127.0.0.1:$a_port/health" 2>/dev/null |
            grep -o '"ring_mode":"[a-z_]*"' | head -n 1 | cut -d'"' -f4 || true)
    fi
    if [ -z "$ring_mode" ]; then # "... ring defer_taskrun" in the startup message
        ring_mode=$(grep -o 'ring [a-z_]*' "$tmp/nexus.log" | head -n 1 | cut -d' ' -f2 || true)
    fi
    ring_mode=${ring_mode:-unknown}
fi

# Same bytes on the wire? Record both responses (Date aside) next to the numbers.
curl -fsS -D "$tmp/a.headers" -o "$tmp/a.body" "$a_url"
curl -fsS -D "$tmp/b.headers" -o "$tmp/b.body" "$b_url"
cmp -s "$tmp/a.body" "$tmp/b.body" || nxb_log "warning: $a_name and nginx bodies differ"
header_names() { tr -d '\r' <"$1" | sed -n '2,$p' | cut -d: -f1 | grep . | paste -sd, -; }
a_headers=$(header_names "$tmp/a.headers")
b_headers=$(header_names "$tmp/b.headers")
a_bytes=$(($(wc -c <"$tmp/a.headers") + $(wc -c <"$tmp/a.body")))
b_bytes=$(($(wc -c <"$tmp/b.headers") + $(wc -c <"$tmp/b.body")))
nxb_log "$a_name response: $a_bytes bytes ($a_headers); nginx: $b_bytes bytes ($b_headers)"

nxb_pipeline_lua "$tmp/pipeline.lua" "$DEPTH"

# ---- runs ----

# Row ids and their labels; every row runs against both servers in each round.
rows=(wrk nxload wrk_pipe nxload_pipe)
declare -A row_label=(
    [wrk]="wrk -c$CONNS"
    [nxload]="nxload -c$CONNS"
    [wrk_pipe]="wrk -c$CONNS pipelined $DEPTH"
    [nxload_pipe]="nxload -c$CONNS -p$DEPTH"
)

run_load() { # ROW URL SECONDS OUTFILE
    local row=$1 url=$2 secs=$3 out=$4
    case "$row" in
    wrk) "${NXB_PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${secs}s" --latency "$url" >"$out" ;;
    wrk_pipe) "${NXB_PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${secs}s" --latency -s "$tmp/pipeline.lua" "$url" >"$out" ;;
    nxload) "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c "$CONNS" -d "${secs}s" --json "$url" >"$out" ;;
    nxload_pipe) "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c "$CONNS" -p "$DEPTH" -d "${secs}s" --json "$url" >"$out" ;;
    esac
}

measure() { # ROW SERVER(a|b) ROUND: one recorded run; appends "rps p99_us cpu_us_per_req errors"
    local row=$1 srv=$2 round=$3 pid url out t0 t1 parsed req rps p99 errs cpu busy
    if [ "$srv" = a ]; then pid=$a_pid url=$a_url; else pid=$b_pid url=$b_url; fi
    kill -0 "$pid" 2>/dev/null || nxb_die "server $srv (pid $pid) died; logs in $tmp"
    out=$tmp/run.$row.$srv.$round
    t0=$(nxb_pid_ticks "$pid")
    run_load "$row" "$url" "$DUR" "$out" || nxb_die "$row against $srv failed: $(tail -n 3 "$out")"
    t1=$(nxb_pid_ticks "$pid")
    case "$row" in
    wrk*) parsed=$(nxb_parse_wrk "$out") ;;
    *) parsed=$(nxb_parse_nxload "$out") ;;
    esac
    read -r req rps p99 errs <<<"$parsed"
    if [ -z "$req" ] || [ "$req" = 0 ]; then nxb_die "$row against $srv: no requests ($out)"; fi
    # CPU per request, and how busy the server was: well below 100% means the load generator
    # (or a noisy neighbour), not the server, set the pace of this run
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$NXB_CLK_TCK" -v n="$req" 'BEGIN {printf "%.3f", d * 1e6 / hz / n}')
    busy=$(awk -v d=$((t1 - t0)) -v hz="$NXB_CLK_TCK" -v s="$DUR" 'BEGIN {printf "%.1f", d * 100 / hz / s}')
    echo "$rps $p99 $cpu $errs $busy" >>"$tmp/res.$row.$srv"
    nxb_log "round $round ${row_label[$row]} $([ "$srv" = a ] && echo "$a_name" || echo nginx):" \
        "$rps req/s, p99 ${p99}us, ${cpu}us CPU/req (${busy}% busy), $errs errors"
}

if [ "$WARMUP" != 0 ]; then
    nxb_log "warming up both servers (${WARMUP}s each, not recorded)"
    run_load nxload "$a_url" "$WARMUP" /dev/null
    run_load nxload "$b_url" "$WARMUP" /dev/null
fi
for round in $(seq 1 "$ROUNDS"); do
    for row in "${rows[@]}"; do
        measure "$row" a "$round"
        measure "$row" b "$round"
    done
done

# ---- table ----

col() { # ROW SERVER FIELD(1=rps 2=p99 3=cpu 4=errors 5=busy): the values of one column
    awk -v f="$3" '{print $f}' "$tmp/res.$1.$2"
}
fmt_cell() { # MEDIAN MIN MAX DECIMALS
    awk -v m="$1" -v lo="$2" -v hi="$3" -v d="$4" 'BEGIN {f = "%." d "f"; printf f " (" f "–" f ")", m, lo, hi}'
}
table=$tmp/table.md
metric_field=(1 2 3 5)
metric_name=("req/s" "p99 µs" "server CPU µs/req" "server CPU busy %")
metric_dec=(0 0 2 0)
{
    echo "| row | $a_name median (min–max) | nginx median (min–max) | ratio $a_name/nginx |"
    echo "|---|---:|---:|---:|"
    for row in "${rows[@]}"; do
        for i in "${!metric_field[@]}"; do
            if [ "$row" = wrk_pipe ] && [ "${metric_field[$i]}" = 2 ]; then
                echo "| ${row_label[$row]}: ${metric_name[$i]} | n/a | n/a | wrk does not time pipelined requests |"
                continue
            fi
            mapfile -t av < <(col "$row" a "${metric_field[$i]}")
            mapfile -t bv < <(col "$row" b "${metric_field[$i]}")
            read -r am alo ahi <<<"$(nxb_stats "${av[@]}")"
            read -r bm blo bhi <<<"$(nxb_stats "${bv[@]}")"
            ratio=$(awk -v a="$am" -v b="$bm" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "n/a"}')
            echo "| ${row_label[$row]}: ${metric_name[$i]} |" \
                "$(fmt_cell "$am" "$alo" "$ahi" "${metric_dec[$i]}") |" \
                "$(fmt_cell "$bm" "$blo" "$bhi" "${metric_dec[$i]}") | $ratio |"
        done
    done
} >"$table"
# A row where the server was not saturated measured the load generator, not the server.
notes=$tmp/notes.md
: >"$notes"
for row in "${rows[@]}"; do
    for srv in a b; do
        mapfile -t v < <(col "$row" "$srv" 5)
        read -r busy_med _ <<<"$(nxb_stats "${v[@]}")"
        if awk -v b="$busy_med" 'BEGIN {exit !(b < 85)}'; then
            name=nginx
            [ "$srv" = a ] && name=$a_name
            echo "- ${row_label[$row]}: $name was only ${busy_med}% busy (median): that row's pace was set by the load generator or other load on the machine, not by $name" >>"$notes"
        fi
    done
done
a_errs=$(cat "$tmp"/res.*.a | awk '{s += $4} END {print s + 0}')
b_errs=$(cat "$tmp"/res.*.b | awk '{s += $4} END {print s + 0}')

echo
echo "plaintext: $ROUNDS round(s) x ${DUR}s, $CONNS connections, interleaved $a_name/nginx, ring mode $ring_mode"
cat "$table"
cat "$notes"
echo "errors (all runs): $a_name $a_errs, nginx $b_errs"

if [ -n "$RESULTS" ]; then
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — plaintext, $ROUNDS rounds × ${DUR}s"
        echo
        nxb_machine_md "$root"
        echo "- nexus \`--shards 1\`, ring mode \`$ring_mode\`; NGINX 1 worker \`return 200\`; both on CPU $NXB_SERVER_CPU; load \`wrk -t1 -c$CONNS\` and \`nxload -c$CONNS\` on CPU $NXB_LOAD_CPU, keep-alive, rounds interleaved"
        echo "- responses: $a_name $a_bytes bytes ($a_headers); nginx $b_bytes bytes ($b_headers)"
        echo "- load average (1/5/15 min) before the run: $load_before; above ~0.2 means other work shared these 2 CPUs"
        echo "- errors over all runs: $a_name $a_errs, nginx $b_errs; CPU/req = server utime+stime over the run ÷ requests"
        echo
        cat "$table"
        if [ -s "$notes" ]; then
            echo
            cat "$notes"
        fi
    } >>"$RESULTS"
    nxb_log "appended to $RESULTS"
fi
ok=1
