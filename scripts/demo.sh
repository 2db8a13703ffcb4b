#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: run pcheck on pfile/demo.pfile, watching a demo web server.
# Installs the demo under /run/pwatch-demo; pcheck starts the server itself
# (start_on_load). Ctrl-C stops pcheck; then this script stops the server
# pcheck started (by the pid it wrote, never by name) and removes
# /run/pwatch-demo, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "make demo: pcheck needs root (BPF, signals to any process): run it as root" >&2
	exit 1
fi
dir=/run/pwatch-demo
pidfile=$dir/demoserver.pid

# ours PID: PID runs this demo's server binary (the pid file may be stale,
# and pids are reused).
ours() {
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	[ "$exe" = "$dir/demoserver" ] || [ "$exe" = "$dir/demoserver (deleted)" ]
}

if [ -s "$pidfile" ] && ours "$(cat "$pidfile")"; then
	echo "make demo: an earlier demo's server still runs (pid $(cat "$pidfile")); end it with: kill $(cat "$pidfile")" >&2
	exit 1
fi
mkdir -p "$dir"
rm -f "$pidfile"
install -m 0755 bin/demoserver "$dir/.demoserver.new" && mv -f "$dir/.demoserver.new" "$dir/demoserver"
install -m 0755 scripts/restart/demo.restart "$dir/demo.restart"

# stop_demo ends what the demo started once pcheck is gone: the server
# (pcheck leaves its services running when it stops) and $dir.
stop_demo() {
	local pid gone="" i
	pid=$(cat "$pidfile" 2>/dev/null || true)
	if [ -n "$pid" ] && ours "$pid"; then
		kill "$pid"
		for i in $(seq 50); do
			ours "$pid" || { gone=yes; break; }
			sleep 0.1
		done
		if [ -z "$gone" ]; then
			echo "demo: the demo server (pid $pid) did not stop on SIGTERM; left running, and $dir kept" >&2
			return
		fi
		echo "demo: the demo server (pid $pid) stopped"
	fi
	rm -rf "$dir"
	echo "demo: $dir removed"
}
trap stop_demo EXIT
# Ctrl-C reaches pcheck too (the terminal signals both): it stops itself
# cleanly, and this script goes on to clean up.
trap : INT

cat <<MSG

pcheck is starting on pfile/demo.pfile. In another terminal, as root, try:

  curl http://127.0.0.1:18080/                    # the demo server answers
  kill -9 \$(cat $pidfile)    # kill it: pcheck logs Down, restarts it
  kill -USR1 \$(cat $pidfile) # make it hang: after 30 s, a stall; killed, restarted
  bin/padmin --control-socket $dir/pcheck.sock status
  bin/padmin --control-socket $dir/pcheck.sock stop demo    # now a kill is not acted on
  bin/padmin --control-socket $dir/pcheck.sock start demo   # watched (and started) again

Ctrl-C here stops pcheck, then the demo server, and removes $dir.

MSG
status=0
bin/pcheck run --control-socket "$dir/pcheck.sock" --state-dir "$dir/state" \
	--syslog-socket "${PWATCH_SYSLOG_SOCKET:-/dev/log}" pfile/demo.pfile || status=$?
echo "demo: pcheck stopped (exit status $status)"
exit "$status"
