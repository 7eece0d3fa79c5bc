# Shared by the demo scripts (sourced, not run): a temp dir and the pids of
# every process the script starts, all stopped and removed on exit, and
# wait_for. Set DEMO_NAME before sourcing, for messages.

work="$(mktemp -d)"
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# wait_for FILE REGEX: prints the first match of the extended REGEX in FILE
# (a process's log), waiting up to 10s for it to appear.
wait_for() {
	local i match
	for i in $(seq 100); do
		match="$(grep -oE "$2" "$1" 2>/dev/null | head -n1 || true)"
		if [ -n "$match" ]; then
			echo "$match"
			return 0
		fi
		sleep 0.1
	done
	echo "${DEMO_NAME:-demo}: timed out waiting for /$2/ in $1:" >&2
	cat "$1" >&2
	return 1
}
