#!/usr/bin/env bash
# `make demo`: run pcheck on pfile/demo.pfile, watching a demo web server.
# Installs the demo under /tmp/pwatch-demo; pcheck starts the server itself
# (start_on_load). Stop with Ctrl-C: the server is left running, as pcheck
# always leaves its services; `pkill -f /tmp/pwatch-demo/demoserver` ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "make demo: pcheck needs root (BPF, signals to any process): run it as root" >&2
	exit 1
fi
dir=/tmp/pwatch-demo
mkdir -p "$dir"
# A fresh start: end an old demo's server. Files are replaced by rename, as
# a package upgrade does, so a still-running old binary is no obstacle.
pkill -f "^$dir/demoserver" 2>/dev/null || true
install -m 0755 bin/demoserver "$dir/.demoserver.new" && mv -f "$dir/.demoserver.new" "$dir/demoserver"
install -m 0755 scripts/restart/demo.restart "$dir/demo.restart"
cat <<MSG

pcheck is starting on pfile/demo.pfile. In another terminal, as root, try:

  curl http://127.0.0.1:18080/                    # the demo server answers
  kill -9 \$(pgrep -f $dir/demoserver)        # kill it: pcheck logs Down, restarts it
  kill -USR1 \$(pgrep -f $dir/demoserver)      # make it hang: after 30 s, a stall; killed, restarted
  bin/padmin --control-socket $dir/pcheck.sock status
  bin/padmin --control-socket $dir/pcheck.sock stop demo    # now a kill is not acted on
  bin/padmin --control-socket $dir/pcheck.sock start demo   # watched (and started) again

Ctrl-C stops pcheck and leaves the server running.

MSG
exec bin/pcheck run --control-socket "$dir/pcheck.sock" --syslog-socket "${PWATCH_SYSLOG_SOCKET:-/dev/log}" pfile/demo.pfile
