#!/usr/bin/env bash
# bench/run.sh: cacheproxy's comparative benchmarks (`make bench`).
#
# Builds cacheproxy and the benchmark programs, installs the peers (nginx,
# Varnish, wrk) from Debian's packages when they are missing, and runs
# bench/harness, which starts its own origin, Redis and peers on free
# 127.0.0.1 ports, runs the scenarios and writes a Markdown report with an
# SVG chart under bench/results/<date>-<mode>/.
#
# Usage: bash bench/run.sh [--quick] [--scenarios hot,shared,zipf,stampede,purge,scale,faults,storage]
#                          [--duration 6s] [--rounds 3] [--zipf-rate 5000] [--redis single|cluster|both]
#                          [--no-pin] [--out DIR]
#
#   --quick        short runs: a smoke test that finishes in under 5 minutes
#   --scenarios    which scenarios to run (default: all, in about 25 minutes);
#                  faults alone takes about 3 minutes, 2 with --quick
#   --faults       of the faults scenario, only these faults (comma-separated
#                  names: redis-kill, redis-kill-purges, ..., cluster-master-kill;
#                  default all)
#   --duration     length of one measured run of hot and shared (default 6s, 2s with --quick)
#   --rounds       measured runs of each hot and shared load, taking the systems in
#                  turn; the report shows their median (default 3, 1 with --quick)
#   --zipf-rate    open-loop request rate of zipf; purge runs at half (default 3000/s, 2000/s with --quick)
#   --redis        the Redis that shared and stampede run cacheproxy against: single
#                  (one redis-server, the default), cluster (a Redis Cluster of 3
#                  masters, started by the harness) or both (each system twice; shared
#                  shows the two side by side)
#   --no-pin       do not pin servers and load generator to separate CPUs
#   --out DIR      where report directories go (default bench/results)
#
# Nothing it starts outlives it: every process is recorded with its start
# time in a pid file, and the EXIT trap stops whatever is still running, by
# pid (never by name). The system's own nginx/Varnish/Redis services are
# never used or touched.
set -euo pipefail

cd "$(dirname "$0")/.."

orig="$*"
quick=""
scenarios="hot,shared,zipf,stampede,purge,scale,faults,storage"
args=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--quick) quick=1; args+=(-quick); shift ;;
	--scenarios|--duration|--rounds|--zipf-rate|--redis|--out|--faults)
		[[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }
		[[ "$1" != --scenarios ]] || scenarios="$2"
		args+=("-${1#--}" "$2"); shift 2 ;;
	--scenarios=*|--duration=*|--rounds=*|--zipf-rate=*|--redis=*|--out=*|--faults=*)
		[[ "$1" != --scenarios=* ]] || scenarios="${1#*=}"
		args+=("-${1#--}"); shift ;;
	--no-pin) args+=(-no-pin); shift ;;
	-h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

work="$(mktemp -d /tmp/cacheproxy-bench-run.XXXXXX)"
pids="$work/pids"
: >"$pids"

# stop_recorded stops every recorded process that is still the process we
# started (same pid and start time), with its process group.
stop_recorded() {
	local pid start name now
	while read -r pid start name; do
		[[ -r /proc/$pid/stat ]] || continue
		now="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $20}')" || continue
		[[ "$now" == "$start" ]] || continue
		echo "run.sh: stopping leftover $name (pid $pid)" >&2
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		sleep 1
		[[ -r /proc/$pid/stat ]] && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
	done <"$pids"
}
cleanup() {
	stop_recorded
	rm -rf "$work"
}
trap cleanup EXIT

# Peers: install from Debian's packages when missing, those the chosen
# scenarios use (shared, purge and faults need no nginx or Varnish; only
# hot and shared use wrk). A temporary policy-rc.d keeps the packages from
# starting their system services.
uses() { [[ ",$scenarios," == *",$1,"* ]]; }
missing=()
if uses hot || uses zipf || uses stampede || uses scale || uses storage; then
	command -v nginx >/dev/null || missing+=(nginx)
	command -v varnishd >/dev/null || missing+=(varnish)
fi
if uses hot || uses shared; then
	command -v wrk >/dev/null || missing+=(wrk)
fi
command -v redis-server >/dev/null || missing+=(redis-server)
if [[ ${#missing[@]} -gt 0 ]]; then
	echo "run.sh: installing ${missing[*]} from Debian's packages" >&2
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo="sudo"
	policy=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		policy=1
	fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
	[[ -z "$policy" ]] || $sudo rm -f /usr/sbin/policy-rc.d
fi

echo "run.sh: building" >&2
bin="$work/bin"
go build -o "$bin/" ./cmd/cacheproxy ./bench/fixedorigin ./bench/plainproxy ./bench/loadgen ./bench/harness

# 1,000 concurrent connections (stampede) and nginx's worker_rlimit_nofile.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The whole run is bounded: 8 minutes for --quick, 50 for a full run.
# timeout runs the harness in its own process group, out of reach of a
# terminal's Ctrl-C, so INT and TERM are passed on to it by pid (timeout
# forwards them to the harness, which stops its servers and writes a
# partial report).
limit=50m
[[ -z "$quick" ]] || limit=8m
timeout --signal=TERM --kill-after=30s "$limit" \
	"$bin/harness" -bin "$bin" -pidfile "$pids" -cmdline "$orig" "${args[@]}" &
harness=$!
trap 'kill -TERM "$harness" 2>/dev/null || true' INT TERM
status=0
while :; do
	wait "$harness" && status=0 || status=$?
	# wait returns early (above 128) when a trapped signal arrives.
	kill -0 "$harness" 2>/dev/null || break
done
exit "$status"
