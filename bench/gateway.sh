#!/usr/bin/env bash
# bench/gateway.sh: nexus as an MCP gateway in front of a stdio backend, against the two npm
# gateways that do the same job, all in front of the same backend (nxmock --stdio, its echo
# tool answered inline) and under the same load:
#   nexus        --shards 1, servers: one stdio backend (prefix: false), JSON answers
#   mcp-proxy    (punkpeye) --server stream: one shared child for every session, SSE answers
#   supergateway --outputTransport streamableHttp --stateful: one child per session, SSE answers
#                (its default stateless mode spawns and initializes a child per request)
#   nxmock       itself over Streamable HTTP, no gateway: the floor nexus adds its latency to
# Each server (and the backend processes it spawns) on CPU 0, nxload on CPU 1. Throughput:
# closed loop, CONNS connections, each in its own MCP session (initialize +
# notifications/initialized first, Mcp-Session-Id per connection through --conn-headers), one
# tools/call outstanding per connection, ROUNDS rounds interleaved over the four targets.
# Added latency of nexus over nxmock direct: at low load, so that queueing does not dominate:
# one connection closed loop (pure round trip), and LAT_CONNS connections open loop at LAT_RATE
# req/s (latency from the intended send time), nexus and nxmock direct interleaved; the added
# latency is the per-round difference (nexus - direct) of p50 and of p99.
# Prints the tables (median, min-max, ratios) and appends them with machine details to
# bench/RESULTS.md. mcp-proxy and supergateway come from bench/package.json (pinned, installed
# into bench/node_modules by scripts/deps, or here with npm ci when missing).
#
# env: ROUNDS (3), DUR seconds per throughput run (10), CONNS (32), WARMUP s per target (2),
#      LAT_DUR seconds per latency run (DUR), LAT_RATE req/s (1000), LAT_CONNS (8),
#      SMOKE=1 (one 1 s round, no RESULTS.md unless RESULTS is set), RESULTS (file to append
#      to, empty = none), NEXUS_BIN, NXLOAD_BIN, NXMOCK_BIN, SERVER_CPU (0), LOAD_CPU (1),
#      KEEP_TMP=1 (keep logs, configs and nxload outputs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

SMOKE=${SMOKE:-0}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-2}
LAT_DUR=${LAT_DUR:-$DUR}
LAT_RATE=${LAT_RATE:-1000}
LAT_CONNS=${LAT_CONNS:-8}
if [ "$SMOKE" = 1 ]; then
    ROUNDS=1 DUR=1 WARMUP=0 LAT_DUR=1
    RESULTS=${RESULTS-}
else
    RESULTS=${RESULTS-$here/RESULTS.md}
fi
PV=2025-11-25
PEERS=(mcp-proxy supergateway)
MCP_PROXY=$here/node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs
SUPERGATEWAY=$here/node_modules/supergateway/dist/index.js

nxb_require node npm taskset curl ss cmake pgrep getconf
# The peers: scripts/deps installs them; a bench run on a fresh tree installs them itself.
if [ ! -f "$MCP_PROXY" ] || [ ! -f "$SUPERGATEWAY" ]; then
    nxb_log "installing the peer gateways (bench/package-lock.json) into bench/node_modules"
    npm ci --prefix "$here" --no-audit --no-fund --loglevel=error >&2 ||
        nxb_die "npm ci in bench/ failed (run scripts/deps)"
fi
{ [ -f "$MCP_PROXY" ] && [ -f "$SUPERGATEWAY" ]; } || nxb_die "mcp-proxy or supergateway missing in bench/node_modules"
to_build=()
[ -n "${NEXUS_BIN-}" ] || to_build+=(nexus)
[ -n "${NXLOAD_BIN-}" ] || to_build+=(nxload)
[ -n "${NXMOCK_BIN-}" ] || to_build+=(nxmock)
[ ${#to_build[@]} -eq 0 ] || nxb_build "$root" "${to_build[@]}"
NEXUS_BIN=${NEXUS_BIN:-$root/build/nexus}
NXLOAD_BIN=${NXLOAD_BIN:-$root/build/nxload}
NXMOCK_BIN=${NXMOCK_BIN:-$root/build/nxmock}
for b in "$NEXUS_BIN" "$NXLOAD_BIN" "$NXMOCK_BIN"; do [ -x "$b" ] || nxb_die "$b not found"; done

# This script and what it forks (curl, awk, the /proc readers) stay off the server CPU (the
# CPU set is given back before the machine details, which count CPUs with nproc).
all_cpus=$(taskset -cp $$ | awk -F': ' '{print $2}')
taskset -cp "$NXB_LOAD_CPU" $$ >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tree_state=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if git -C "$root" status --porcelain --untracked-files=no -- engine net include resilience bench 2>/dev/null | grep -q .; then
    tree_state="$tree_state with uncommitted changes"
fi
tmp=$(mktemp -d /tmp/nx-gateway.XXXXXX)
declare -A pid=() url=() failed=()
ok=0

# ---- processes: each target and what it spawned, stopped by PID only ----

# stop_target NAME: SIGTERM (then SIGKILL) to the target, then SIGKILL to any backend process
# it spawned that outlived it (only nxmock processes found under it before the stop).
stop_target() {
    local p=${pid[$1]-} kids k
    [ -n "$p" ] || return 0
    kids=$(nxb_tree_pids "$p" | tail -n +2 || true)
    nxb_stop "$p"
    for k in $kids; do
        if grep -qa nxmock "/proc/$k/cmdline" 2>/dev/null; then
            nxb_log "$1: backend pid $k outlived its gateway: SIGKILL"
            kill -KILL "$k" 2>/dev/null || true
        fi
    done
    pid[$1]=""
}

cleanup() {
    local t
    for t in nexus mcp-proxy supergateway direct; do stop_target "$t"; done
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$ok" != 1 ]; then
        nxb_log "logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the four targets, every one on the server CPU, listening on 127.0.0.1 only ----

nx_rest=$(nxb_free_port)
nx_port=$(nxb_free_port)
mp_port=$(nxb_free_port)
sg_port=$(nxb_free_port)
nm_rest=$(nxb_free_port)
nm_port=$(nxb_free_port)
url[nexus]=http://127.0.0.1:$nx_port/mcp
url[mcp-proxy]=http://127.0.0.1:$mp_port/mcp
url[supergateway]=http://127.0.0.1:$sg_port/mcp
url[direct]=http://127.0.0.1:$nm_port/mcp
declare -A port=([nexus]=$nx_port [mcp-proxy]=$mp_port [supergateway]=$sg_port [direct]=$nm_port)

# nexus: the backend with default resilience settings (retries, breaker), a bulkhead no lower
# than the connection count so that the run measures the call path, not admission.
bulkhead=$((CONNS > 100 ? CONNS : 100))
cat >"$tmp/nexus.yaml" <<EOF
servers:
  - name: mock
    transport: stdio
    command: "$NXMOCK_BIN"
    args: ["--stdio", "--log-level", "warn"]
    prefix: false
    bulkhead: {max_concurrent: $bulkhead}
EOF
"${NXB_PIN_SERVER[@]}" "$NEXUS_BIN" --config "$tmp/nexus.yaml" --port "$nx_rest" --mcp-port "$nx_port" \
    --shards 1 --log-level warn --set mcp.max_sessions=100000 >"$tmp/nexus.log" 2>&1 &
pid[nexus]=$!

# mcp-proxy: Streamable HTTP only, on loopback, without the resumability event store (nothing
# here resumes a stream; it would only cost the proxy memory and time).
"${NXB_PIN_SERVER[@]}" node "$MCP_PROXY" --host 127.0.0.1 --port "$mp_port" --server stream \
    --no-eventStore -- "$NXMOCK_BIN" --stdio --log-level warn >"$tmp/mcp-proxy.log" 2>&1 &
pid[mcp-proxy]=$!

# supergateway has no listen-address flag and binds every interface: a preload pins it to
# loopback. Its per-message info logging is turned off (it would log every answer).
cat >"$tmp/loopback.cjs" <<'EOF'
const net = require('node:net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || typeof args[0] === 'string') args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
EOF
printf -v sg_cmd '%q --stdio --log-level warn' "$NXMOCK_BIN"
"${NXB_PIN_SERVER[@]}" node --require "$tmp/loopback.cjs" "$SUPERGATEWAY" --stdio "$sg_cmd" \
    --outputTransport streamableHttp --stateful --port "$sg_port" --logLevel none \
    >"$tmp/supergateway.log" 2>&1 &
pid[supergateway]=$!

# nxmock serving Streamable HTTP itself.
"${NXB_PIN_SERVER[@]}" "$NXMOCK_BIN" --port "$nm_rest" --mcp-port "$nm_port" --shards 1 \
    --log-level warn --set mcp.max_sessions=100000 >"$tmp/direct.log" 2>&1 &
pid[direct]=$!

# peer_fail NAME WHY: a peer that cannot do the job is reported, not measured.
peer_fail() {
    nxb_log "$1 cannot be measured: $2 (log: $(tail -n 5 "$tmp/$1.log" 2>/dev/null | tr '\n' ' '))"
    failed[$1]=$2
    stop_target "$1"
}

listening() { ss -Htln "sport = :$1" | grep -q .; }
for _ in $(seq 1 150); do
    all=1
    for t in nexus mcp-proxy supergateway direct; do
        [ -n "${pid[$t]}" ] || continue
        listening "${port[$t]}" || all=0
        kill -0 "${pid[$t]}" 2>/dev/null || all=0
    done
    [ "$all" = 1 ] && break
    sleep 0.1
done
for t in nexus direct; do
    { kill -0 "${pid[$t]}" 2>/dev/null && listening "${port[$t]}"; } ||
        nxb_die "$t did not start: $(tail -n 5 "$tmp/$t.log")"
done
for t in "${PEERS[@]}"; do
    if ! kill -0 "${pid[$t]}" 2>/dev/null; then
        peer_fail "$t" "exited at start"
    elif ! listening "${port[$t]}"; then
        peer_fail "$t" "did not listen within 15 s"
    fi
done
# nexus answers /health before its backend is up: wait until the backend lists its tools.
for _ in $(seq 1 100); do
    curl -fsS --max-time 2 "http://127.0.0.1:$nx_rest/health" 2>/dev/null |
        grep -q '"mock":{[^}]*"state":"ready","tools":[1-9]' && break
    sleep 0.1
done

# ---- sessions and the request ----

# call NAME TOOL ARGS_JSON: one tools/call in the target's first session; prints the body.
call() {
    local sid
    sid=$(head -n 1 "$tmp/$1.sessions" | cut -d' ' -f2)
    curl -fsS --max-time 10 -X POST "${url[$1]}" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $sid" \
        -H "MCP-Protocol-Version: $PV" \
        -d '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"'"$2"'","arguments":'"$3"'}}'
}

printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from nxload"}}}' \
    >"$tmp/body"

# prepare NAME: one session per connection (the SDK-based peers map request ids to streams
# per session, so connections must not share one), and a check that echo answers.
prepare() {
    local t=$1 sid
    : >"$tmp/$t.sessions"
    for _ in $(seq 1 "$CONNS"); do
        sid=$(nxb_mcp_session "${url[$t]}" "$PV") || return 1
        echo "Mcp-Session-Id: $sid" >>"$tmp/$t.sessions"
    done
    call "$t" echo '{"message":"hello from nxload"}' >"$tmp/$t.sample" || return 1
    grep -q '"text":"hello from nxload"' "$tmp/$t.sample" || return 1
    : >"$tmp/ok2xx.$t"
}
for t in nexus direct; do
    prepare "$t" || nxb_die "$t: initialize or tools/call echo failed: $(cat "$tmp/$t.sample" 2>/dev/null); logs in $tmp"
done
for t in "${PEERS[@]}"; do
    [ -z "${failed[$t]-}" ] || continue
    prepare "$t" || peer_fail "$t" "initialize or tools/call echo failed: $(head -c 300 "$tmp/$t.sample" 2>/dev/null)"
done
for t in nexus "${PEERS[@]}" direct; do
    [ -z "${failed[$t]-}" ] || continue
    nxb_log "$t answers: $(head -c 200 "$tmp/$t.sample" | tr '\n' ' ')"
done
sg_children=""
if [ -z "${failed[supergateway]-}" ]; then
    sg_children=0
    for k in $(nxb_tree_pids "${pid[supergateway]}"); do
        if [ "$(cat "/proc/$k/comm" 2>/dev/null)" = nxmock ]; then sg_children=$((sg_children + 1)); fi
    done
    nxb_log "supergateway runs $sg_children nxmock processes for $CONNS sessions"
fi

# ---- load ----

# nxload_run NAME CONNS SECONDS OUT [nxload options]: the echo load from the load CPU.
nxload_run() {
    local t=$1 c=$2 secs=$3 out=$4
    shift 4
    "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c "$c" -d "${secs}s" --timeout 5000 --json \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H "MCP-Protocol-Version: $PV" --conn-headers "$tmp/$t.sessions" \
        --body-file "$tmp/body" "$@" "${url[$t]}" >"$out" 2>"$out.err"
}

# parse OUT: "requests req/s p50 p99 errors 2xx" (errors: transport errors and non-2xx).
parse() {
    local f=$1 errs
    errs=$(grep -o '"errors":{[^}]*}' "$f" | grep -o ':[0-9]*' | tr -d : | awk '{s += $1} END {print s + 0}')
    errs=$((errs + $(nxb_json_num "$f" 4xx) + $(nxb_json_num "$f" 5xx)))
    echo "$(nxb_json_num "$f" requests) $(nxb_json_num "$f" req_per_s) $(nxb_json_num "$f" p50)" \
        "$(nxb_json_num "$f" p99) $errs $(nxb_json_num "$f" 2xx)"
}

# measure NAME KEY ROUND CONNS SECONDS [nxload options]: one recorded run; appends
# "req/s p50 p99 cpu_us_per_req errors" to res.KEY.NAME. A peer that fails is dropped.
measure() {
    local t=$1 key=$2 round=$3 c=$4 secs=$5 out t0 t1 req rps p50 p99 errs ok2 cpu other
    local c0_busy c0_all c1_busy c1_all o d pct busy_others
    shift 5
    [ -z "${failed[$t]-}" ] || return 0
    if ! kill -0 "${pid[$t]}" 2>/dev/null; then
        case "$t" in nexus | direct) nxb_die "$t died; logs in $tmp" ;; esac
        peer_fail "$t" "died before round $round ($key)"
        return 0
    fi
    out=$tmp/run.$key.$t.$round
    read -r c0_busy c0_all <<<"$(nxb_cpu_ticks "$NXB_SERVER_CPU")"
    declare -A idle0=()
    for o in "${targets[@]}"; do
        if [ "$o" != "$t" ] && [ -n "${pid[$o]-}" ]; then idle0[$o]=$(nxb_tree_ticks "${pid[$o]}"); fi
    done
    t0=$(nxb_tree_ticks "${pid[$t]}")
    if ! nxload_run "$t" "$c" "$secs" "$out" "$@"; then
        case "$t" in nexus | direct) nxb_die "$t: nxload failed: $(tail -n 3 "$out" "$out.err")" ;; esac
        peer_fail "$t" "no successful answer in round $round ($key): $(tail -c 300 "$out")"
        return 0
    fi
    t1=$(nxb_tree_ticks "${pid[$t]}")
    read -r c1_busy c1_all <<<"$(nxb_cpu_ticks "$NXB_SERVER_CPU")"
    # The other targets should be idle meanwhile: name any that was not.
    busy_others=""
    for o in "${!idle0[@]}"; do
        [ -n "${pid[$o]-}" ] || continue
        d=$(($(nxb_tree_ticks "${pid[$o]}") - ${idle0[$o]}))
        pct=$(awk -v d="$d" -v a=$((c1_all - c0_all)) \
            'BEGIN {printf "%.0f", (a > 0 ? d * 100 / a : 0)}')
        [ "$pct" -lt 2 ] || busy_others="$busy_others $o ${pct}%"
    done
    # What the server CPU spent on anything but this target (other processes on a shared box).
    other=$(awk -v b=$((c1_busy - c0_busy)) -v a=$((c1_all - c0_all)) -v own=$((t1 - t0)) \
        'BEGIN {o = a > 0 ? (b - own) * 100 / a : 0; printf "%.0f", (o < 0 ? 0 : o)}')
    read -r req rps p50 p99 errs ok2 <<<"$(parse "$out")"
    { [ -n "$req" ] && [ "$req" != 0 ]; } || nxb_die "$t: no requests ($out)"
    echo "$ok2" >>"$tmp/ok2xx.$t"
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$NXB_CLK_TCK" -v n="$req" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
    echo "$rps $p50 $p99 $cpu $errs $other" >>"$tmp/res.$key.$t"
    nxb_log "round $round $key $t: $rps req/s, p50 ${p50}us, p99 ${p99}us, ${cpu}us CPU/req, $errs errors, other work on CPU $NXB_SERVER_CPU ${other}%${busy_others:+ (of which idle targets:$busy_others)}"
}

targets=(nexus "${PEERS[@]}" direct)
if [ "$WARMUP" != 0 ]; then
    nxb_log "warming up every target (${WARMUP}s each, not recorded)"
    for t in "${targets[@]}"; do
        [ -z "${failed[$t]-}" ] || continue
        nxload_run "$t" "$CONNS" "$WARMUP" "$tmp/warmup.$t" || true
        if [ -s "$tmp/warmup.$t" ]; then parse "$tmp/warmup.$t" | awk '{print $6}' >>"$tmp/ok2xx.$t"; fi
    done
fi
thr_key=c$CONNS
lat1_key=c1
latr_key=r$LAT_RATE
for round in $(seq 1 "$ROUNDS"); do
    for t in "${targets[@]}"; do measure "$t" "$thr_key" "$round" "$CONNS" "$DUR"; done
done
for round in $(seq 1 "$ROUNDS"); do
    for t in nexus direct; do measure "$t" "$lat1_key" "$round" 1 "$LAT_DUR"; done
    for t in nexus direct; do measure "$t" "$latr_key" "$round" "$LAT_CONNS" "$LAT_DUR" -R "$LAT_RATE"; done
done

# ---- after the load: every target still answers; what the backends saw ----

backend_line=""
for t in "${targets[@]}"; do
    [ -z "${failed[$t]-}" ] || continue
    answered=$(awk '{s += $1} END {print s + 0}' "$tmp/ok2xx.$t")
    if ! call "$t" echo '{"message":"still here"}' | grep -q '"text":"still here"'; then
        nxb_log "warning: $t no longer answers tools/call echo after the load"
        backend_line="$backend_line $t: NO LONGER ANSWERS after the load;"
    fi
    [ "$t" = supergateway ] && continue # a child per session: no one count to compare with
    echoes=$(call "$t" stats '{}' | grep -o 'echo[\\"]*:[0-9]*' | head -n 1 | grep -o '[0-9]*$' || true)
    backend_line="$backend_line $t: ${echoes:-?} echo calls reached nxmock for $answered HTTP 2xx answers;"
done
health=$(curl -fsS --max-time 5 "http://127.0.0.1:$nx_rest/health" | sed 's/.*"backends"://' |
    grep -o '"\(state\|restarts\|calls\|failures\|retries\|rejected\|in_flight\)":[^,]*' |
    head -n 7 | tr '\n' ' ' || true)
nxb_log "backends:$backend_line"
nxb_log "nexus /health: $health"

# ---- tables (the helpers are nxb_cell, nxb_median and nxb_ratio of lib.sh) ----

peer_label() {
    if [ -n "${failed[$1]-}" ]; then echo "$1 (failed: ${failed[$1]})"; else echo "$1"; fi
}
table=$tmp/table.md
{
    echo "| tools/call echo, $CONNS connections (a session each) | nexus | mcp-proxy | supergateway | nxmock direct | nexus/mcp-proxy | nexus/supergateway | nexus/direct |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    names=("req/s" "p50 µs" "p99 µs" "CPU µs/req (gateway + backends)" "errors")
    for f in 1 2 3 4 5; do
        fmt=%.0f
        [ "$f" = 4 ] && fmt=%.1f
        row="| ${names[$((f - 1))]}"
        for t in "${targets[@]}"; do row="$row | $(nxb_cell "$tmp/res.$thr_key.$t" "$f" "$fmt")"; done
        a=$(nxb_median "$tmp/res.$thr_key.nexus" "$f")
        for t in "${PEERS[@]}" direct; do
            if [ "$f" = 5 ]; then row="$row | "; else row="$row | $(nxb_ratio "$a" "$(nxb_median "$tmp/res.$thr_key.$t" "$f")")"; fi
        done
        echo "$row |"
    done
} >"$table"

# The better peer: the higher median req/s.
best="" best_rps=0
for t in "${PEERS[@]}"; do
    r=$(nxb_median "$tmp/res.$thr_key.$t" 1)
    [ -n "$r" ] || continue
    if awk -v a="$r" -v b="$best_rps" 'BEGIN {exit !(a > b)}'; then
        best=$t best_rps=$r
    fi
done
if [ -n "$best" ]; then
    rps_x=$(nxb_ratio "$(nxb_median "$tmp/res.$thr_key.nexus" 1)" "$best_rps")
    p99_x=$(nxb_ratio "$(nxb_median "$tmp/res.$thr_key.nexus" 3)" "$(nxb_median "$tmp/res.$thr_key.$best" 3)")
    verdict=$(awk -v r="${rps_x%×}" -v p="${p99_x%×}" 'BEGIN {
        printf "req/s goal (≥ 10×) %s, p99 goal (≤ 0.1×) %s", (r >= 10 ? "met" : "NOT met"), (p <= 0.1 ? "met" : "NOT met") }')
    summary="nexus vs the better peer ($best): req/s $rps_x, p99 $p99_x — $verdict"
else
    summary="no peer could be measured"
fi

# Added latency: per round, nexus minus direct (the two runs of a round are adjacent).
lat_table=$tmp/lat.md
added() { # KEY FIELD: per-round differences nexus - direct, one per line
    paste -d' ' <(awk -v f="$2" '{print $f}' "$tmp/res.$1.nexus") <(awk -v f="$2" '{print $f}' "$tmp/res.$1.direct") |
        awk '{print $1 - $2}'
}
{
    echo "| latency, tools/call echo | nexus → stdio nxmock | nxmock direct (HTTP) | added by nexus (per-round difference) |"
    echo "|---|---:|---:|---:|"
    for key in "$lat1_key" "$latr_key"; do
        if [ "$key" = "$lat1_key" ]; then label="1 connection, closed loop"; else label="$LAT_CONNS connections, open loop $LAT_RATE req/s"; fi
        for f in 2 3; do
            [ "$f" = 2 ] && pn=p50 || pn=p99
            added "$key" "$f" >"$tmp/added.$key.$f"
            printf '| %s: %s µs | %s | %s | %s |\n' "$label" "$pn" "$(nxb_cell "$tmp/res.$key.nexus" "$f" %.1f)" \
                "$(nxb_cell "$tmp/res.$key.direct" "$f" %.1f)" "$(nxb_cell "$tmp/added.$key.$f" 1 %.1f)"
        done
        printf '| %s: req/s | %s | %s | |\n' "$label" "$(nxb_cell "$tmp/res.$key.nexus" 1)" "$(nxb_cell "$tmp/res.$key.direct" 1)"
    done
} >"$lat_table"

# Other work on the server CPU during the recorded runs: a noisy neighbour shows here.
other_all=$tmp/other.all
cat "$tmp"/res.*.* 2>/dev/null | awk '{print $6}' >"$other_all"
read -r om olo ohi <<<"$(nxb_file_stats "$other_all" 1)"
other_line="CPU $NXB_SERVER_CPU time taken by processes other than the target during the recorded runs: median ${om}%, min ${olo}%, max ${ohi}%; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
cat "$table"
echo
echo "$summary"
echo
cat "$lat_table"
echo
echo "backends:$backend_line"
echo "$other_line"
for t in "${PEERS[@]}"; do [ -z "${failed[$t]-}" ] || peer_label "$t"; done

if [ -n "$RESULTS" ]; then
    taskset -cp "$all_cpus" $$ >/dev/null
    mp_v=$(node -p "require('$here/node_modules/mcp-proxy/package.json').version")
    sg_v=$(node -p "require('$here/node_modules/supergateway/package.json').version")
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M') UTC — MCP gateway → stdio backend: nexus vs mcp-proxy, supergateway (\`bench/gateway.sh\`)"
        echo
        echo "- nexus, nxmock and nxload built (\`$(basename "$(dirname "$NEXUS_BIN")")\`) from the tree at $tree_state"
        echo "- the same backend behind every gateway: \`nxmock --stdio\` (echo answered inline); nexus \`--shards 1\`, one \`servers:\` stdio entry (\`prefix: false\`, default retry/breaker, JSON answers); mcp-proxy $mp_v \`--server stream --no-eventStore\` (one shared child, SSE answers); supergateway $sg_v \`--outputTransport streamableHttp --stateful\` (a child per session: ${sg_children:-?} nxmock processes for $CONNS sessions; SSE answers); node $(node --version); and nxmock serving Streamable HTTP itself (\`--shards 1\`, JSON answers)"
        echo "- every server and the backends it spawns on CPU $NXB_SERVER_CPU, nxload on CPU $NXB_LOAD_CPU; throughput: $ROUNDS interleaved rounds of ${DUR}s, closed loop, $CONNS connections each in its own session (initialize + initialized first), one request outstanding per connection; CPU/req = utime+stime of the gateway and its backend processes ÷ requests"
        echo "- added latency: $ROUNDS interleaved rounds of ${LAT_DUR}s of nexus and nxmock direct at 1 connection (closed loop) and at $LAT_CONNS connections open loop $LAT_RATE req/s (latency from the intended send time); added = nexus − direct per round; the open loop leaves CPU $NXB_SERVER_CPU idle between requests, so its p99 carries this VM's wake-up tails (milliseconds, for nxmock direct too): the 1-connection rows are the steadier measure of what nexus adds"
        echo "- load average (1/5/15 min) before the run: $load_before"
        echo
        cat "$table"
        echo
        echo "$summary"
        echo
        cat "$lat_table"
        echo
        echo "- after the load (answers are counted by nxload; the echo calls by nxmock's stats tool, which also counts the checks and the requests in flight when each run stopped):$backend_line"
        echo "- nexus /health: \`$health\`"
        echo "- $other_line"
        for t in "${PEERS[@]}"; do [ -z "${failed[$t]-}" ] || echo "- $(peer_label "$t")"; done
        nxb_machine_md "$root"
    } >>"$RESULTS"
    nxb_log "appended to $RESULTS"
fi
ok=1
