#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A live single-node Pacemaker cluster runs the pwatch resource agent, and
# recovers the resource when pcheck hands a service over (retry over with
# action exit, pcheck status 3). test/cluster_test.go runs it as
#
#   unshare --mount --net --uts --fork --kill-child=SIGTERM \
#       scripts/ocf/cluster_test.sh BINDIR WORKDIR
#
# BINDIR holds pcheck, padmin and demoserver; WORKDIR is an empty directory
# that the caller removes. WORKDIR/script.pid is this script's pid: SIGTERM
# it to stop the scenario early (the teardown runs). It must run as root in namespaces of its own:
# the ring is on the private loopback, and corosync's and Pacemaker's
# configuration and state (/etc/corosync, /var/lib/pacemaker, ...) are
# tmpfs mounts that vanish with the namespace. Nothing of the host's is
# touched. corosync and pacemakerd are started here, without systemd, and
# stopped by pid at the end, on failure too; everything they started is in
# a cgroup of the test's, which is killed if anything is left.
# Exits 0 when the scenario passed, 1 with "FAIL: ..." otherwise.
set -euo pipefail

bindir=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
node=pwatch-node1
rsc=pw

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
step() { echo "== $(date +%T) $*"; }

# wait_for SECONDS WHAT CMD...: runs CMD every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || fail "after ${secs}s: never $what"
		sleep 0.2
	done
}

[ "$(id -u)" = 0 ] || fail "needs root"
[ -d "$bindir" ] && [ -d "$work" ] || fail "usage: $0 BINDIR WORKDIR"
# Refuse to run outside a private mount namespace: the tmpfs mounts below
# would hide the host's own cluster configuration.
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] ||
	fail "run me in a mount namespace of my own (unshare --mount --net --uts --fork)"

# --- Teardown: everything started here, by pid; then the cgroup. -----------
corosync_pid='' pacemakerd_pid='' cgroup=''
stop_pid() { # PID NAME SECONDS: SIGTERM, wait, SIGKILL
	local pid=$1 name=$2 secs=$3
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	local end=$((SECONDS + secs))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "teardown: $name (pid $pid) still runs after ${secs}s: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
teardown() {
	local rc=$?
	set +e
	step "teardown"
	# pacemakerd stops the resources first (the agent stops pcheck).
	stop_pid "$pacemakerd_pid" pacemakerd 60
	stop_pid "$corosync_pid" corosync 30
	# The test service: pcheck leaves it running, as it should.
	if [ -s "$work/demo.pid" ]; then
		stop_pid "$(cat "$work/demo.pid")" demoserver 10
	fi
	if [ -n "$cgroup" ] && [ -d "$cgroup" ]; then
		if [ -s "$cgroup/cgroup.procs" ]; then
			echo "teardown: left in the test's cgroup, killed: $(tr '\n' ' ' <"$cgroup/cgroup.procs")" >&2
			[ -e "$cgroup/cgroup.kill" ] && echo 1 >"$cgroup/cgroup.kill"
			local end=$((SECONDS + 10))
			while [ -s "$cgroup/cgroup.procs" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
		fi
		rmdir "$cgroup" || echo "teardown: cannot remove $cgroup" >&2
	fi
	if [ $rc -ne 0 ] && [ -f /var/log/pacemaker/pacemaker.log ]; then
		echo "--- last lines of pacemaker.log"
		grep -E 'pwatch|pw_|error|warning' /var/log/pacemaker/pacemaker.log | tail -n 40
		echo "--- pcheck.log"
		tail -n 30 "$work/pcheck.log" 2>/dev/null
	fi
	exit $rc
}
trap teardown EXIT
trap 'exit 1' TERM INT
# SIGTERM to this pid stops the scenario and runs the teardown. (unshare
# --fork ignores SIGTERM, so a caller signals this script, not unshare.)
echo $$ >"$work/script.pid"

# in_cgroup CMD...: runs CMD in the test's cgroup (when there is one).
in_cgroup() {
	if [ -n "$cgroup" ]; then
		echo "$BASHPID" >"$cgroup/cgroup.procs"
	fi
	exec "$@"
}

# A cgroup v2 of our own, where the host has one with cgroup.kill.
cg2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
if [ -n "$cg2" ] && mkdir "$cg2/pwatch-cluster-test.$$" 2>/dev/null; then
	cgroup=$cg2/pwatch-cluster-test.$$
	if [ ! -e "$cgroup/cgroup.kill" ]; then
		rmdir "$cgroup"
		cgroup=
	fi
fi
[ -n "$cgroup" ] || echo "note: no cgroup v2 with cgroup.kill: teardown by pid only"

# --- The namespace's own loopback, host name and cluster directories. -------
step "private loopback, tmpfs state"
ip link set lo up
hostname "$node"
for d in /etc/corosync /var/lib/corosync /var/log/corosync /var/lib/pacemaker \
	/var/log/pacemaker /run /dev/shm /usr/lib/ocf/resource.d; do
	mount -t tmpfs -o mode=0755 pwatch-cluster-test "$d"
done
chmod 1777 /dev/shm
mkdir -p /var/lib/pacemaker/{cib,pengine,blackbox,cores} /var/log/pacemaker/bundles /run/crm
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
chmod 0750 /var/lib/pacemaker/*
# The agent, where Pacemaker looks for ocf:pwatch:pwatch.
mkdir -p /usr/lib/ocf/resource.d/pwatch
install -m 0755 "$here/pwatch" /usr/lib/ocf/resource.d/pwatch/pwatch

cat >/etc/corosync/corosync.conf <<EOF
totem {
	version: 2
	cluster_name: pwatch-test
	transport: knet
	crypto_cipher: none
	crypto_hash: none
}
nodelist {
	node {
		ring0_addr: 127.0.0.1
		name: $node
		nodeid: 1
	}
}
quorum {
	provider: corosync_votequorum
}
logging {
	to_stderr: yes
	to_logfile: no
	to_syslog: no
	timestamp: on
}
EOF

# A CIB written before Pacemaker starts: no fencing (nothing to fence with),
# and a short wait for other nodes before the lone node is elected.
CIB_file=/var/lib/pacemaker/cib/cib.xml
cibadmin --empty >"$CIB_file"
CIB_file=$CIB_file crm_attribute -t crm_config -n stonith-enabled -v false
CIB_file=$CIB_file crm_attribute -t crm_config -n dc-deadtime -v 2s
chown hacluster:haclient "$CIB_file"
chmod 0600 "$CIB_file"

step "corosync and pacemakerd"
in_cgroup corosync -f >"$work/corosync.log" 2>&1 &
corosync_pid=$!
wait_for 30 "corosync answered" corosync-cfgtool -s
PCMK_logfile=/var/log/pacemaker/pacemaker.log in_cgroup pacemakerd -f >"$work/pacemakerd.log" 2>&1 &
pacemakerd_pid=$!
online() { crm_mon -1 2>/dev/null | grep -q "Online: \[ $node \]"; }
wait_for 120 "$node online" online
crm_mon -1

# --- The test service and its pfile. ----------------------------------------
# demoserver on the namespace's loopback. Its restart script fails while
# $work/broken exists; the retry-over script removes it and records the
# hand-over, standing for the node the service would move to.
step "pwatch resource"
install -m 0755 "$bindir/demoserver" "$work/demoserver"
mkdir -p "$work/pfile.d" "$work/state"
cat >"$work/demo.restart" <<EOF
#!/bin/sh
echo "restart \$PWATCH_REASON attempt \$PWATCH_ATTEMPT" >>"$work/restarts"
[ ! -e "$work/broken" ] || { echo "broken: refusing to start"; exit 1; }
setsid "$work/demoserver" -listen 127.0.0.1:18080 </dev/null >>"$work/demo.log" 2>&1 &
echo \$! >"$work/demo.pid"
EOF
cat >"$work/handover.sh" <<EOF
#!/bin/sh
echo "retry over \$PWATCH_SERVICE action \$PWATCH_ACTION" >>"$work/handovers"
rm -f "$work/broken"
EOF
chmod 0755 "$work/demo.restart" "$work/handover.sh"
cat >"$work/pfile.d/demo.pfile" <<EOF
process            $work/demoserver
restart_script     $work/demo.restart
restart_timeout    5
retry_count        2
grace              300
retry_over_action  exit
retry_over_script  $work/handover.sh
kill_timeout       2
EOF
"$bindir/padmin" check "$work/pfile.d"

sock=$work/pcheck.sock
padmin() { "$bindir/padmin" --control-socket "$sock" "$@"; }
# As docs/cluster.md configures it, with crmsh (which checks the
# parameters against the agent's meta-data).
crm configure primitive "$rsc" ocf:pwatch:pwatch \
	params pfile_dir="$work/pfile.d" control_socket="$sock" state_dir="$work/state" \
	logfile="$work/pcheck.log" pcheck="$bindir/pcheck" padmin="$bindir/padmin" \
	pcheck_flags="--syslog-socket $work/no-syslog" \
	op monitor interval=2s timeout=30s
crm configure show "$rsc"

started() { crm_mon -1 -r 2>/dev/null | grep -Eq "$rsc\s+\(ocf:pwatch:pwatch\):\s+Started $node"; }
wait_for 60 "$rsc Started" started
demo_up() { padmin status demo 2>/dev/null | grep -Eq '^demo +Up '; }
wait_for 30 "demo Up under pcheck" demo_up
read -r first_pcheck _ </run/resource-agents/pwatch-$rsc.pid
first_demo=$(cat "$work/demo.pid")
padmin status
crm_mon -1 -r -f

# --- The hand-over. ---------------------------------------------------------
step "break the service and kill it: pcheck retries, then exits 3"
touch "$work/broken"
kill -KILL "$first_demo"
handed_over() { [ -s "$work/handovers" ]; }
wait_for 60 "pcheck's retry over ran" handed_over
grep -qx "retry over demo action exit" "$work/handovers" ||
	fail "handovers: $(cat "$work/handovers")"

step "Pacemaker's monitor sees it and recovers the resource"
failed_once() { [ "$(crm_failcount --query -q -r "$rsc" -N "$node" 2>/dev/null)" = 1 ]; }
wait_for 60 "fail count 1 for $rsc" failed_once
wait_for 60 "$rsc Started again" started
wait_for 30 "demo Up again" demo_up
read -r second_pcheck _ </run/resource-agents/pwatch-$rsc.pid
[ "$second_pcheck" != "$first_pcheck" ] ||
	fail "pcheck pid $first_pcheck was not replaced: no recovery"
second_demo=$(cat "$work/demo.pid")
[ "$second_demo" != "$first_demo" ] || fail "demoserver pid $first_demo was not replaced"

grep -qF "Retry over ('demo') action=exit" "$work/pcheck.log" ||
	fail "pcheck.log has no retry over of demo"
grep -q "pcheck: a service's retries are over (retry_over_action exit)" "$work/pcheck.log" ||
	fail "pcheck.log does not say why it ended"

out=$(crm_mon -1 -r -f)
echo "$out"
echo "$out" | grep -q "$rsc: migration-threshold=1000000 fail-count=1" ||
	fail "crm_mon shows no fail count 1 for $rsc"
reason="pcheck ended with status 3: retry over of demo (action exit), handed over"
echo "$out" | grep -qF "$rsc 2s-interval monitor on $node returned 'error' ($reason)" ||
	fail "crm_mon shows no failed monitor with the exit reason '$reason'"
# The failed monitor is an error (1), never pcheck's 3 ("unimplemented").
failure=$(crm_mon -1 --output-as=xml | grep '<failure ')
echo "$failure"
echo "$failure" | grep -q "op_key=\"${rsc}_monitor_2000\".*exitstatus=\"error\".*exitcode=\"1\"" ||
	fail "crm_mon's XML shows no monitor failure with exit code 1"

# Clean stop: pcheck ends, the monitor's probe says not running.
step "clean stop"
crm resource stop "$rsc"
stopped() { crm_mon -1 -r 2>/dev/null | grep -Eq "$rsc\s+\(ocf:pwatch:pwatch\):\s+Stopped"; }
wait_for 60 "$rsc Stopped" stopped
! kill -0 "$second_pcheck" 2>/dev/null || fail "pcheck (pid $second_pcheck) still runs after the stop"
kill -0 "$second_demo" || fail "the stop took the service down (it must leave it to the cluster)"
OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=$rsc OCF_RESKEY_control_socket=$sock \
	/usr/lib/ocf/resource.d/pwatch/pwatch monitor && rc=0 || rc=$?
[ "$rc" = 7 ] || fail "monitor after a clean stop: $rc, want 7 (OCF_NOT_RUNNING)"
echo "PASS"
