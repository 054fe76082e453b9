#!/usr/bin/env bash
# The daemon under load: while a backup runs, CLIENTS concurrent clients on /metrics and
# /api/status for SECONDS; p50/p99 latency, errors, and the daemon's RSS at rest and under load.
#
#   bench/serve_load.sh [--clients 200] [--seconds 30] [--source /usr/share] [--no-build]
#
# Needs wrk (apt-get install wrk). The site is the embedded default plus a files dataset of
# SOURCE, in a temporary directory; nothing outside it is written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
clients=200 seconds=30 source=/usr/share build=1
while [ $# -gt 0 ]; do
    case $1 in
        --clients) clients=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --source) source=$2; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "serve_load.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
command -v wrk >/dev/null || { echo "serve_load.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
[ $build = 1 ] && (cd "$root" && cargo build --release -q -p bulwark)
bulwark=$root/target/release/bulwark
work=$(mktemp -d /tmp/bulwark-serve-load-XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -a "$root/examples/sample" "$root/examples/demo.passphrase" "$work/"
sed 's#../target/demo/#state/#' "$root/examples/bulwark.toml" > "$work/bulwark.toml"
cat >> "$work/bulwark.toml" <<TOML

[datasets.load]
kind = "files"
paths = ["$source"]
schedule = "daily at 03:00"

[daemon]
max_jitter = "0"
TOML
"$bulwark" serve -c "$work/bulwark.toml" --init --listen 127.0.0.1:0 --poll-seconds 3600 \
    2> "$work/serve.log" &
pid=$!
port=""
for _ in $(seq 1 600); do
    port=$(sed -n 's#.*dashboard at http://127.0.0.1:\([0-9]*\)/.*#\1#p' "$work/serve.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.log" >&2; exit 1; }
token=$(cat "$work/bulwark-api.token")
url=http://127.0.0.1:$port
auth="Authorization: Bearer $token"
until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$url/readyz")" = 200 ]; do sleep 0.2; done
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
rest=$(rss)
# The backup that runs under the load.
curl -s -o /dev/null -H "$auth" -X POST "$url/api/datasets/load/run"
peak=$rest
( while kill -0 "$pid" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" > "$work/peak"; sleep 0.5; done ) &
sampler=$!
cat > "$work/paths.lua" <<'LUA'
local paths = { "/metrics", "/api/status" }
local n = 0
request = function()
    n = n + 1
    return wrap_request(paths[(n % 2) + 1])
end
function wrap_request(p) return wrk.format("GET", p) end
LUA
threads=2
[ "$clients" -lt 2 ] && threads=1
wrk -t "$threads" -c "$clients" -d "${seconds}s" --latency -H "$auth" -s "$work/paths.lua" "$url" > "$work/wrk.txt"
kill "$sampler" 2>/dev/null || true
peak=$(cat "$work/peak" 2>/dev/null || echo "$rest")
running=$(curl -s -H "$auth" "$url/api/jobs" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running"]))')
p50=$(awk '/^ +50%/ {print $2}' "$work/wrk.txt")
p99=$(awk '/^ +99%/ {print $2}' "$work/wrk.txt")
reqs=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
errors=$(awk '/Socket errors|Non-2xx/ {print}' "$work/wrk.txt" | tr '\n' ' ')
echo "| clients | seconds | requests | req/s | p50 | p99 | errors | RSS at rest | RSS peak under load | backup still running at the end |"
echo "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
echo "| $clients | $seconds | $reqs | $rps | $p50 | $p99 | ${errors:-none} | $rest MiB | $peak MiB | $running |"
