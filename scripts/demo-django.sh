#!/usr/bin/env bash
# Django REST framework demo: the leaderboard of examples/django (SQLite, a
# temporary database) behind cacheproxy, with a throwaway redis-server if
# one is installed. It shows, through the proxy, with X-Cache and
# Cache-Status:
#   1. the DRF views as they are: nothing cacheable, a PASS every time,
#      and Cache-Status says why (detail=no-freshness);
#   2. with examples/django/routes.yaml ({path: /rank, ttl: 30s}): a HIT;
#   3. POST /games through the proxy: its Content-Location invalidates /rank;
#   4. a write the proxy does not see, then cacheproxy purge -tag rank.
# cacheproxy runs with -public-host (its own address here), and Django
# with USE_X_FORWARDED_HOST: the ranking's links name the proxy, not
# Django's own address.
# Needs python3 with Django and Django REST framework (it installs nothing),
# curl, and Go unless CACHEPROXY_BIN names a built cacheproxy. Everything
# listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v curl >/dev/null 2>&1 || { echo "demo-django: curl is required" >&2; exit 1; }

# The first Python that has both (Debian's packages install into
# /usr/bin/python3's path, which a pyenv or venv python3 on PATH hides).
python=""
for p in ${PYTHON:-} python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import django, rest_framework' 2>/dev/null; then
		python="$p"
		break
	fi
done
if [ -z "$python" ]; then
	echo "demo-django: python3 -c 'import django, rest_framework' fails: Django and Django REST framework are not installed." >&2
	echo "demo-django: install them with: apt-get install python3-django python3-djangorestframework" >&2
	exit 1
fi

DEMO_NAME=demo-django
# shellcheck source=scripts/lib.sh
source scripts/lib.sh # (the working directory is the repository now)

free_port() {
	"$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cacheproxy="${CACHEPROXY_BIN:-}"
if [ -z "$cacheproxy" ]; then
	command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
	echo "==> go build -o bin/ ./cmd/cacheproxy"
	go build -o bin/ ./cmd/cacheproxy
	cacheproxy=bin/cacheproxy
fi

export PYTHONDONTWRITEBYTECODE=1
export LEADERBOARD_DB="$work/leaderboard.sqlite3"
echo "==> Django $("$python" -c 'import django; print(django.get_version())') with DRF $("$python" -c 'import rest_framework; print(rest_framework.VERSION)') ($python): migrations into $work"
"$python" examples/django/manage.py migrate -v0

port="$(free_port)"
django="127.0.0.1:$port"
(cd examples/django && exec "$python" manage.py runserver --noreload "$django") >"$work/django.log" 2>&1 &
pids+=($!)
for i in $(seq 100); do
	curl -s -o /dev/null "http://$django/rank" && break
	sleep 0.1
done
curl -s -o /dev/null "http://$django/rank" || { echo "demo-django: Django did not start:" >&2; cat "$work/django.log" >&2; exit 1; }
echo "    Django on http://$django"

redis_args=()
if command -v redis-server >/dev/null 2>&1; then
	rport="$(free_port)"
	redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	pids+=($!)
	wait_for "$work/redis.log" 'Ready to accept connections' >/dev/null
	redis_args=(-redis "redis://127.0.0.1:$rport/0")
	echo "    redis-server on 127.0.0.1:$rport (nothing kept)"
else
	echo "    redis-server not installed: cacheproxy runs with L1 only"
fi

# The address clients use: every proxy of the demo listens on it in turn,
# and names it as -public-host so that Django builds links to it.
public="127.0.0.1:$(free_port)"

# start_proxy NAME [FLAGS...]: starts cacheproxy in front of Django and
# sets $proxy, $admin and $proxy_pid.
start_proxy() {
	local name="$1"
	shift
	"$cacheproxy" -origin "http://$django" "${redis_args[@]}" -drain 0 -public-host "$public" \
		-listen "$public" -admin-listen 127.0.0.1:0 -log-format text "$@" 2>"$work/$name.log" &
	proxy_pid=$!
	pids+=($proxy_pid)
	proxy="$(wait_for "$work/$name.log" 'server=proxy addr=127\.0\.0\.1:[0-9]+' | sed 's/.*addr=//')"
	admin="$(wait_for "$work/$name.log" 'server=admin addr=127\.0\.0\.1:[0-9]+' | sed 's/.*addr=//')"
	# In a fleet, L1 is used once the purges are loaded: wait for /readyz.
	for i in $(seq 100); do
		curl -sf -o /dev/null "http://$admin/readyz" && break
		sleep 0.1
	done
	echo "    cacheproxy on http://$proxy (admin http://$admin)"
}

stop_proxy() {
	kill "$proxy_pid"
	wait "$proxy_pid" 2>/dev/null || true
}

# show METHOD PATH [JSON]: one request through the proxy; prints the status,
# X-Cache, Cache-Status and the leader of the ranking it returned.
show() {
	local method="$1" path="$2" code xcache cstatus extra leader
	local args=(-sS -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method")
	if [ $# -gt 2 ]; then
		args+=(-H 'Content-Type: application/json' --data "$3")
	fi
	code="$(curl "${args[@]}" "http://$proxy$path")"
	xcache="$(grep -i '^x-cache:' "$work/headers" | tr -d '\r' | cut -d' ' -f2- || true)"
	cstatus="$(grep -i '^cache-status:' "$work/headers" | tr -d '\r' | cut -d' ' -f2- || true)"
	leader="$("$python" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("leader %s %s" % (d[0]["name"], d[0]["score"]) if isinstance(d, list) and d else "")' "$work/body" 2>/dev/null || true)"
	printf '    %-4s %-11s HTTP %s  X-Cache: %-6s  Cache-Status: %s  %s\n' "$method" "$path" "$code" "${xcache:--}" "${cstatus:--}" "$leader"
	extra="$(grep -iE '^(location|content-location|cache-tag):' "$work/headers" | tr -d '\r' | paste -sd' ' - || true)"
	[ -z "$extra" ] || echo "                     $extra"
}

echo
echo "==> 1. the DRF views as they are"
start_proxy plain
show GET /rank
cp "$work/body" "$work/rank.json"
sleep 0.2
show GET /rank
show GET /players/1
link="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["url"])' "$work/rank.json")"
echo "    links: $link (-public-host $public; Django itself is on $django)"
echo "    Every request is a PASS, and Cache-Status says why: detail=no-freshness, the answers"
echo "    carry no Cache-Control and no ETag, so a shared cache has no basis to reuse them."
stop_proxy

echo
echo "==> 2. with examples/django/routes.yaml ({path: /rank, ttl: 30s}: what @cache_page(30) gave it)"
start_proxy routes -config examples/django/routes.yaml
show GET /rank
sleep 0.2
show GET /rank
show GET /players/1
echo "    /rank is stored (\"stored\") and then served from the cache; /players/1 still has no route."

echo
echo "==> 3. POST /games through the proxy: linus scores 500"
show POST /games '{"player": 3, "score": 500}'
show GET /rank
sleep 0.2
show GET /rank
echo "    The POST's answer names /rank in Content-Location (its body is the new ranking):"
echo "    cacheproxy invalidated /rank fleet-wide, so the next GET fetched the new ranking."

echo
echo "==> 4. a write the proxy does not see (straight to Django): ada scores 900"
curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' --data '{"player": 1, "score": 900}' "http://$django/games"
show GET /rank
echo "    Still the cached ranking (up to 30s old). Purge what is tagged \"rank\":"
echo "    \$ cacheproxy purge -tag rank -admin http://$admin"
# On a Redis younger than the fleet's window (about a minute) a purge
# answers 202 (exit 1): Redis cannot tell a new fleet from one it lost
# track of when it restarted empty (docs/consistency.md, point 6).
{ "$cacheproxy" purge -tag rank -admin "http://$admin" ||
	echo "(202, as on any Redis younger than a minute: every instance it knows applied the purge)"; } 2>&1 | sed 's/^/    /'
show GET /rank
sleep 0.2
show GET /rank

echo
echo "==> done; stopping cacheproxy, Django and redis-server"
