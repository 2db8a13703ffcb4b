#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs pwatch from a built tree (make build): the binaries, the systemd
# unit, /etc/pwatch with its pfile.d and scripts directories, and the sample
# pfiles, restart scripts and notify commands as templates (nothing is
# enabled). It starts and enables nothing unless given --enable.
#
# Usage: scripts/install.sh [--enable] [--bin DIR]
#   --enable   enable and start pwatch.service (with DESTDIR: only enable it
#              in that root, through systemctl --root; nothing is started)
#   --bin DIR  where pcheck and padmin are (default: the tree's bin/)
# Environment:
#   DESTDIR     stage into this root instead of / (packaging, tests)
#   PREFIX      binaries, templates and docs (default /usr/local)
#   SYSCONFDIR  configuration (default /etc)
#   UNITDIR     the unit's directory (default $SYSCONFDIR/systemd/system)
#   SYSTEMCTL   the systemctl to run (default systemctl)
#
# Re-running it upgrades: binaries, unit, templates and docs are replaced;
# what an operator owns (/etc/pwatch, /etc/default/pwatch) is never
# overwritten.
set -euo pipefail

# usage prints the header comment of this file (to stderr when it is an
# error) and exits with status $1.
usage() {
	local fd=1
	[ "$1" -eq 0 ] || fd=2
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&"$fd"
	exit "$1"
}
die() { echo "install.sh: $*" >&2; exit 1; }

src=$(cd "$(dirname "$0")/.." && pwd)
bin=$src/bin
enable=no
while [ $# -gt 0 ]; do
	case $1 in
	--enable) enable=yes ;;
	--bin) [ $# -ge 2 ] || usage 2; bin=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "install.sh: unknown argument: $1" >&2; usage 2 ;;
	esac
	shift
done

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$SYSCONFDIR/systemd/system}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
for v in PREFIX SYSCONFDIR UNITDIR; do
	case ${!v} in
	/*) ;;
	*) die "$v=${!v}: must be an absolute path" ;;
	esac
	case ${!v} in
	*[[:space:]\|\&\\]*) die "$v=${!v}: no spaces, |, & or \\ please (it goes into the unit)" ;;
	esac
done
if [ -n "$DESTDIR" ]; then
	case $DESTDIR in /*) ;; *) die "DESTDIR=$DESTDIR: must be an absolute path" ;; esac
elif [ "$(id -u)" -ne 0 ]; then
	die "installing into / needs root (or set DESTDIR to stage elsewhere)"
fi
for b in pcheck padmin; do
	[ -x "$bin/$b" ] || die "$bin/$b missing: run make build first (or pass --bin DIR)"
done

sbindir=$PREFIX/sbin
sharedir=$PREFIX/share/pwatch
docdir=$PREFIX/share/doc/pwatch
confdir=$SYSCONFDIR/pwatch

say() { echo "  $*"; }
echo "installing pwatch into ${DESTDIR:-/}"

install -d -m 0755 "$DESTDIR$sbindir"
for b in pcheck padmin; do
	# install unlinks the old file first: a running pcheck keeps its copy.
	install -m 0755 "$bin/$b" "$DESTDIR$sbindir/$b"
	say "$sbindir/$b"
done

# The unit names the installed paths.
install -d -m 0755 "$DESTDIR$UNITDIR"
sed -e "s|/usr/local/|$PREFIX/|g" \
	-e "s|/etc/pwatch/|$confdir/|g" \
	-e "s|/etc/default/pwatch|$SYSCONFDIR/default/pwatch|g" \
	"$src/scripts/pwatch.service" >"$DESTDIR$UNITDIR/pwatch.service.tmp"
chmod 0644 "$DESTDIR$UNITDIR/pwatch.service.tmp"
mv -f "$DESTDIR$UNITDIR/pwatch.service.tmp" "$DESTDIR$UNITDIR/pwatch.service"
say "$UNITDIR/pwatch.service"

# The operator's directories: pfiles to watch, restart scripts they name.
install -d -m 0755 "$DESTDIR$confdir" "$DESTDIR$confdir/pfile.d" "$DESTDIR$confdir/scripts"
say "$confdir/pfile.d/ $confdir/scripts/"

# Flags for pcheck, as PWATCH_* variables; never overwritten.
defaults=$SYSCONFDIR/default/pwatch
if [ -e "$DESTDIR$defaults" ]; then
	say "$defaults kept"
else
	install -d -m 0755 "$DESTDIR$SYSCONFDIR/default"
	cat >"$DESTDIR$defaults" <<'DEFAULTS'
# pcheck's flags as environment variables (pwatch.service reads this file).
# See `pcheck run --help` and docs/operations.md.
#PWATCH_WATCHER=auto
#PWATCH_SYSLOG_FACILITY=daemon
#PWATCH_METRICS_LISTEN=127.0.0.1:9750
#PWATCH_HEALTH_LISTEN=127.0.0.1:9751
#PWATCH_NOTIFY_COMMAND='/etc/pwatch/scripts/notify-mail root'
#PWATCH_NOTIFY_EVENTS=down,stall,retry_over,reboot,limit
DEFAULTS
	chmod 0644 "$DESTDIR$defaults"
	say "$defaults"
fi

# Templates: copied, not enabled. An operator copies a pfile into pfile.d
# and the restart script it names into scripts/.
install -d -m 0755 "$DESTDIR$sharedir/pfile" "$DESTDIR$sharedir/restart"
install -m 0644 "$src"/pfile/*.pfile "$src"/pfile/README*.md "$DESTDIR$sharedir/pfile/"
install -m 0755 "$src"/scripts/restart/*.restart "$src"/scripts/restart/*.retry-over "$DESTDIR$sharedir/restart/"
say "$sharedir/pfile/ $sharedir/restart/ (templates)"
# Sample notify commands (--notify-command), with their READMEs.
install -d -m 0755 "$DESTDIR$sharedir/notify"
install -m 0755 "$src/scripts/notify/mail" "$src/scripts/notify/webhook" "$DESTDIR$sharedir/notify/"
install -m 0644 "$src"/scripts/notify/README*.md "$DESTDIR$sharedir/notify/"
say "$sharedir/notify/ (samples)"

install -d -m 0755 "$DESTDIR$docdir"
install -m 0644 "$src/docs/operations.md" "$src/docs/pfile.md" "$src/docs/behaviour.md" "$src/docs/migrating.md" "$src/docs/cluster.md" "$DESTDIR$docdir/"
say "$docdir/"

if [ -n "$DESTDIR" ]; then
	if [ "$enable" = yes ]; then
		"$SYSTEMCTL" --root="$DESTDIR" enable pwatch.service
	fi
elif [ -d /run/systemd/system ]; then
	# Let a running systemd see the new unit; this starts nothing.
	"$SYSTEMCTL" daemon-reload
	if [ "$enable" = yes ]; then
		"$SYSTEMCTL" enable --now pwatch.service
	fi
elif [ "$enable" = yes ]; then
	die "--enable: systemd is not running on this host"
fi

if [ "$enable" = no ]; then
	cat <<NEXT
next (nginx, say; the templates also hold apache2 and tomcat):
  cp $sharedir/pfile/nginx.pfile $confdir/pfile.d/      # edit to taste
  cp $sharedir/restart/nginx.restart $confdir/scripts/
  $sbindir/padmin check $confdir/pfile.d
  systemctl enable --now pwatch.service
NEXT
fi
