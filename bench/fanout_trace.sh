#!/usr/bin/env bash
# bench/fanout_trace.sh: where the time of a workflow fan-out goes, request by request, from the
# kernel's io_uring tracepoints (perf, root) rather than from the client's clock. A diagnostic
# beside bench/pipeline.sh (whose end-to-end numbers are the ones the goals are judged by).
#
# nexus (release build, --shards 1) with its nxmock --stdio backend on the server CPU, nxload
# (1 connection, closed loop) on the load CPU, SCHED_IDLE busy loops keeping both CPUs out of
# idle (as pipeline.sh part A). For each target - fan8 (8 parallel mock.echo: 7 x 1 ms, the
# slowest 5 ms last), one (the 5 ms call as a one-step workflow), tool (the 5 ms call alone,
# POST /tools/mock__echo) - nxload runs RUN_S seconds while perf records TRACE_S seconds of
# io_uring submissions and completions on both CPUs. Per request, medians in us:
#   wake_in   nxload's send completed -> nexus's receive completed
#   start     nexus's receive -> its first write to the backend's stdin (all calls of the turn)
#   mid       that write -> nexus's last read from the backend, less SLOW_MS: the backend's
#             intake and answer around its own wait
#   end       nexus's last backend read -> its send of the answer
#   wake_out  nexus's send -> nxload's receive completed
#   total     nxload's send -> its receive
# Tracepoints cost a little on every event, so absolute values run a few us high; compare rows.
#
# Each target first runs WARMUP_S seconds untraced: the first seconds after nexus starts run slow
# (cold caches, first allocations).
#
# env: ROUNDS (2), RUN_S (4), TRACE_S (2), WARMUP_S (3), SLOW_MS (5), FAST_MS (1), NEXUS_BIN, NXLOAD_BIN,
#      NXMOCK_BIN (default: build/), SERVER_CPU (0), LOAD_CPU (1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

ROUNDS=${ROUNDS:-2}
RUN_S=${RUN_S:-4}
TRACE_S=${TRACE_S:-2}
WARMUP_S=${WARMUP_S:-3}
SLOW_MS=${SLOW_MS:-5}
FAST_MS=${FAST_MS:-1}
nxb_require perf python3 taskset chrt timeout curl
[ "$(id -u)" = 0 ] || nxb_die "perf's io_uring tracepoints on every CPU need root"
NEXUS_BIN=${NEXUS_BIN:-$root/build/nexus}
NXLOAD_BIN=${NXLOAD_BIN:-$root/build/nxload}
NXMOCK_BIN=${NXMOCK_BIN:-$root/build/nxmock}
for b in "$NEXUS_BIN" "$NXLOAD_BIN" "$NXMOCK_BIN"; do
    [ -x "$b" ] || nxb_die "$b not found (cmake --build build, or set NEXUS_BIN/NXLOAD_BIN/NXMOCK_BIN)"
done

tmp=$(mktemp -d /tmp/nx-fanout-trace.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do nxb_stop "$p" 5; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$tmp/wf.yaml" <<EOF
servers:
  - name: mock
    transport: stdio
    command: "$NXMOCK_BIN"
    args: ["--stdio", "--log-level", "warn"]
workflows:
$(nxb_fanout_workflows "$FAST_MS" "$SLOW_MS")
EOF
port=$(nxb_free_port)
mport=$(nxb_free_port)
"${NXB_PIN_SERVER[@]}" "$NEXUS_BIN" --config "$tmp/wf.yaml" --port "$port" --mcp-port "$mport" \
    --shards 1 --log-level warn >"$tmp/nexus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null |
        grep -q '"mock":{[^}]*"state":"ready"' && break
    sleep 0.1
done
curl -fsS -X POST -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$port/api/workflows/fan8" |
    grep -q '"status":"succeeded"' || nxb_die "fan8 did not succeed: $(tail -n 5 "$tmp/nexus.log")"
echo '{}' >"$tmp/empty.json"
printf '{"message":"slowest","latency_ms":%s}' "$SLOW_MS" >"$tmp/tool.json"
for c in "$NXB_SERVER_CPU" "$NXB_LOAD_CPU"; do
    timeout $((3 * WARMUP_S + ROUNDS * 3 * (RUN_S + TRACE_S + 5) + 30)) chrt --idle 0 taskset -c "$c" sh -c 'while :; do :; done' &
    pids+=($!)
done

# analyze DATA: the medians of one target's trace (see the header).
analyze() {
    perf script -i "$1" -F comm,time,event,trace 2>/dev/null | python3 -c '
import sys, statistics
slow = float(sys.argv[1]) * 1000
rows = []
for line in sys.stdin:
    p = line.split()
    if len(p) < 4: continue
    d = {}
    for i, x in enumerate(p):
        if x in ("opcode", "result", "user_data") and i + 1 < len(p): d[x] = p[i + 1].rstrip(",")
    rows.append((p[0], float(p[1].rstrip(":")) * 1e6, "complete" in p[2], d))
send_ud = next((d["user_data"] for c, t, comp, d in rows
                if c == "nexus" and not comp and d.get("opcode") == "SEND"), None)
if send_ud is None: sys.exit("no answer sent by nexus in the trace")
recv_ud = hex(int(send_ud, 16) - 8)  # a connection keeps its receive op just before its send op
res = lambda d: int(d["result"]) if d.get("result", "x").lstrip("-").isdigit() else 0
ph = {k: [] for k in ("wake_in", "start", "mid", "end", "wake_out", "total")}
ld_send = ld_recv = None
L = N = W = P = S = None
for comm, t, comp, d in rows:
    ud, op = d.get("user_data"), d.get("opcode")
    if comm == "nxload":
        if not comp and op == "SEND": ld_send = ud
        elif not comp and op == "RECV": ld_recv = ud
        elif comp and ud == ld_send: L, N, W, P, S = t, None, None, None, None
        elif comp and ud == ld_recv and None not in (L, N, S):
            ph["wake_in"].append(N - L)
            ph["start"].append((W or N) - N)
            ph["mid"].append((P or S) - (W or N) - slow)
            ph["end"].append(S - (P or S))
            ph["wake_out"].append(t - S)
            ph["total"].append(t - L)
            L = None
    elif comm == "nexus" and L is not None:
        if comp and ud == recv_ud and res(d) > 0 and N is None: N = t
        elif not comp and op == "WRITE" and N is not None and W is None: W = t
        elif comp and W is not None and S is None and ud not in (recv_ud, send_ud) and res(d) > 1: P = t
        elif not comp and op == "SEND" and N is not None and S is None: S = t
m = {k: statistics.median(v) for k, v in ph.items() if v}
print(" ".join("%.0f" % m.get(k, float("nan")) for k in ph), len(ph["total"]))
' "$SLOW_MS"
}

target_of() { # TARGET: "URL BODY"
    if [ "$1" = tool ]; then
        echo "http://127.0.0.1:$port/tools/mock__echo $tmp/tool.json"
    else
        echo "http://127.0.0.1:$port/api/workflows/$1 $tmp/empty.json"
    fi
}
for t in fan8 one tool; do
    read -r url body <<<"$(target_of "$t")"
    "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c 1 -d "${WARMUP_S}s" --json -H 'Content-Type: application/json' \
        --body-file "$body" "$url" >/dev/null 2>&1 || nxb_die "$t: warm-up failed"
done

echo "| target | wake_in | start | mid | end | wake_out | total | requests |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
    for t in fan8 one tool; do
        read -r url body <<<"$(target_of "$t")"
        "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c 1 -d "${RUN_S}s" --json -H 'Content-Type: application/json' \
            --body-file "$body" "$url" >"$tmp/load.json" 2>/dev/null &
        lp=$!
        sleep 1
        perf record -q -a -e io_uring:io_uring_submit_req -e io_uring:io_uring_complete \
            -o "$tmp/$t.data" -- sleep "$TRACE_S" >/dev/null 2>&1
        wait "$lp" || nxb_die "$t: nxload failed"
        read -r wi st mi en wo to n <<<"$(analyze "$tmp/$t.data")"
        echo "| $t (round $round) | $wi | $st | $mi | $en | $wo | $to | $n |"
    done
done
