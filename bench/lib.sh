# bench/lib.sh: helpers shared by the bench scripts (sourced, never run): free ports, CPU pinning,
# server start/stop by PID, process CPU time, median/min/max, output parsing for wrk and nxload,
# and the machine details that go next to every number in bench/RESULTS.md.
# shellcheck shell=bash

nxb_log() { echo "bench: $*" >&2; }
nxb_die() {
    echo "bench: error: $*" >&2
    exit 1
}

nxb_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || nxb_die "'$tool' is required (scripts/deps installs it)"
    done
}

# CPUs: the server on NXB_SERVER_CPU, load generators on NXB_LOAD_CPU (env SERVER_CPU/LOAD_CPU).
NXB_SERVER_CPU=${SERVER_CPU:-0}
NXB_LOAD_CPU=${LOAD_CPU:-1}
if [ "$(nproc)" -lt 2 ] && [ "$NXB_LOAD_CPU" = 1 ]; then
    nxb_log "only one CPU: server and load share CPU 0 (numbers will be pessimistic)"
    NXB_LOAD_CPU=0
fi

# Command prefixes, not functions: "${NXB_PIN_SERVER[@]}" CMD & leaves CMD's own PID in $!
# (taskset execs it), where a backgrounded function would leave the PID of a subshell.
# shellcheck disable=SC2034 # used by the scripts that source this file
NXB_PIN_SERVER=(taskset -c "$NXB_SERVER_CPU")
# shellcheck disable=SC2034
NXB_PIN_LOAD=(taskset -c "$NXB_LOAD_CPU")

# nxb_free_port: prints a loopback TCP port nobody listens on, below the ephemeral range so load
# connections never collide with it, and never the same port twice in one script.
NXB_PORTS_GIVEN=" "
nxb_free_port() {
    local port _
    for _ in $(seq 1 500); do
        port=$((10000 + RANDOM % 22000))
        case "$NXB_PORTS_GIVEN" in *" $port "*) continue ;; esac
        if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
            NXB_PORTS_GIVEN="$NXB_PORTS_GIVEN$port "
            echo "$port"
            return 0
        fi
    done
    nxb_die "no free port found"
}

# nxb_wait_http URL PID [SECONDS]: waits until URL answers 2xx, failing early if PID died.
nxb_wait_http() {
    local url=$1 pid=$2 secs=${3:-10} _
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# nxb_stop PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5); reaps our children.
nxb_stop() {
    local pid=$1 secs=${2:-5} _
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((secs * 10))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            nxb_log "pid $pid ignored SIGTERM for ${secs}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# nxb_pid_ticks PID: utime+stime (clock ticks) of PID and its direct children (NGINX workers).
nxb_pid_ticks() {
    local total=0 p stat rest
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${stat##*) } # comm may hold spaces and parentheses: cut after the last ") "
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
# shellcheck disable=SC2034 # used by the scripts that source this file
NXB_CLK_TCK=$(getconf CLK_TCK)

# nxb_stats V...: prints "median min max" of the numbers given (median of an even count is the
# mean of the middle two).
nxb_stats() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
        END {
            if (NR == 0) { print "nan nan nan"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR]
        }'
}

# nxb_json_num FILE KEY: the first number stored under "KEY": in a one-line JSON file.
nxb_json_num() {
    grep -o "\"$2\":[-0-9.e+]*" "$1" | head -n 1 | cut -d: -f2
}

# nxb_parse_nxload FILE: prints "requests req_per_s p99_us errors" from nxload --json output.
nxb_parse_nxload() {
    local f=$1 errs
    errs=$(grep -o '"errors":{[^}]*}' "$f" | grep -o ':[0-9]*' | tr -d : | awk '{s += $1} END {print s + 0}')
    echo "$(nxb_json_num "$f" requests) $(nxb_json_num "$f" req_per_s) $(nxb_json_num "$f" p99) $errs"
}

# nxb_parse_wrk FILE: prints "requests req_per_s p99_us errors" from `wrk --latency` output
# (errors = socket errors + non-2xx/3xx responses).
nxb_parse_wrk() {
    awk '
        function us(s) {
            if (s ~ /us$/) return s + 0
            if (s ~ /ms$/) return (s + 0) * 1000
            if (s ~ /m$/) return (s + 0) * 60e6
            if (s ~ /s$/) return (s + 0) * 1e6
            return s + 0
        }
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = us($2) }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        END { printf "%s %s %s %d\n", req, rps, p99, err }
    ' "$1"
}

# nxb_nginx_conf TEMPLATE OUT PORT DIR: fills an nginx .conf.in; workers run as root when we are
# root (the temp dir is ours), as the default user otherwise.
nxb_nginx_conf() {
    local user=""
    [ "$(id -u)" -eq 0 ] && user="user root;"
    sed -e "s#@PORT@#$3#g" -e "s#@DIR@#$4#g" -e "s#@USER@#$user#g" "$1" >"$2"
}

# nxb_pipeline_lua FILE DEPTH: a wrk script sending DEPTH requests per write.
nxb_pipeline_lua() {
    cat >"$1" <<EOF
-- written by bench/lib.sh: $2 pipelined requests per write
init = function(args)
    local r = {}
    for i = 1, $2 do r[i] = wrk.format() end
    req = table.concat(r)
end
request = function() return req end
EOF
}

# nxb_build ROOT TARGET...: builds TARGETs into ROOT/build (the default RelWithDebInfo, -O2) when
# any is missing.
nxb_build() {
    local root=$1 missing=0 t
    shift
    for t in "$@"; do [ -x "$root/build/$t" ] || missing=1; done
    [ "$missing" -eq 0 ] && return 0
    nxb_log "building $* in $root/build (release)"
    local log
    log=$(mktemp /tmp/nx-build.XXXXXX)
    if ! { cmake -S "$root" -B "$root/build" -DNX_TESTS=OFF &&
        cmake --build "$root/build" --target "$@" -j "$(nproc)"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        nxb_die "build of $* failed"
    fi
    rm -f "$log"
}

# nxb_machine_md: markdown bullet lines describing this machine and the tools.
nxb_machine_md() {
    local cpu kernel uring nginx_v wrk_v commit
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    kernel=$(uname -r)
    uring=$(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo unknown)
    nginx_v=$(nginx -v 2>&1 | sed 's/^nginx version: //')
    wrk_v=$(wrk --version 2>&1 | head -n 1 | awk '{print $2, $3}' || true)
    commit=$(git -C "${1:-.}" rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
    echo "- kernel \`$kernel\`, CPU ${cpu:-unknown} ($(nproc) CPUs), server on CPU $NXB_SERVER_CPU, load on CPU $NXB_LOAD_CPU"
    echo "- liburing-dev $uring, $nginx_v, wrk $wrk_v, gcc $(gcc -dumpfullversion 2>/dev/null || echo '?'), nexus commit $commit"
}


# ---- process accounting: what a target and the processes it spawned cost ----
# nxb_tree_pids PID: PID and all its descendants, parents first.
nxb_tree_pids() {
    local c
    echo "$1"
    for c in $(pgrep -P "$1" 2>/dev/null || true); do nxb_tree_pids "$c"; done
}
# nxb_proc_ticks PID...: utime+stime (clock ticks) of the given processes (threads included).
nxb_proc_ticks() {
    local total=0 p stat rest
    for p in "$@"; do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
# nxb_tree_ticks PID: ticks of PID and every live descendant (nexus and the nxmock it spawned).
nxb_tree_ticks() {
    # shellcheck disable=SC2046
    nxb_proc_ticks $(nxb_tree_pids "$1")
}
# nxb_cpu_ticks CPU: "busy total" clock ticks of one CPU so far (/proc/stat).
nxb_cpu_ticks() {
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

# ---- tables of per-round results: one line per round, whitespace-separated fields ----

# nxb_file_stats FILE FIELD: "median min max" of column FIELD over the lines of FILE.
nxb_file_stats() {
    local -a v
    mapfile -t v < <(awk -v f="$2" '{print $f}' "$1")
    nxb_stats "${v[@]}"
}
# nxb_cell FILE FIELD [FMT]: "median (min–max)" of a column, or n/a for an empty FILE.
nxb_cell() {
    local f=$1 fld=$2 fmt=${3:-%.0f} m lo hi
    if [ ! -s "$f" ]; then
        echo "n/a"
        return
    fi
    read -r m lo hi <<<"$(nxb_file_stats "$f" "$fld")"
    # shellcheck disable=SC2059
    printf "$fmt ($fmt–$fmt)" "$m" "$lo" "$hi"
}
# nxb_median FILE FIELD: the median of a column, or nothing for an empty FILE.
nxb_median() { if [ -s "$1" ]; then nxb_file_stats "$1" "$2" | cut -d' ' -f1; else echo ""; fi; }
# nxb_ratio A B: "A/B×" to 3 digits, or n/a.
nxb_ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b != "" && b > 0) printf "%.3g×", a / b; else print "n/a"}'; }

# nxb_fanout_workflows FAST_MS SLOW_MS: the `workflows:` entries of the fan-out benches, on a
# stdio backend named mock: fan8 (one parallel step of 8 mock.echo calls, b1-b7 of FAST_MS and
# b8, the slowest, started last, of SLOW_MS) and one (b8 alone as a one-step workflow).
nxb_fanout_workflows() {
    local i
    echo "  - name: fan8"
    echo "    description: \"8 parallel mock.echo calls: 7 x $1 ms, the last one $2 ms\""
    echo "    steps:"
    echo "      - id: fan"
    echo "        parallel:"
    for i in 1 2 3 4 5 6 7; do
        echo "          - {id: b$i, call: mock.echo, with: {message: \"branch $i\", latency_ms: $1}}"
    done
    echo "          - {id: b8, call: mock.echo, with: {message: \"slowest\", latency_ms: $2}}"
    echo "  - name: one"
    echo "    description: \"b8 of fan8 alone: one mock.echo call of $2 ms\""
    echo "    steps:"
    echo "      - {id: b8, call: mock.echo, with: {message: \"slowest\", latency_ms: $2}}"
}

# nxb_mcp_session URL PROTOCOL: initialize + notifications/initialized at the MCP endpoint URL
# (Streamable HTTP) with protocol version PROTOCOL; prints the session id (fails without one).
nxb_mcp_session() {
    local sid
    sid=$(curl -fsS -D - -o /dev/null --max-time 10 -X POST "$1" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"'"$2"'","capabilities":{},"clientInfo":{"name":"nxload","version":"1"}}}' |
        tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" {print $2}')
    [ -n "$sid" ] || return 1
    curl -fsS -o /dev/null --max-time 10 -X POST "$1" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $sid" \
        -H "MCP-Protocol-Version: $2" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' ||
        return 1
    echo "$sid"
}
