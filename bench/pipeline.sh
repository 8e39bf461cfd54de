#!/usr/bin/env bash
# bench/pipeline.sh: what workflows and the tool cache cost and save, nexus (release build,
# --shards 1) against itself, every nexus on the server CPU, nxload on the load CPU, rounds
# interleaved, medians with min-max. The nxmock backend of part B runs beside nexus on the
# server CPU; that of part A on the load CPU by default (BACKEND_CPU, below).
#
# A. Fan-out overhead. One nexus with one stdio backend `mock` (nxmock --stdio, one instance)
#    and two workflows:
#      fan8  one parallel step of 8 mock.echo branches: b1..b7 with latency_ms FAST_MS (1) and
#            b8, the slowest and the last one started, with latency_ms SLOW_MS (5)
#      one   a single call step: mock.echo with b8's arguments
#    and the slowest branch alone through nexus's REST tool route: POST /tools/mock__echo with
#    b8's arguments. Beside them, a second nxmock serving Streamable HTTP on its own (also on
#    the server CPU) gives the backend's side without nexus: direct8, the same 8 calls sent to
#    it as one JSON-RPC batch (protocol 2025-03-26, answered when all 8 are), and direct1, b8
#    alone. 1 connection, closed loop (a pure round trip, no queueing), FAN_ROUNDS interleaved
#    rounds. Each round first makes three paired runs of FAN_DUR s - fan8|tool, one|tool and
#    direct8|direct1 - in which nxload alternates the two requests on its one connection
#    (--alt-path), so that both meet the same conditions: this machine has slow and fast
#    phases lasting seconds, which moved separate runs of the same target by 100 us and more.
#    Within a pair nxload waits PAIR_GAP (1 ms) after each answer (--gap), so that no request
#    meets the work nexus does after answering the one before. The headline numbers are the
#    paired differences. Then it makes the separate runs of
#    fan8, one, tool, direct8 and direct1 (req/s, CPU per request, p99) as before; per round:
#      fan-out overhead      = p50(fan8) - p50(tool alone)   (goal: <= 50 us)
#      the backend's part    = p50(direct8) - p50(direct1): what one backend process takes to
#                              take in 7 more calls before the slowest (it reads them in order)
#      nexus's part          = the fan-out overhead - the backend's part
#      workflow fixed cost   = p50(one)  - p50(tool alone)
#    (and the same for p99 and the mean). Every start walks the execution store, which keeps
#    ended runs (1 h, up to its cap): the rounds run with it full, as on a server that has been
#    running workflows a while (a `prefill` workflow fills it first; PREFILL=0 skips that).
#    nxmock answers latency_ms to the microsecond (an io_uring
#    timeout, not timer wheel ticks), and nxload's histogram buckets are 4 us wide at 4-8 ms;
#    what noise is left (wake-ups of idle CPUs, the machine's neighbours) is why the median over
#    the rounds is the number to read.
#    The backend (nexus's nxmock and the direct one) runs on the load CPU (BACKEND_CPU=load,
#    the default), as a server of its own would, like Redis in part B: with one connection in
#    a closed loop the load CPU is idle while a request is in flight, and nexus keeps the
#    server CPU to itself (so what it does after sending the calls - publishing events - does
#    not hold up the backend). BACKEND_CPU=server runs both beside nexus on the server CPU
#    instead; then the backend's CPU time competes with nexus's.
#    Idle CPUs: a halted vCPU takes tens of microseconds, and a varying number of them, to wake
#    for a packet or a timer - as much as the differences measured here - so during part A a
#    busy loop at SCHED_IDLE priority runs on the server and on the load CPU (IDLE_SPIN=1, the
#    default; 0 = none). It gives way at once to any other task, so it only keeps the CPUs out
#    of the halt; its CPU time is left out of the "other work" and "load CPU busy" figures.
# B. Cached vs uncached tools/call. Three nexus instances, each with its own mock backend:
#      uncached  no cache
#      L1 hit    servers[].cache: {tools: {echo: 1h}} (every call after the first is an L1 hit)
#      Redis hit the same plus cache: {redis: redis://127.0.0.1:PORT, max_bytes: 1} so that
#                every hit comes from Redis (1 B is smaller than any entry, so L1 keeps
#                nothing; checked before measuring)
#    MCP tools/call mock__echo {"message": "...", "latency_ms": L} over Streamable HTTP, one
#    session per connection, CONNS (32) connections closed loop, ROUNDS x DUR s interleaved,
#    for every L in LATENCIES ("0 2": 0 = nxmock answers inline, the cache saves only nexus's
#    own work and the stdio hop; 2 = a 2 ms backend). Every answer is checked first (the hit
#    kinds from _meta "io.nexus/cache"), and each run counts backend calls, L1 hits and Redis
#    GETs per answer, so a row that did not measure what it says shows it. One body for every
#    connection means one cache key: nexus's single-flight merges concurrent lookups of a key
#    into one Redis GET, so at CONNS connections the Redis row serves many answers per GET (the
#    table shows how many). The 1-connection rows (LAT_DUR s per run, same interleaving) have
#    no concurrent lookups: there every Redis hit is its own GET.
#    redis-server is started here on a free loopback port (--save '' --appendonly no) and
#    pinned to the load CPU by default (REDIS_CPU=load: Redis stands for a cache server of its
#    own, CPU 0 stays nexus's; REDIS_CPU=server puts it beside nexus instead).
# Prints the tables and appends them with machine details to bench/RESULTS.md.
#
# env: PARTS ("fanout cache"), FAN_ROUNDS (5), FAN_DUR (5), FAST_MS (1), SLOW_MS (5),
#      ROUNDS (3), DUR (10), CONNS (32), LATENCIES ("0 2"), LAT_DUR (5; 0 = no 1-connection
#      rows), WARMUP s per target (2), PREFILL (1: fill the execution store first), REDIS_CPU (load | server),
#      BACKEND_CPU (load | server: part A's backend), PAIR_GAP (1ms), IDLE_SPIN (1), SMOKE=1 (one 1 s round of
#      everything, no RESULTS.md unless RESULTS is set), RESULTS (file to append to, empty =
#      none), NEXUS_BIN, NXLOAD_BIN, NXMOCK_BIN (default: build/, built or brought up to date
#      here), SERVER_CPU (0), LOAD_CPU (1), KEEP_TMP=1 (keep logs, configs, nxload outputs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

SMOKE=${SMOKE:-0}
PARTS=${PARTS:-fanout cache}
FAN_ROUNDS=${FAN_ROUNDS:-5}
FAN_DUR=${FAN_DUR:-5}
FAST_MS=${FAST_MS:-1}
SLOW_MS=${SLOW_MS:-5}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-32}
LATENCIES=${LATENCIES:-0 2}
LAT_DUR=${LAT_DUR:-5}
WARMUP=${WARMUP:-2}
PREFILL=${PREFILL:-1}
REDIS_CPU=${REDIS_CPU:-load}
BACKEND_CPU=${BACKEND_CPU:-load}
PAIR_GAP=${PAIR_GAP:-1ms}
IDLE_SPIN=${IDLE_SPIN:-1}
if [ "$SMOKE" = 1 ]; then
    FAN_ROUNDS=1 FAN_DUR=1 ROUNDS=1 DUR=1 WARMUP=0
    [ "$LAT_DUR" = 0 ] || LAT_DUR=1
    RESULTS=${RESULTS-}
else
    RESULTS=${RESULTS-$here/RESULTS.md}
fi
PV=2025-11-25
MSG="hello from nxload"
case " $PARTS " in *" fanout "*) do_fan=1 ;; *) do_fan=0 ;; esac
case " $PARTS " in *" cache "*) do_cache=1 ;; *) do_cache=0 ;; esac
[ "$do_fan" = 1 ] || [ "$do_cache" = 1 ] || nxb_die "PARTS='$PARTS': expected fanout and/or cache"
awk -v f="$FAST_MS" -v s="$SLOW_MS" 'BEGIN {exit !(f >= 0 && s >= f + 2)}' ||
    nxb_die "SLOW_MS ($SLOW_MS) must exceed FAST_MS ($FAST_MS) by 2 ms at least (1 ms timer ticks)"
case "$REDIS_CPU" in
    load) redis_cpu=$NXB_LOAD_CPU ;;
    server) redis_cpu=$NXB_SERVER_CPU ;;
    *) nxb_die "REDIS_CPU='$REDIS_CPU': expected load or server" ;;
esac
case "$BACKEND_CPU" in
    load) fan_backend_cpu=$NXB_LOAD_CPU ;;
    server) fan_backend_cpu="" ;; # nexus's child inherits its CPU
    *) nxb_die "BACKEND_CPU='$BACKEND_CPU': expected load or server" ;;
esac

nxb_require taskset curl ss cmake pgrep getconf awk timeout chrt
[ "$do_cache" = 0 ] || nxb_require redis-server redis-cli

# The release build: build/ (RelWithDebInfo, jemalloc) is configured and built by nxb_build
# when a binary is missing, and otherwise brought up to date incrementally (a stale build/
# would measure yesterday's tree).
to_build=()
[ -n "${NEXUS_BIN-}" ] || to_build+=(nexus)
[ -n "${NXLOAD_BIN-}" ] || to_build+=(nxload)
[ -n "${NXMOCK_BIN-}" ] || to_build+=(nxmock)
if [ ${#to_build[@]} -gt 0 ]; then
    nxb_build "$root" "${to_build[@]}"
    blog=$(mktemp /tmp/nx-build.XXXXXX)
    if ! cmake --build "$root/build" --target "${to_build[@]}" -j "$(nproc)" >"$blog" 2>&1; then
        tail -n 20 "$blog" >&2
        rm -f "$blog"
        nxb_die "incremental build of ${to_build[*]} in $root/build failed"
    fi
    rm -f "$blog"
fi
NEXUS_BIN=${NEXUS_BIN:-$root/build/nexus}
NXLOAD_BIN=${NXLOAD_BIN:-$root/build/nxload}
NXMOCK_BIN=${NXMOCK_BIN:-$root/build/nxmock}
for b in "$NEXUS_BIN" "$NXLOAD_BIN" "$NXMOCK_BIN"; do [ -x "$b" ] || nxb_die "$b not found"; done
build_dir=$(dirname "$NEXUS_BIN")
build_kind=unknown
if [ -f "$build_dir/CMakeCache.txt" ]; then
    build_kind=$(awk -F= '/^CMAKE_BUILD_TYPE:/ {t = $2} /^JEMALLOC_FOUND:/ {j = $2}
        END {printf "%s, jemalloc %s", (t == "" ? "?" : t), (j == "1" ? "yes" : "no")}' "$build_dir/CMakeCache.txt")
fi

# This script and what it forks (curl, awk, the /proc readers) stay off the server CPU (the
# CPU set is given back before the machine details, which count CPUs with nproc).
all_cpus=$(taskset -cp $$ | awk -F': ' '{print $2}')
taskset -cp "$NXB_LOAD_CPU" $$ >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
tmp=$(mktemp -d /tmp/nx-pipeline.XXXXXX)
declare -A pid=() rest=() mcp=()
ok=0

# ---- processes, stopped by PID only ----

# stop NAME: SIGTERM (then SIGKILL) to the process, then SIGKILL to any nxmock it spawned
# that outlived it (only processes found under it before the stop).
stop() {
    local p=${pid[$1]-} kids k
    [ -n "$p" ] || return 0
    kids=$(nxb_tree_pids "$p" | tail -n +2 || true)
    nxb_stop "$p" 10
    for k in $kids; do
        if grep -qa nxmock "/proc/$k/cmdline" 2>/dev/null; then
            nxb_log "$1: backend pid $k outlived nexus: SIGKILL"
            kill -KILL "$k" 2>/dev/null || true
        fi
    done
    pid[$1]=""
}

cleanup() {
    local t
    for t in wf dm un l1 l2 redis spin.server spin.load; do stop "$t"; done
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$ok" != 1 ]; then
        nxb_log "logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { ss -Htln "sport = :$1" | grep -q .; }

# spin_start SECONDS: the SCHED_IDLE busy loops of part A on the server and the load CPU,
# each ending by itself after SECONDS at the latest.
spin_start() {
    [ "$IDLE_SPIN" = 1 ] || return 0
    local c n
    for n in server load; do
        c=$NXB_SERVER_CPU
        [ "$n" = load ] && c=$NXB_LOAD_CPU
        timeout "$1" chrt --idle 0 taskset -c "$c" sh -c 'while :; do :; done' &
        pid[spin.$n]=$!
    done
}
# spin_ticks NAME: CPU ticks of that busy loop so far (0 without one).
spin_ticks() {
    if [ -n "${pid[spin.$1]-}" ]; then nxb_tree_ticks "${pid[spin.$1]}"; else echo 0; fi
}

# start_nexus NAME CONFIG: nexus --shards 1 on the server CPU, REST and MCP on loopback ports.
start_nexus() {
    local n=$1 cfg=$2
    rest[$n]=$(nxb_free_port)
    mcp[$n]=$(nxb_free_port)
    "${NXB_PIN_SERVER[@]}" "$NEXUS_BIN" --config "$cfg" --port "${rest[$n]}" --mcp-port "${mcp[$n]}" \
        --shards 1 --log-level warn --set mcp.max_sessions=100000 >"$tmp/$n.log" 2>&1 &
    pid[$n]=$!
}

# ready NAME: waits until nexus listens and its backend lists its tools.
ready() {
    local n=$1 _
    for _ in $(seq 1 150); do
        kill -0 "${pid[$n]}" 2>/dev/null || nxb_die "nexus $n exited at start: $(tail -n 5 "$tmp/$n.log")"
        if listening "${rest[$n]}" && listening "${mcp[$n]}" &&
            curl -fsS --max-time 2 "http://127.0.0.1:${rest[$n]}/health" 2>/dev/null |
            grep -q '"mock":{[^}]*"state":"ready","tools":[1-9]'; then
            return 0
        fi
        sleep 0.1
    done
    nxb_die "nexus $n: backend not ready within 15 s: $(tail -n 5 "$tmp/$n.log")"
}

# mock_server [CACHE_LINE]: the servers: block every nexus here uses.
mock_server() {
    local cmd=\"$NXMOCK_BIN\" args='"--stdio", "--log-level", "warn"'
    if [ -n "${MOCK_CPU-}" ]; then # started through taskset, on that CPU
        args="\"-c\", \"$MOCK_CPU\", \"$NXMOCK_BIN\", $args"
        cmd=\"$(command -v taskset)\"
    fi
    cat <<EOF
servers:
  - name: mock
    transport: stdio
    command: $cmd
    args: [$args]
    bulkhead: {max_concurrent: $((CONNS > 100 ? CONNS * 2 : 200))}
EOF
    [ -z "${1-}" ] || echo "    $1"
}

# health_nums NAME: "calls failures rejected" of the backend, from /health.
health_nums() {
    local h b
    h=$(curl -fsS --max-time 5 "http://127.0.0.1:${rest[$1]}/health" 2>/dev/null) || {
        echo "0 0 0"
        return
    }
    b=${h#*\"backends\":}
    printf '%s %s %s\n' "$(grep -o '"calls":[0-9]*' <<<"$b" | head -n 1 | cut -d: -f2)" \
        "$(grep -o '"failures":[0-9]*' <<<"$b" | head -n 1 | cut -d: -f2)" \
        "$(grep -o '"rejected":[0-9]*' <<<"$b" | head -n 1 | cut -d: -f2)"
}
# metric NAME METRIC: one counter of /metrics (0 when absent).
metric() {
    curl -fsS --max-time 5 "http://127.0.0.1:${rest[$1]}/metrics" 2>/dev/null |
        awk -v m="$2" '$1 == m {print $2 + 0; f = 1} END {if (!f) print 0}'
}
redis_gets() {
    if [ -n "${pid[redis]-}" ]; then
        redis-cli -p "$redis_port" info commandstats 2>/dev/null | tr -d '\r' |
            awk -F'[=,:]' '$1 == "cmdstat_get" {print $3 + 0; f = 1} END {if (!f) print 0}'
    else
        echo 0
    fi
}

# parse OUT: "requests req/s p50 p99 mean errors 2xx" (errors: transport errors and non-2xx).
parse() {
    local f=$1 errs
    errs=$(grep -o '"errors":{[^}]*}' "$f" | grep -o ':[0-9]*' | tr -d : | awk '{s += $1} END {print s + 0}')
    errs=$((errs + $(nxb_json_num "$f" 4xx) + $(nxb_json_num "$f" 5xx)))
    echo "$(nxb_json_num "$f" requests) $(nxb_json_num "$f" req_per_s) $(nxb_json_num "$f" p50)" \
        "$(nxb_json_num "$f" p99) $(nxb_json_num "$f" mean) $errs $(nxb_json_num "$f" 2xx)"
}

# The load of each target: URL, body and headers ("NAME" -> files in $tmp).
declare -A url=() body=() hdrs=() pv=()
# load NAME CONNS SECS OUT [nxload options]: nxload from the load CPU.
load() {
    local t=$1 c=$2 secs=$3 out=$4
    shift 4
    local -a h=(-H 'Content-Type: application/json')
    if [ -n "${hdrs[$t]-}" ]; then
        h+=(-H 'Accept: application/json, text/event-stream' -H "MCP-Protocol-Version: ${pv[$t]:-$PV}"
            --conn-headers "${hdrs[$t]}")
    fi
    "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c "$c" -d "${secs}s" --timeout 5000 --json "${h[@]}" \
        --body-file "${body[$t]}" "$@" "${url[$t]}" >"$out" 2>"$out.err"
}

# measure SERVER TARGET KEY ROUND CONNS SECS: one recorded run of TARGET (served by nexus
# SERVER); appends to res.KEY.TARGET:
#   1 req/s  2 p50  3 p99  4 mean (us)  5 server CPU us/req (nexus + nxmock)  6 nexus CPU
#   us/req  7 errors (incl. backend failures and rejections)  8 other work on the server CPU %
#   9 load CPU busy %  10 backend calls per answer  11 Redis GETs per answer  12 Redis CPU
#   us/req  13 L1 hits per answer
measure() {
    local srv=$1 t=$2 key=$3 round=$4 c=$5 secs=$6 out
    local req rps p50 p99 mean errs ok2 c0b c0a c1b c1a c0b2 c0a2 c1b2 c1a2
    local tt0 tt1 ts0 ts1 rt0=0 rt1=0 h0 h1 l1h0 l1h1 g0 g1 own other busy1
    out=$tmp/run.$key.$t.$round
    kill -0 "${pid[$srv]}" 2>/dev/null || nxb_die "nexus $srv died before round $round ($key $t); logs in $tmp"
    h0=$(health_nums "$srv")
    l1h0=$(metric "$srv" nexus_cache_l1_hits_total)
    g0=$(redis_gets)
    [ -z "${pid[redis]-}" ] || rt0=$(nxb_proc_ticks "${pid[redis]}")
    tt0=$(nxb_tree_ticks "${pid[$srv]}")
    ts0=$(nxb_proc_ticks "${pid[$srv]}")
    local s0=0 s1=0 s0b s1b
    s0b=$(spin_ticks server)
    s1b=$(spin_ticks load)
    read -r c0b c0a <<<"$(nxb_cpu_ticks "$NXB_SERVER_CPU")"
    read -r c1b c1a <<<"$(nxb_cpu_ticks "$NXB_LOAD_CPU")"
    load "$t" "$c" "$secs" "$out" || nxb_die "$t: nxload failed: $(tail -n 3 "$out" "$out.err")"
    read -r c0b2 c0a2 <<<"$(nxb_cpu_ticks "$NXB_SERVER_CPU")"
    read -r c1b2 c1a2 <<<"$(nxb_cpu_ticks "$NXB_LOAD_CPU")"
    s0=$(($(spin_ticks server) - s0b))
    s1=$(($(spin_ticks load) - s1b))
    tt1=$(nxb_tree_ticks "${pid[$srv]}")
    ts1=$(nxb_proc_ticks "${pid[$srv]}")
    [ -z "${pid[redis]-}" ] || rt1=$(nxb_proc_ticks "${pid[redis]}")
    g1=$(redis_gets)
    l1h1=$(metric "$srv" nexus_cache_l1_hits_total)
    h1=$(health_nums "$srv")
    read -r req rps p50 p99 mean errs ok2 <<<"$(parse "$out")"
    { [ -n "$req" ] && [ "$req" != 0 ]; } || nxb_die "$t: no requests ($out)"
    # Backend failures and rejections are answered 200 with a JSON-RPC error on MCP: count them.
    read -r -a hv0 <<<"$h0"
    read -r -a hv1 <<<"$h1"
    errs=$((errs + ${hv1[1]:-0} - ${hv0[1]:-0} + ${hv1[2]:-0} - ${hv0[2]:-0}))
    own=$((tt1 - tt0 + s0))
    if [ "$REDIS_CPU" = server ] && [ "$srv" = l2 ]; then own=$((own + rt1 - rt0)); fi
    other=$(awk -v b=$((c0b2 - c0b)) -v a=$((c0a2 - c0a)) -v own="$own" \
        'BEGIN {o = a > 0 ? (b - own) * 100 / a : 0; printf "%.0f", (o < 0 ? 0 : o)}')
    busy1=$(awk -v b=$((c1b2 - c1b - s1)) -v a=$((c1a2 - c1a)) 'BEGIN {printf "%.0f", (a > 0 ? b * 100 / a : 0)}')
    awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v mean="$mean" -v n="$req" -v ok2="$ok2" \
        -v tt=$((tt1 - tt0)) -v ts=$((ts1 - ts0)) -v hz="$NXB_CLK_TCK" -v errs="$errs" \
        -v other="$other" -v busy1="$busy1" -v calls=$((${hv1[0]:-0} - ${hv0[0]:-0})) \
        -v gets=$((g1 - g0)) -v rt=$((rt1 - rt0)) -v l1=$((l1h1 - l1h0)) 'BEGIN {
            a = ok2 > 0 ? ok2 : n
            printf "%s %s %s %s %.2f %.2f %d %s %s %.3f %.3f %.2f %.3f\n", rps, p50, p99, mean,
                tt * 1e6 / hz / n, ts * 1e6 / hz / n, errs, other, busy1, calls / a, gets / a,
                rt * 1e6 / hz / n, l1 / a }' >>"$tmp/res.$key.$t"
    nxb_log "round $round $key $t: $(tail -n 1 "$tmp/res.$key.$t" | awk '{printf "%s req/s, p50 %sus, p99 %sus, server CPU %sus/req, %s errors, other work on CPU0 %s%%, load CPU %s%% busy, backend calls/answer %s, Redis GETs/answer %s, L1 hits/answer %s", $1, $2, $3, $5, $7, $8, $9, $10, $11, $13}')"
}

# pair A B ROUND: one paired run of FAN_DUR s on 1 connection that alternates A and B request by
# request (nxload --alt-path), so both meet the same conditions (the machine's slow and fast
# phases last seconds: separate runs of A and B differ by tens of us from them alone), with
# PAIR_GAP between an answer and the next request (nxload --gap), so that neither meets what
# nexus still does after answering the other (publishing the run's events, freeing it): back to
# back, that work would delay the request after a fan8 - the tool call - and flatter fan8.
# Appends "p50(A) p50(B) p99(A) p99(B) mean(A) mean(B)" to pair.A.B.
pair() {
    local a=$1 b=$2 round=$3 out
    out=$tmp/pair.$a.$b.$round
    local -a h=(-H 'Content-Type: application/json')
    if [ -n "${hdrs[$a]-}" ]; then
        h+=(-H 'Accept: application/json, text/event-stream' -H "MCP-Protocol-Version: ${pv[$a]:-$PV}"
            -H "$(head -n 1 "${hdrs[$a]}")")
    fi
    local path_b=/${url[$b]#http://*/}
    "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c 1 -d "${FAN_DUR}s" --timeout 5000 --json "${h[@]}" \
        --gap "$PAIR_GAP" --body-file "${body[$a]}" --alt-path "$path_b" --alt-body-file "${body[$b]}" "${url[$a]}" \
        >"$out" 2>"$out.err" || nxb_die "pair $a/$b: nxload failed: $(tail -n 3 "$out.err")"
    # Both requests' numbers with parse; the alternate's from the "alt" member of the output.
    local na pa p99a ma errs nb pb p99b mb
    read -r na _ pa p99a ma errs _ <<<"$(parse "$out")"
    grep -o '"alt":{[^}]*}' "$out" >"$out.alt" || true
    nb=$(nxb_json_num "$out.alt" requests)
    pb=$(nxb_json_num "$out.alt" p50)
    p99b=$(nxb_json_num "$out.alt" p99)
    mb=$(nxb_json_num "$out.alt" mean)
    { [ "${errs:-1}" = 0 ] && [ "${na:-0}" != 0 ] && [ "${nb:-0}" != 0 ]; } ||
        nxb_die "pair $a/$b: errors or no answers ($out)"
    echo "$pa $pb $p99a $p99b $ma $mb" >>"$tmp/pair.$a.$b"
    nxb_log "round $round pair $a|$b: p50 $(tail -n 1 "$tmp/pair.$a.$b" | awk '{printf "%s | %s us, mean %s | %s us", $1, $2, $5, $6}')"
}

# ---- table helpers ----

# nexus_part_row P F...: the table row "nexus's part" of fields F, from the per-round
# differences P.fan8.tool.F and P.direct8.direct1.F (written to P.nexus.F).
nexus_part_row() {
    local p=$1 f row="| of it nexus's part: (fan8 − tool) − (direct8 − direct1)"
    shift
    for f in "$@"; do
        paste -d' ' "$p.fan8.tool.$f" "$p.direct8.direct1.$f" | awk '{print $1 - $2}' >"$p.nexus.$f"
        row="$row | $(nxb_cell "$p.nexus.$f" 1 %.1f)"
    done
    echo "$row |"
}

# per_round OP FILE_A FILE_B FIELD OUT: per-round a-b (OP diff) or a/b (OP ratio), one a line.
per_round() {
    paste -d' ' <(awk -v f="$4" '{print $f}' "$2") <(awk -v f="$4" '{print $f}' "$3") |
        awk -v op="$1" '{ if (op == "diff") print $1 - $2; else if ($2 > 0) print $1 / $2 }' >"$5"
}

# ================= A. fan-out overhead =================

fan_table=$tmp/fan.md
fan_diff=$tmp/fan_diff.md
fan_summary=""
if [ "$do_fan" = 1 ]; then
    nxb_log "A: fan-out overhead (fan8 / one / the slowest branch alone), $FAN_ROUNDS rounds of ${FAN_DUR}s at 1 connection"
    {
        # The backend on the load CPU (BACKEND_CPU=load, the default) stands for a server of
        # its own, as Redis does in part B: the load CPU is idle while the one connection's
        # request is in flight. BACKEND_CPU=server puts it beside nexus, sharing its CPU.
        MOCK_CPU=$fan_backend_cpu mock_server
        echo "workflows:"
        nxb_fanout_workflows "$FAST_MS" "$SLOW_MS"
        echo "  - name: prefill"
        echo "    description: \"fills the execution store before the rounds (not measured)\""
        echo "    steps:"
        echo "      - {id: p, call: mock.echo, with: {message: \"prefill\"}}"
    } >"$tmp/wf.yaml"
    start_nexus wf "$tmp/wf.yaml"
    # The backend on its own: nxmock serving Streamable HTTP, on the CPU of nexus's own nxmock.
    rest[dm]=$(nxb_free_port)
    mcp[dm]=$(nxb_free_port)
    taskset -c "${fan_backend_cpu:-$NXB_SERVER_CPU}" "$NXMOCK_BIN" --port "${rest[dm]}" --mcp-port "${mcp[dm]}" --shards 1 \
        --log-level warn >"$tmp/dm.log" 2>&1 &
    pid[dm]=$!
    ready wf
    for _ in $(seq 1 100); do listening "${mcp[dm]}" && break; sleep 0.1; done
    listening "${mcp[dm]}" || nxb_die "direct nxmock did not listen: $(tail -n 5 "$tmp/dm.log")"
    wr=http://127.0.0.1:${rest[wf]}
    url[fan8]=$wr/api/workflows/fan8
    url[one]=$wr/api/workflows/one
    url[tool]=$wr/tools/mock__echo
    echo '{}' >"$tmp/body.wf"
    printf '{"message":"slowest","latency_ms":%s}' "$SLOW_MS" >"$tmp/body.tool"
    body[fan8]=$tmp/body.wf
    body[one]=$tmp/body.wf
    body[tool]=$tmp/body.tool
    # The direct targets: one 2025-03-26 session (the last protocol with JSON-RPC batches).
    dmu=http://127.0.0.1:${mcp[dm]}/mcp
    dsid=$(nxb_mcp_session "$dmu" 2025-03-26) || nxb_die "direct nxmock: initialize failed"
    echo "Mcp-Session-Id: $dsid" >"$tmp/dm.sessions"
    dcall() { # ID MESSAGE LATENCY
        printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"echo","arguments":{"message":"%s","latency_ms":%s}}}' "$1" "$2" "$3"
    }
    {
        printf '['
        for i in 1 2 3 4 5 6 7; do printf '%s,' "$(dcall "$i" "branch $i" "$FAST_MS")"; done
        printf '%s]' "$(dcall 8 slowest "$SLOW_MS")"
    } >"$tmp/body.direct8"
    dcall 8 slowest "$SLOW_MS" >"$tmp/body.direct1"
    for t in direct8 direct1; do
        url[$t]=$dmu
        body[$t]=$tmp/body.$t
        hdrs[$t]=$tmp/dm.sessions
        pv[$t]=2025-03-26
    done

    # The answers: 200 with the expected result, before anything is measured.
    post() { curl -sS --max-time 10 -o "$2" -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@${body[$1]}" "${url[$1]}"; }
    code=$(post fan8 "$tmp/fan8.sample") || true
    { [ "$code" = 200 ] && grep -q '"status":"succeeded"' "$tmp/fan8.sample"; } ||
        nxb_die "fan8 answered $code: $(head -c 400 "$tmp/fan8.sample")"
    for i in 1 2 3 4 5 6 7; do
        grep -q "\"b$i\":\"branch $i\"" "$tmp/fan8.sample" || nxb_die "fan8: no b$i result: $(head -c 600 "$tmp/fan8.sample")"
    done
    grep -q '"b8":"slowest"' "$tmp/fan8.sample" || nxb_die "fan8: no b8 result: $(head -c 600 "$tmp/fan8.sample")"
    code=$(post one "$tmp/one.sample") || true
    { [ "$code" = 200 ] && grep -q '"status":"succeeded"' "$tmp/one.sample" &&
        grep -q '"result":"slowest"' "$tmp/one.sample"; } ||
        nxb_die "one answered $code: $(head -c 400 "$tmp/one.sample")"
    code=$(post tool "$tmp/tool.sample") || true
    { [ "$code" = 200 ] && grep -q '"text":"slowest"' "$tmp/tool.sample"; } ||
        nxb_die "POST /tools/mock__echo answered $code: $(head -c 400 "$tmp/tool.sample")"
    dpost() { curl -sS --max-time 10 -o "$2" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $dsid" \
        -H 'MCP-Protocol-Version: 2025-03-26' --data-binary "@${body[$1]}" "${url[$1]}"; }
    code=$(dpost direct8 "$tmp/direct8.sample") || true
    [ "$code" = 200 ] && [ "$(grep -o '"result":{' "$tmp/direct8.sample" | wc -l)" = 8 ] &&
        grep -q '"text":"slowest"' "$tmp/direct8.sample" ||
        nxb_die "direct8 answered $code: $(head -c 600 "$tmp/direct8.sample")"
    code=$(dpost direct1 "$tmp/direct1.sample") || true
    { [ "$code" = 200 ] && grep -q '"text":"slowest"' "$tmp/direct1.sample"; } ||
        nxb_die "direct1 answered $code: $(head -c 400 "$tmp/direct1.sample")"
    for t in fan8 one tool direct8 direct1; do nxb_log "$t answers: $(head -c 160 "$tmp/$t.sample")…"; done

    # The execution store keeps every ended run (1 h, up to a cap of records) and each start
    # walks it: a server that has run workflows for a while has it full, so the rounds run with
    # it full (PREFILL=0: from empty, growing through the rounds).
    wf_stored() { curl -fsS --max-time 5 "$wr/health" | grep -o '"stored":[0-9]*' | head -n 1 | cut -d: -f2; }
    if [ "$PREFILL" = 1 ]; then
        url[prefill]=$wr/api/workflows/prefill
        body[prefill]=$tmp/body.wf
        prev=-1
        for _ in $(seq 1 40); do
            stored=$(wf_stored)
            [ "$stored" != "$prev" ] || break
            prev=$stored
            load prefill 8 30 "$tmp/prefill.out" -n 2000 || nxb_die "prefill failed: $(tail -c 300 "$tmp/prefill.out")"
        done
        nxb_log "execution store filled: $stored records"
    fi
    if [ "$WARMUP" != 0 ]; then
        for t in fan8 one tool direct8 direct1; do load "$t" 1 1 "$tmp/warmup.$t" || true; done
    fi
    stored_before=$(wf_stored)
    spin_start $((FAN_ROUNDS * 8 * (FAN_DUR + 10) + 60))
    for round in $(seq 1 "$FAN_ROUNDS"); do
        pair fan8 tool "$round"
        pair one tool "$round"
        pair direct8 direct1 "$round"
        for t in fan8 one tool; do measure wf "$t" fan "$round" 1 "$FAN_DUR"; done
        for t in direct8 direct1; do measure dm "$t" fan "$round" 1 "$FAN_DUR"; done
    done
    stored_after=$(wf_stored)
    fan_health=$(curl -fsS --max-time 5 "$wr/health" | grep -o '"workflows":{[^}]*}' || true)
    stop wf
    stop dm
    stop spin.server
    stop spin.load

    {
        echo "| 1 connection, closed loop | fan8: 8 parallel mock.echo (7 × ${FAST_MS} ms, 1 × ${SLOW_MS} ms) | one: 1 mock.echo (${SLOW_MS} ms) | tool: the ${SLOW_MS} ms call alone, POST /tools/mock__echo | direct8: the 8 calls straight to nxmock (one batch) | direct1: the ${SLOW_MS} ms call straight to nxmock |"
        echo "|---|---:|---:|---:|---:|---:|"
        names=("req/s" "p50 µs" "p99 µs" "mean µs" "server CPU µs/req (nexus + its nxmock; direct: nxmock)" "nexus CPU µs/req")
        for f in 1 2 3 4 5 6; do
            fmt=%.1f
            [ "$f" = 1 ] && fmt=%.0f
            d8=$(nxb_cell "$tmp/res.fan.direct8" "$f" "$fmt")
            d1=$(nxb_cell "$tmp/res.fan.direct1" "$f" "$fmt")
            [ "$f" = 6 ] && d8=— && d1=—
            printf '| %s | %s | %s | %s | %s | %s |\n' "${names[$((f - 1))]}" "$(nxb_cell "$tmp/res.fan.fan8" "$f" "$fmt")" \
                "$(nxb_cell "$tmp/res.fan.one" "$f" "$fmt")" "$(nxb_cell "$tmp/res.fan.tool" "$f" "$fmt")" "$d8" "$d1"
        done
        printf '| backend calls per answer | %s | %s | %s | 8 | 1 |\n' "$(nxb_cell "$tmp/res.fan.fan8" 10 %.2f)" \
            "$(nxb_cell "$tmp/res.fan.one" 10 %.2f)" "$(nxb_cell "$tmp/res.fan.tool" 10 %.2f)"
        printf '| errors | %s | %s | %s | %s | %s |\n' "$(nxb_cell "$tmp/res.fan.fan8" 7)" "$(nxb_cell "$tmp/res.fan.one" 7)" \
            "$(nxb_cell "$tmp/res.fan.tool" 7)" "$(nxb_cell "$tmp/res.fan.direct8" 7)" "$(nxb_cell "$tmp/res.fan.direct1" 7)"
    } >"$fan_table"
    {
        echo "| paired runs (the two requests alternate on one connection), per-round difference, µs: median (min–max) over $FAN_ROUNDS rounds | p50 | p99 | mean |"
        echo "|---|---:|---:|---:|"
        for pair in "fan8 tool fan-out overhead: fan8 − the slowest call alone (tool)" \
            "direct8 direct1 of it the backend's part: direct8 − direct1" \
            "one tool workflow engine fixed cost: one − tool"; do
            read -r a b label <<<"$pair"
            row="| $label"
            for f in 1 3 5; do
                awk -v f="$f" '{print $f - $(f + 1)}' "$tmp/pair.$a.$b" >"$tmp/pd.$a.$b.$f"
                row="$row | $(nxb_cell "$tmp/pd.$a.$b.$f" 1 %.1f)"
            done
            echo "$row |"
            [ "$a" != direct8 ] || nexus_part_row "$tmp/pd" 1 3 5
        done
        paste -d' ' "$tmp/pd.fan8.tool.1" "$tmp/pd.one.tool.1" | awk '{print $1 - $2}' >"$tmp/pd.fan8.one.1"
        echo "| the parallel step over a one-step workflow: (fan8 − tool) − (one − tool) | $(nxb_cell "$tmp/pd.fan8.one.1" 1 %.1f) | | |"
        echo
        echo "| separate runs (one target per run, as before), per-round difference, µs: median (min–max) over $FAN_ROUNDS rounds | p50 | p99 | mean |"
        echo "|---|---:|---:|---:|"
        for pair in "fan8 tool fan-out overhead: fan8 − the slowest call alone (tool)" \
            "direct8 direct1 of it the backend's part: direct8 − direct1 (one process taking in 7 more calls first)" \
            "one tool workflow engine fixed cost: one − the call alone" \
            "fan8 one the parallel step over a one-step workflow: fan8 − one"; do
            read -r a b label <<<"$pair"
            row="| $label"
            for f in 2 3 4; do
                per_round diff "$tmp/res.fan.$a" "$tmp/res.fan.$b" "$f" "$tmp/d.$a.$b.$f"
                row="$row | $(nxb_cell "$tmp/d.$a.$b.$f" 1 %.1f)"
            done
            echo "$row |"
            [ "$a" != direct8 ] || nexus_part_row "$tmp/d" 2 3 4
        done
    } >"$fan_diff"
    ov=$(nxb_median "$tmp/pd.fan8.tool.1" 1)
    ovn=$(nxb_median "$tmp/pd.nexus.1" 1)
    ovs=$(nxb_median "$tmp/d.fan8.tool.2" 1)
    fan_summary=$(awk -v o="$ov" -v n="$ovn" -v s="$ovs" -v a="$stored_before" -v b="$stored_after" -v bc="$BACKEND_CPU" 'BEGIN {printf "fan-out overhead p50 (paired runs, median of the per-round differences; backend on the %s CPU): %.1f µs — goal (≤ 50 µs) %s; nexus'"'"'s part of it (less what the backend takes to take in the 7 other calls): %.1f µs; from separate runs: %.1f µs; execution store: %s records at the first round, %s after the last", bc, o, (o <= 50 ? "met" : "NOT met"), n, s, a, b}')
fi

# ================= B. cached vs uncached =================

l2_setup=""
cache_tables=$tmp/cache.md
: >"$cache_tables"
cache_summary=$tmp/cache_summary
: >"$cache_summary"
if [ "$do_cache" = 1 ]; then
    nxb_log "B: cached vs uncached tools/call, $CONNS connections, L in {$LATENCIES} ms, $ROUNDS rounds of ${DUR}s"
    redis_port=$(nxb_free_port)
    taskset -c "$redis_cpu" redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --protected-mode yes --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no >/dev/null 2>&1 &
    pid[redis]=$!
    for _ in $(seq 1 100); do
        [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
        kill -0 "${pid[redis]}" 2>/dev/null || nxb_die "redis-server exited at start: $(tail -n 5 "$tmp/redis.log")"
        sleep 0.1
    done
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] || nxb_die "redis-server did not answer PING"
    redis_v=$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)

    mock_server >"$tmp/un.yaml"
    mock_server "cache: {tools: {echo: 1h}}" >"$tmp/l1.yaml"
    l2_conf() { # MAX_BYTES
        echo "cache: {redis: \"redis://127.0.0.1:$redis_port\", max_bytes: $1}"
        mock_server "cache: {tools: {echo: 1h}}"
    }
    l2_conf 1 >"$tmp/l2.yaml"
    for n in un l1 l2; do start_nexus "$n" "$tmp/$n.yaml"; done
    for n in un l1 l2; do ready "$n"; done

    sessions() { # NAME: one session per connection, in $tmp/NAME.sessions
        local sid
        : >"$tmp/$1.sessions"
        for _ in $(seq 1 "$CONNS"); do
            sid=$(nxb_mcp_session "http://127.0.0.1:${mcp[$1]}/mcp" "$PV") || nxb_die "$1: initialize failed"
            echo "Mcp-Session-Id: $sid" >>"$tmp/$1.sessions"
        done
    }
    # call NAME L: one tools/call mock__echo in NAME's first session; prints the body.
    call() {
        local sid
        sid=$(head -n 1 "$tmp/$1.sessions" | cut -d' ' -f2)
        curl -fsS --max-time 10 -X POST "http://127.0.0.1:${mcp[$1]}/mcp" -H 'Content-Type: application/json' \
            -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $sid" \
            -H "MCP-Protocol-Version: $PV" \
            -d '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"mock__echo","arguments":{"message":"'"$MSG"'","latency_ms":'"$2"'}}}'
    }
    cache_kind() { grep -o '"io.nexus/cache":"[^"]*"' | head -n 1 | cut -d'"' -f4; }
    for n in un l1 l2; do sessions "$n"; done

    # max_bytes: 1 is smaller than any entry: L1 keeps nothing, so every hit must come from
    # Redis. A miss, then two calls: the second must be answered "hit-l2".
    first_l=${LATENCIES%% *}
    call l2 "$first_l" >/dev/null || nxb_die "l2: tools/call failed"
    call l2 "$first_l" >/dev/null || nxb_die "l2: tools/call failed"
    kind=$(call l2 "$first_l" | cache_kind || true)
    [ "$kind" = hit-l2 ] || nxb_die "l2: a repeated call was answered '${kind:-uncached}', not 'hit-l2'"
    l2_setup="cache.max_bytes: 1 (smaller than any entry: L1 keeps nothing, every hit answered from Redis, checked)"

    for L in $LATENCIES; do
        printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mock__echo","arguments":{"message":"%s","latency_ms":%s}}}' \
            "$MSG" "$L" >"$tmp/body.L$L"
        # The answers: the text, and how the cache answered a repeated call.
        for n in un l1 l2; do
            call "$n" "$L" >"$tmp/$n.L$L.first" || nxb_die "$n: tools/call failed (L=$L)"
            call "$n" "$L" >/dev/null || nxb_die "$n: tools/call failed (L=$L)"
            call "$n" "$L" >"$tmp/$n.L$L.sample" || nxb_die "$n: tools/call failed (L=$L)"
            grep -q "\"text\":\"$MSG\"" "$tmp/$n.L$L.sample" || nxb_die "$n: unexpected answer: $(head -c 300 "$tmp/$n.L$L.sample")"
            kind=$(cache_kind <"$tmp/$n.L$L.sample" || true)
            case "$n:$kind" in
                un:) ;;
                l1:hit | l2:hit-l2) ;;
                *) nxb_die "$n (L=$L): the repeated call was answered '${kind:-without the cache}': $(head -c 300 "$tmp/$n.L$L.sample")" ;;
            esac
            nxb_log "$n L=$L answers: $(head -c 200 "$tmp/$n.L$L.sample")"
            url[$n.L$L]=http://127.0.0.1:${mcp[$n]}/mcp
            body[$n.L$L]=$tmp/body.L$L
            hdrs[$n.L$L]=$tmp/$n.sessions
        done
        if [ "$WARMUP" != 0 ]; then
            for n in un l1 l2; do load "$n.L$L" "$CONNS" "$WARMUP" "$tmp/warmup.$n.L$L" || true; done
        fi
        for round in $(seq 1 "$ROUNDS"); do
            for n in un l1 l2; do measure "$n" "$n.L$L" "c$CONNS" "$round" "$CONNS" "$DUR"; done
        done
        if [ "$LAT_DUR" != 0 ]; then
            for round in $(seq 1 "$ROUNDS"); do
                for n in un l1 l2; do measure "$n" "$n.L$L" c1 "$round" 1 "$LAT_DUR"; done
            done
        fi
    done
    for n in un l1 l2; do
        kill -0 "${pid[$n]}" 2>/dev/null || nxb_die "nexus $n died; logs in $tmp"
        call "$n" "${LATENCIES%% *}" | grep -q "\"text\":\"$MSG\"" || nxb_die "$n no longer answers after the load"
    done
    cache_health=$(curl -fsS --max-time 5 "http://127.0.0.1:${rest[l2]}/health" | grep -o '"cache":{[^}]*}' || true)

    for L in $LATENCIES; do
        for key in "c$CONNS" c1; do
            [ -s "$tmp/res.$key.un.L$L" ] || continue
            if [ "$key" = c1 ]; then
                label="1 connection (no concurrent lookups)"
            else
                label="$CONNS connections (a session each)"
            fi
            for n in l1 l2; do
                per_round ratio "$tmp/res.$key.$n.L$L" "$tmp/res.$key.un.L$L" 1 "$tmp/r.$key.$n.L$L"
            done
            {
                echo "| tools/call echo, L = $L ms, $label | uncached | L1 hit | Redis hit | L1/uncached | Redis/uncached |"
                echo "|---|---:|---:|---:|---:|---:|"
                rowr() { # LABEL FIELD FMT RATIO(0/1) [ONLY: the one column that has it]
                    local row="| $1" n
                    for n in un l1 l2; do
                        if [ -n "${5-}" ] && [ "$n" != "$5" ]; then
                            row="$row | –"
                        else
                            row="$row | $(nxb_cell "$tmp/res.$key.$n.L$L" "$2" "$3")"
                        fi
                    done
                    if [ "$4" = 1 ]; then
                        for n in l1 l2; do row="$row | $(nxb_ratio "$(nxb_median "$tmp/res.$key.$n.L$L" "$2")" "$(nxb_median "$tmp/res.$key.un.L$L" "$2")")"; done
                    else
                        row="$row |  | "
                    fi
                    echo "$row |"
                }
                rowr "req/s" 1 %.0f 1
                printf '| req/s ratio per round (median, min–max) | | | | %s | %s |\n' \
                    "$(nxb_cell "$tmp/r.$key.l1.L$L" 1 %.2f)" "$(nxb_cell "$tmp/r.$key.l2.L$L" 1 %.2f)"
                rowr "p50 µs" 2 %.0f 1
                rowr "p99 µs" 3 %.0f 1
                rowr "server CPU µs/req (nexus + nxmock)" 5 %.1f 1
                rowr "Redis CPU µs/req" 12 %.1f 0 l2
                rowr "backend calls per answer" 10 %.3f 0
                rowr "L1 hits per answer" 13 %.3f 0
                rowr "Redis GETs per answer" 11 %.3f 0
                rowr "load CPU busy % (every process on it)" 9 %.0f 0
                rowr "errors" 7 %.0f 0
            } >>"$cache_tables"
            echo >>"$cache_tables"
            if [ "$key" = "c$CONNS" ]; then
                awk -v L="$L" -v a="$(nxb_median "$tmp/r.$key.l1.L$L" 1)" -v b="$(nxb_median "$tmp/r.$key.l2.L$L" 1)" \
                    -v g="$(nxb_median "$tmp/res.$key.l2.L$L" 11)" -v c="$CONNS" 'BEGIN {
                    printf "L = %s ms, %d connections: L1 hit %.2f× uncached — goal (≥ 5×) %s; Redis hit %.2f× uncached — goal (≥ 2×) %s (%.3f Redis GETs per answer: ", L, c, a, (a >= 5 ? "met" : "NOT met"), b, (b >= 2 ? "met" : "NOT met"), g
                    if (g < 0.5) printf "single-flight merged the concurrent lookups of the one key, so most answers shared a GET)\n"
                    else printf "nearly every answer made its own GET)\n" }' >>"$cache_summary"
            else
                awk -v L="$L" -v a="$(nxb_median "$tmp/r.$key.l1.L$L" 1)" -v b="$(nxb_median "$tmp/r.$key.l2.L$L" 1)" \
                    -v g="$(nxb_median "$tmp/res.$key.l2.L$L" 11)" 'BEGIN {
                    printf "L = %s ms, 1 connection: L1 hit %.2f×, Redis hit %.2f× the uncached round trips per second (%.3f Redis GETs per answer)\n", L, a, b, g }' >>"$cache_summary"
            fi
        done
    done
fi

# ---- output ----

other_all=$tmp/other.all
cat "$tmp"/res.* 2>/dev/null | awk '{print $8}' >"$other_all"
read -r om olo ohi <<<"$(nxb_file_stats "$other_all" 1)"
other_line="CPU $NXB_SERVER_CPU time taken by processes other than the nexus under test (and its nxmock) during the recorded runs: median ${om}%, min ${olo}%, max ${ohi}%; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# A part whose runs shared the server CPU with other work is flagged.
noisy_line=""
for part in fan c; do
    { cat "$tmp"/res."$part"* 2>/dev/null || true; } | awk '{print $8}' >"$tmp/other.$part"
    [ -s "$tmp/other.$part" ] || continue
    pm=$(nxb_file_stats "$tmp/other.$part" 1 | cut -d' ' -f1)
    if awk -v m="$pm" 'BEGIN {exit !(m > 15)}'; then
        [ "$part" = fan ] && pn="the fan-out runs" || pn="the cache runs"
        noisy_line="${noisy_line:+$noisy_line; }WARNING: other processes took a median ${pm}% of CPU $NXB_SERVER_CPU during $pn: nexus got only what they left, so their req/s and latencies measure this machine's contention as much as nexus (the CPU µs/req rows hold up better, though cold caches inflate them too); rerun on a quiet machine"
    fi
done
[ -z "$noisy_line" ] || nxb_log "$noisy_line"
elapsed=$(($(date +%s) - t_start))

echo
if [ "$do_fan" = 1 ]; then
    cat "$fan_table"
    echo
    cat "$fan_diff"
    echo
    echo "$fan_summary"
    echo
fi
if [ "$do_cache" = 1 ]; then
    echo "Redis hit setup: $l2_setup"
    echo
    cat "$cache_tables"
    cat "$cache_summary"
    echo
fi
echo "$other_line"
[ -z "$noisy_line" ] || echo "$noisy_line"

if [ -n "$RESULTS" ]; then
    taskset -cp "$all_cpus" $$ >/dev/null
    {
        echo
        echo "## $(date -u '+%Y-%m-%d %H:%M') UTC — workflow fan-out overhead and tool cache speedups (\`bench/pipeline.sh\`)"
        echo
        echo "- nexus, nxmock and nxload from \`$build_dir\` ($build_kind); nexus \`--shards 1\` and the \`nxmock --stdio\` backend it spawns on CPU $NXB_SERVER_CPU, nxload on CPU $NXB_LOAD_CPU; ${elapsed}s in all"
        if [ "$do_fan" = 1 ]; then
            echo "- fan-out: workflow \`fan8\` = one \`parallel\` step of 8 \`mock.echo\` branches, b1–b7 \`latency_ms: $FAST_MS\`, b8 (the slowest, started last) \`latency_ms: $SLOW_MS\`; \`one\` = b8 alone as a one-step workflow; \"tool\" = \`POST /tools/mock__echo\` with b8's arguments (nexus's REST tool route); direct8/direct1 = the 8 calls as one JSON-RPC batch / b8 alone sent straight to a second nxmock serving Streamable HTTP (protocol 2025-03-26), no nexus; both nxmocks on $([ "$BACKEND_CPU" = load ] && echo "the load CPU $NXB_LOAD_CPU (BACKEND_CPU=load)" || echo "the server CPU $NXB_SERVER_CPU, beside nexus (BACKEND_CPU=server)"). $FAN_ROUNDS interleaved rounds of ${FAN_DUR}s, 1 connection closed loop; each round = 3 paired runs (fan8|tool, one|tool, direct8|direct1: nxload alternates the two requests on its connection, waiting $PAIR_GAP after each answer) then the 5 targets in separate runs (back to back); overheads are per-round differences of p50/p99/mean. nxmock answers latency_ms to the microsecond (an io_uring timeout); nxload's histogram buckets are 4 µs wide at 4–8 ms; $([ "$IDLE_SPIN" = 1 ] && echo "SCHED_IDLE busy loops kept CPU $NXB_SERVER_CPU and CPU $NXB_LOAD_CPU out of idle during the rounds (IDLE_SPIN=1: a halted vCPU's wake-up varies by tens of µs)" || echo "the CPUs were left to idle (IDLE_SPIN=0)"); the workflow answers carry the execution record (~0.5–1 KB), the tool route the bare CallToolResult; $([ "$PREFILL" = 1 ] && echo "the execution store (every start walks it) was filled to its cap by a \`prefill\` workflow before the rounds" || echo "the execution store started empty and grew through the rounds (PREFILL=0)")"
        fi
        if [ "$do_cache" = 1 ]; then
            echo "- cache: three nexus instances (uncached; \`servers[].cache: {tools: {echo: 1h}}\`; the same plus \`cache.redis\` with L1 off) each with its own nxmock; MCP \`tools/call mock__echo {\"message\", \"latency_ms\": L}\` over Streamable HTTP, one session per connection, the same arguments on every connection; $ROUNDS interleaved rounds of ${DUR}s at $CONNS connections closed loop$([ "$LAT_DUR" = 0 ] || echo ", then $ROUNDS of ${LAT_DUR}s at 1 connection"); redis-server $redis_v on CPU $redis_cpu (REDIS_CPU=$REDIS_CPU), \`--save '' --appendonly no\`"
            echo "- Redis hit setup: $l2_setup"
            echo "- per answer: backend calls (nexus /health), L1 hits (/metrics) and Redis GETs (INFO commandstats) over each run ÷ 2xx answers; single-flight merges concurrent lookups of one key on a shard into one GET, so with one argument set on $CONNS connections the Redis row serves many answers per GET; the 1-connection rows have no concurrent lookups (every Redis hit is its own GET)"
        fi
        echo "- load average (1/5/15 min) before the run: $load_before"
        echo
        if [ "$do_fan" = 1 ]; then
            cat "$fan_table"
            echo
            cat "$fan_diff"
            echo
            echo "$fan_summary"
            echo
            echo "- nexus /health after the fan-out runs: \`$fan_health\`"
            echo
        fi
        if [ "$do_cache" = 1 ]; then
            cat "$cache_tables"
            sed 's/^/- /' "$cache_summary"
            echo "- Redis-hit nexus /health after the runs: \`$cache_health\`"
        fi
        echo "- $other_line"
        [ -z "$noisy_line" ] || echo "- **$noisy_line**"
        nxb_machine_md "$root"
    } >>"$RESULTS"
    nxb_log "appended to $RESULTS"
fi
ok=1
