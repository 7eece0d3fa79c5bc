#!/usr/bin/env bash
# Quickstart demo: builds the commands, starts the demo origin (a leaderboard
# API with 50ms of artificial latency), a throwaway redis-server if one is
# installed, and cacheproxy in front of them, then fetches the same URL twice
# to show a MISS and then a HIT. Everything listens on 127.0.0.1 only, and
# every process started here is stopped on exit: at the end, or with
# KEEP=1 (make demo KEEP=1) when Ctrl-C is pressed, so that the dashboard
# and the proxy can be tried meanwhile. DEMO_BIN names a directory holding
# built cacheproxy and demo-origin binaries (then nothing is built).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
command -v curl >/dev/null 2>&1 || { echo "demo: curl is required" >&2; exit 1; }

DEMO_NAME=demo
# shellcheck source=scripts/lib.sh
source scripts/lib.sh # (the working directory is the repository now)

bin="${DEMO_BIN:-bin}"
if [ -z "${DEMO_BIN:-}" ]; then
	echo "==> go build -o bin/ ./cmd/..."
	go build -o bin/ ./cmd/...
fi

echo "==> starting demo-origin (50ms latency per request)"
"$bin/demo-origin" -listen 127.0.0.1:0 -latency 50ms 2>"$work/origin.log" &
pids+=($!)
origin="$(wait_for "$work/origin.log" 'addr=127\.0\.0\.1:[0-9]+' | cut -d= -f2)"
echo "    origin on http://$origin"

redis_args=()
if command -v redis-server >/dev/null 2>&1; then
	echo "==> starting redis-server on a unix socket (--save \"\", nothing kept)"
	redis-server --port 0 --unixsocket "$work/redis.sock" --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	pids+=($!)
	for i in $(seq 100); do
		[ -S "$work/redis.sock" ] && break
		sleep 0.1
	done
	[ -S "$work/redis.sock" ] || { echo "demo: redis-server did not start:" >&2; cat "$work/redis.log" >&2; exit 1; }
	redis_args=(-redis "unix://$work/redis.sock")
else
	echo "==> redis-server not installed: running cacheproxy with L1 only"
fi

# start_proxy NAME: starts a cacheproxy instance and sets $proxy and $admin.
start_proxy() {
	"$bin/cacheproxy" -origin "http://$origin" "${redis_args[@]}" \
		-listen 127.0.0.1:0 -admin-listen 127.0.0.1:0 -log-format text 2>"$work/$1.log" &
	pids+=($!)
	proxy="$(wait_for "$work/$1.log" 'server=proxy addr=127\.0\.0\.1:[0-9]+' | sed 's/.*addr=//')"
	admin="$(wait_for "$work/$1.log" 'server=admin addr=127\.0\.0\.1:[0-9]+' | sed 's/.*addr=//')"
}

echo "==> starting cacheproxy"
start_proxy proxy1
echo "    proxy on http://$proxy, admin on http://$admin"

# show N URL: fetches URL and prints the status, X-Cache and timings.
show() {
	local out code ttfb total xcache
	out="$(curl -sS -o /dev/null -D "$work/headers" -w '%{http_code} %{time_starttransfer} %{time_total}' "$2")"
	read -r code ttfb total <<<"$out"
	xcache="$(grep -i '^x-cache:' "$work/headers" | tr -d '\r' | cut -d' ' -f2 || true)"
	awk -v n="$1" -v code="$code" -v x="${xcache:-?}" -v ttfb="$ttfb" -v total="$total" 'BEGIN {
		printf "    request %s: HTTP %s  X-Cache: %-7s  first byte %6.1f ms  total %6.1f ms\n", n, code, x, ttfb * 1000, total * 1000
	}'
}

url="http://$proxy/rank"
echo "==> GET $url twice"
show 1 "$url"
show 2 "$url"

if [ "${#redis_args[@]}" -gt 0 ]; then
	echo "==> a second cacheproxy sharing the same Redis: its first request is an L2 hit"
	first_admin="$admin" first_proxy="$proxy"
	start_proxy proxy2
	show 3 "http://$proxy/rank"
	admin="$first_admin" proxy="$first_proxy"
fi

echo "==> purge /rank on the first proxy: bin/cacheproxy purge -url /rank -admin $admin"
# On a Redis younger than the fleet's window (about a minute) a purge
# answers 202 (exit 1): Redis cannot tell a new fleet from one it lost
# track of when it restarted empty (docs/consistency.md, point 6).
"$bin/cacheproxy" purge -url /rank -admin "$admin" ||
	echo "    (202, as on any Redis younger than a minute: every instance it knows applied the purge)"
show 4 "http://$proxy/rank"
show 5 "http://$proxy/rank"

echo "==> bin/cacheproxy stats -admin $admin"
"$bin/cacheproxy" stats -admin "$admin"
for path in /players/1 /players/2 /rank; do
	curl -sS -o /dev/null "http://$proxy$path"
done
echo "==> bin/cacheproxy report -admin $admin: which routes are cached, and why not"
"$bin/cacheproxy" report -admin "$admin"
if [ "${KEEP:-}" = 1 ]; then
	echo "==> KEEP=1: everything keeps running until Ctrl-C"
	echo "    dashboard: http://$admin/ui/"
	echo "    proxy:     curl -si http://$proxy/rank"
	echo "    CLI:       $bin/cacheproxy stats -admin $admin"
	trap 'echo; echo "==> stopping everything"; exit 0' INT TERM
	wait "${pids[@]}" || true
	echo "==> a process of the demo exited; stopping everything"
	exit 1
fi
echo "==> the live dashboard is at http://$admin/ui/ while a proxy runs: make demo KEEP=1 keeps it running"
echo "==> done; stopping everything"
