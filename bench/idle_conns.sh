#!/usr/bin/env bash
# Memory per idle connection: RSS of nexus (--shards 1) with N (default 10000) keep-alive
# connections open, each having served one request, minus RSS before they were opened.
# Goal (BENCHMARKS.md): <= 16 KiB per connection. Loopback only; stops everything it starts.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
NEXUS=${NEXUS:-$here/build/nexus}
[ -x "$NEXUS" ] || (cd "$here" && cmake -S . -B build -DNX_TESTS=OFF >/dev/null && cmake --build build -j"$(nproc)" >/dev/null)
ulimit -n "$(ulimit -Hn)"  # each side needs N descriptors; the hard limit here is 20000
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$NEXUS" --port "$port" --no-mcp --shards 1 --log-level warn &
pid=$!
holder=""
cleanup() { [ -n "$holder" ] && kill "$holder" 2>/dev/null; kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/plaintext" >/dev/null
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss_kib "$pid")
fifo=$(mktemp -u); mkfifo "$fifo"
node "$here/bench/hold_conns.mjs" 127.0.0.1 "$port" "$N" 20 >"$fifo" &
holder=$!
read -r line <"$fifo"; rm -f "$fifo"
sleep 1
after=$(rss_kib "$pid")
open=$(curl -fs "http://127.0.0.1:$port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections_open"])')
per=$(( (after - before) * 1024 / N ))
echo "holder: $line"
printf 'connections open: %s\nRSS before: %s KiB, with %s idle connections: %s KiB\nper connection: %s bytes (goal <= 16384)\n' \
    "$open" "$before" "$N" "$after" "$per"
