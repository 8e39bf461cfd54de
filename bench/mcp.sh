#!/usr/bin/env bash
# bench/mcp.sh: MCP tools/call of an echo tool over Streamable HTTP, nexus (--shards 1, its
# native debug_echo, answered as application/json) against @modelcontextprotocol/server-everything
# (Node, its echo tool), both on CPU 0, the same nxload load from CPU 1: CONNS connections, each
# in its own MCP session (initialize + notifications/initialized first), one request outstanding
# per connection, rounds interleaved. Then the RSS of nexus with IDLE (10000) WebSocket MCP
# clients connected and initialized. Prints the table (median, min-max, ratio) and appends it
# with machine details to bench/RESULTS.md.
#
# env: ROUNDS (3), DUR seconds per run (10), CONNS (32), WARMUP s (2), IDLE (10000; 0 skips),
#      SMOKE=1 (one 1 s round, 200 idle clients, no RESULTS.md unless RESULTS is set),
#      RESULTS (file to append to, empty = none), NEXUS_BIN, NXLOAD_BIN, SERVER_CPU, LOAD_CPU,
#      KEEP_TMP=1.
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
IDLE=${IDLE:-10000}
if [ "$SMOKE" = 1 ]; then
    ROUNDS=1 DUR=1 WARMUP=0 IDLE=200
    RESULTS=${RESULTS-}
else
    RESULTS=${RESULTS-$here/RESULTS.md}
fi
PV=2025-11-25
NODE_MODULES=$root/tests/integration/node_modules
EVERYTHING=$NODE_MODULES/@modelcontextprotocol/server-everything/dist/index.js

nxb_require node taskset curl ss cmake
[ -f "$EVERYTHING" ] || nxb_die "server-everything missing: run scripts/deps"
if [ -z "${NEXUS_BIN-}" ]; then nxb_build "$root" nexus nxload; fi
if [ -z "${NXLOAD_BIN-}" ]; then nxb_build "$root" nxload; fi
NEXUS_BIN=${NEXUS_BIN:-$root/build/nexus}
NXLOAD_BIN=${NXLOAD_BIN:-$root/build/nxload}

tmp=$(mktemp -d /tmp/nx-mcp.XXXXXX)
a_pid="" b_pid="" holder_pid="" ok=0
cleanup() {
    nxb_stop "$holder_pid"
    nxb_stop "$a_pid"
    nxb_stop "$b_pid"
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$ok" != 1 ]; then
        nxb_log "logs kept in $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" # IDLE clients need as many descriptors on each side

# ---- servers: A = nexus, B = server-everything (forced onto 127.0.0.1) ----

a_port=$(nxb_free_port)
a_rest=$(nxb_free_port)
b_port=$(nxb_free_port)
"${NXB_PIN_SERVER[@]}" "$NEXUS_BIN" --port "$a_rest" --mcp-port "$a_port" --shards 1 \
    --debug-routes --log-level warn --set mcp.max_sessions=100000 >"$tmp/nexus.log" 2>&1 &
a_pid=$!
# server-everything listens on every interface unless told otherwise; a preload pins it to
# loopback so that benchmark traffic never leaves the machine.
cat >"$tmp/loopback.cjs" <<'EOF'
const net = require('node:net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || typeof args[0] === 'string') args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
EOF
PORT=$b_port "${NXB_PIN_SERVER[@]}" node --require "$tmp/loopback.cjs" "$EVERYTHING" streamableHttp \
    >"$tmp/everything.log" 2>&1 &
b_pid=$!

a_url=http://127.0.0.1:$a_port/mcp
b_url=http://127.0.0.1:$b_port/mcp
for _ in $(seq 1 100); do
    ss -Htln "sport = :$a_port" | grep -q . && ss -Htln "sport = :$b_port" | grep -q . && break
    kill -0 "$a_pid" && kill -0 "$b_pid" || nxb_die "a server died at start; logs in $tmp"
    sleep 0.1
done
ss -Htln "sport = :$b_port" | grep -q . || nxb_die "server-everything did not listen; logs in $tmp"

# Per server: one session per connection (the SDK maps request ids to streams per session, so
# connections must not share one), the echo request, and a check that it answers as expected.
prepare() { # NAME URL TOOL
    local name=$1 url=$2 tool=$3 i sid
    : >"$tmp/$name.sessions"
    for i in $(seq 1 "$CONNS"); do
        sid=$(nxb_mcp_session "$url" "$PV") || nxb_die "$name: initialize failed; logs in $tmp"
        echo "Mcp-Session-Id: $sid" >>"$tmp/$name.sessions"
    done
    printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":{"message":"hello from nxload"}}}' \
        "$tool" >"$tmp/$name.body"
    sid=$(head -n 1 "$tmp/$name.sessions" | cut -d' ' -f2)
    curl -fsS --max-time 5 -X POST "$url" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $sid" \
        -H "MCP-Protocol-Version: $PV" --data-binary @"$tmp/$name.body" >"$tmp/$name.sample" ||
        nxb_die "$name: tools/call failed; logs in $tmp"
    grep -q 'hello from nxload' "$tmp/$name.sample" || nxb_die "$name: unexpected answer: $(cat "$tmp/$name.sample")"
}
prepare nexus "$a_url" debug_echo
prepare everything "$b_url" echo
nxb_log "nexus answers: $(head -c 160 "$tmp/nexus.sample")"
nxb_log "server-everything answers: $(head -c 160 "$tmp/everything.sample" | tr '\n' ' ')"

run_load() { # NAME URL SECONDS OUTFILE
    "${NXB_PIN_LOAD[@]}" "$NXLOAD_BIN" -c "$CONNS" -d "${3}s" --timeout 5000 --json \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H "MCP-Protocol-Version: $PV" --conn-headers "$tmp/$1.sessions" \
        --body-file "$tmp/$1.body" "$2" >"$4"
}

measure() { # NAME URL PID ROUND
    local name=$1 url=$2 pid=$3 round=$4 out t0 t1 req rps p99 errs cpu
    kill -0 "$pid" 2>/dev/null || nxb_die "$name (pid $pid) died; logs in $tmp"
    out=$tmp/run.$name.$round
    t0=$(nxb_pid_ticks "$pid")
    run_load "$name" "$url" "$DUR" "$out" || nxb_die "$name: nxload failed: $(tail -n 3 "$out")"
    t1=$(nxb_pid_ticks "$pid")
    read -r req rps p99 errs <<<"$(nxb_parse_nxload "$out")"
    { [ -n "$req" ] && [ "$req" != 0 ]; } || nxb_die "$name: no requests ($out)"
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$NXB_CLK_TCK" -v n="$req" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')
    echo "$rps $p99 $cpu $errs" >>"$tmp/res.$name"
    nxb_log "round $round $name: $rps req/s, p99 ${p99}us, ${cpu}us CPU/req, $errs errors"
}

if [ "$WARMUP" != 0 ]; then
    nxb_log "warming up both servers (${WARMUP}s each, not recorded)"
    run_load nexus "$a_url" "$WARMUP" /dev/null
    run_load everything "$b_url" "$WARMUP" /dev/null
fi
for round in $(seq 1 "$ROUNDS"); do
    measure nexus "$a_url" "$a_pid" "$round"
    measure everything "$b_url" "$b_pid" "$round"
done

# ---- idle WebSocket clients: RSS of nexus ----

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
idle_line="not measured (IDLE=0)"
if [ "$IDLE" != 0 ]; then
    rss_before=$(rss_kib "$a_pid")
    fifo=$tmp/holder.fifo
    mkfifo "$fifo"
    node --experimental-websocket "$here/hold_ws.mjs" 127.0.0.1 "$a_port" "$IDLE" 30 >"$fifo" 2>"$tmp/holder.log" &
    holder_pid=$!
    read -r ready_line <"$fifo" || nxb_die "the WebSocket holder failed: $(tail -n 3 "$tmp/holder.log")"
    sleep 1
    rss_after=$(rss_kib "$a_pid")
    clients=$(curl -fsS --max-time 5 "http://127.0.0.1:$a_rest/api/v1/mcp/clients" | grep -o '"websocket":[0-9]*' | cut -d: -f2)
    nxb_stop "$holder_pid"
    holder_pid=""
    per=$(((rss_after - rss_before) * 1024 / IDLE))
    idle_line="$clients WebSocket MCP clients connected and initialized ($ready_line): RSS $rss_before KiB before, $rss_after KiB with them, $per bytes per client"
    nxb_log "$idle_line"
fi

# ---- table ----

col() { awk -v f="$2" '{print $f}' "$tmp/res.$1"; }
table=$tmp/table.md
{
    echo "| tools/call echo, $CONNS connections (a session each) | nexus median (min–max) | server-everything median (min–max) | ratio nexus/everything |"
    echo "|---|---:|---:|---:|"
    names=("req/s" "p99 µs" "server CPU µs/req" "errors")
    for f in 1 2 3 4; do
        mapfile -t av < <(col nexus "$f")
        mapfile -t bv < <(col everything "$f")
        read -r am alo ahi <<<"$(nxb_stats "${av[@]}")"
        read -r bm blo bhi <<<"$(nxb_stats "${bv[@]}")"
        ratio=$(awk -v a="$am" -v b="$bm" 'BEGIN {if (b > 0) printf "%.3g×", a / b; else print "n/a"}')
        printf '| %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %s |\n' "${names[$((f - 1))]}" \
            "$am" "$alo" "$ahi" "$bm" "$blo" "$bhi" "$ratio"
    done
} >"$table"
cat "$table"
echo "idle: $idle_line"

if [ -n "$RESULTS" ]; then
    {
        echo
        echo "## MCP tools/call echo: nexus vs server-everything ($(date -u +%Y-%m-%d))"
        echo
        echo "bench/mcp.sh, $ROUNDS interleaved rounds of ${DUR}s, nxload -c$CONNS (one session per connection), nexus --shards 1 (debug_echo, JSON answers), server-everything $(node -p "require('$NODE_MODULES/@modelcontextprotocol/server-everything/package.json').version") on node $(node --version) (SSE answers)."
        echo
        cat "$table"
        echo
        echo "- idle: $idle_line"
        nxb_machine_md "$root"
    } >>"$RESULTS"
    nxb_log "appended to $RESULTS"
fi
ok=1
