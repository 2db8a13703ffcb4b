#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tests the Debian package on this machine (CI, as root): lintian finds
# nothing to say, dpkg -i installs it, the installed programs, man pages,
# completions and templates work, the operator's files survive a
# reinstall, and a purge leaves nothing of the package behind (only a file
# the operator added, which dpkg never removes).
# Usage: scripts/deb_test.sh PACKAGE.deb
# It refuses to run where pwatch is installed already: it would purge it.
set -euo pipefail
deb=${1:?usage: scripts/deb_test.sh PACKAGE.deb}
cd "$(dirname "$0")/.."
checks=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { checks=$((checks + 1)); }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
installed() { dpkg-query -W -f='${db:Status-Status}' pwatch 2>/dev/null | grep -qx installed; }
if dpkg-query -W -f='${db:Status-Abbrev}' pwatch 2>/dev/null | grep -q '^[a-z]i\|^[a-z]c'; then
	fail "pwatch is installed (or its configuration is left) on this machine; this test would purge it"
fi
# A purge takes what was left only if nothing of ours was here before.
for p in /etc/pwatch /etc/default/pwatch /var/lib/pwatch /usr/share/pwatch /usr/share/doc/pwatch; do
	[ ! -e "$p" ] || fail "$p exists before the install: not a clean machine for this test"
done

echo "-- lintian"
# Every tag, down to pedantic and informational ones, must be fixed or
# overridden (packaging/lintian-overrides says why).
# Its exit status is not enough: one tag below is filtered out, so every
# line it prints (a tag, or why it could not run) fails the test.
out=$(lintian --pedantic --display-info --fail-on error,warning,info,pedantic "$deb" 2>&1 || true)
# Go's binaries keep a table of method names, each a length byte, the name
# and the offset of its package path: lintian's spelling check reads the
# name "add" followed by an offset byte 'd' or 'D' as the typo "addd"; where
# that happens depends only on the link's layout, so it is no typo of ours.
out=$(grep -v -e '^running with root privileges is not recommended' \
	-e '^I: pwatch: spelling-error-in-binary add[dD] add \[usr/sbin/p\(check\|admin\)\]$' <<<"$out" || true)
[ -z "$out" ] || fail "lintian says: $out"
ok

version=$(dpkg-deb -f "$deb" Version)
# What the package holds, and which of those paths this machine had
# before (shared directories such as /usr/share/man).
mapfile -t paths < <(dpkg-deb -c "$deb" | awk '{ sub(/^\./, "", $6); sub(/\/$/, "", $6); print $6 }' | grep -v '^$')
declare -A before
for p in "${paths[@]}"; do
	[ -e "$p" ] && before[$p]=1
done

echo "-- dpkg -i $deb"
dpkg -i "$deb" >/dev/null
installed || fail "not installed after dpkg -i"
ok

echo "-- the installed package"
for b in pcheck padmin; do
	[ "$(command -v "$b")" = "/usr/sbin/$b" ] || fail "$b: not /usr/sbin/$b on PATH"
	got=$("/usr/sbin/$b" --version)
	[ "$got" = "$b version $version" ] || fail "$b --version: $got, want $b version $version"
	ok
done
out=$(padmin check /usr/share/pwatch/pfile 2>/tmp/deb_test.err) || fail "padmin check of the templates: $(cat /tmp/deb_test.err)"
for f in /usr/share/pwatch/pfile/*.pfile; do
	grep -qx "OK $(basename "$f" .pfile)" <<<"$out" || fail "padmin check did not pass $f: $out"
	ok
done
for page in /usr/share/man/man8/pcheck.8.gz /usr/share/man/man8/padmin.8.gz /usr/share/man/man5/pfile.5.gz; do
	warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$warnings" ] || fail "man -l $page warns: $warnings"
	LC_ALL=C.UTF-8 man -l "$page" 2>/dev/null | grep -q '^NAME' || fail "man -l $page: no NAME section"
	ok
done
unit=/lib/systemd/system/pwatch.service
grep -qx 'ExecStart=/usr/sbin/pcheck run /etc/pwatch/pfile.d' "$unit" || fail "$unit: ExecStart does not name /usr/sbin/pcheck"
grep -qx 'Documentation=file:/usr/share/doc/pwatch/operations.md' "$unit" || fail "$unit: Documentation not under /usr/share/doc"
ok
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
	ok
fi
[ "$(dpkg-query -W -f='${Conffiles}' pwatch | awk '{ print $1 }')" = /etc/default/pwatch ] ||
	fail "conffiles: $(dpkg-query -W -f='${Conffiles}' pwatch), want /etc/default/pwatch"
ok
for d in /etc/pwatch/pfile.d /etc/pwatch/scripts; do
	[ -d "$d" ] && [ -z "$(ls -A "$d")" ] || fail "$d: missing, or not empty (a template enabled?)"
	ok
done
for f in /usr/share/bash-completion/completions/padmin /usr/share/zsh/vendor-completions/_pwatch \
	/usr/share/fish/vendor_completions.d/padmin.fish /usr/share/pwatch/monitoring/prometheus/pwatch.rules.yml \
	/usr/share/pwatch/monitoring/grafana/pwatch-dashboard.json /usr/share/doc/pwatch/behaviour.md \
	/usr/share/doc/pwatch/cluster.md \
	/usr/lib/ocf/resource.d/pwatch/pwatch; do
	[ -f "$f" ] || fail "$f: missing"
	ok
done
for f in /usr/share/pwatch/notify/mail /usr/share/pwatch/notify/webhook; do
	[ -x "$f" ] || fail "$f: missing or not executable"
	ok
done
# The installed bash completion completes the installed padmin.
got=$(bash -c 'source /usr/share/bash-completion/completions/padmin; COMP_WORDS=(padmin reb); COMP_CWORD=1; _pwatch; echo "${COMPREPLY[*]}"')
[ "$got" = reboot-count ] || fail "bash completion of 'padmin reb': $got"
ok

echo "-- the operator's files survive a reinstall"
echo 'PWATCH_WATCHER=proc # mine' >>/etc/default/pwatch
cp /usr/share/pwatch/pfile/nginx.pfile /etc/pwatch/pfile.d/
dpkg -i "$deb" >/dev/null
grep -qx 'PWATCH_WATCHER=proc # mine' /etc/default/pwatch || fail "/etc/default/pwatch: the operator's line is gone"
[ -f /etc/pwatch/pfile.d/nginx.pfile ] || fail "the operator's pfile is gone"
ok
if command -v systemctl >/dev/null; then
	# Enabled by the operator: the purge must not leave a dangling link.
	systemctl enable --quiet pwatch.service
	[ -L /etc/systemd/system/multi-user.target.wants/pwatch.service ] || fail "systemctl enable made no link"
	ok
fi

echo "-- dpkg --purge"
dpkg --purge pwatch >/tmp/deb_test.out 2>&1 || fail "purge: $(cat /tmp/deb_test.out)"
! installed || fail "still installed after the purge"
[ -z "$(dpkg-query -W -f='${db:Status-Abbrev}' pwatch 2>/dev/null | grep -v '^un')" ] ||
	fail "dpkg still knows pwatch: $(dpkg-query -W -f='${db:Status-Abbrev}' pwatch)"
ok
# The operator's pfile stays, and with it its directory; nothing else.
[ -f /etc/pwatch/pfile.d/nginx.pfile ] || fail "the purge removed a file the operator put there"
ok
rm /etc/pwatch/pfile.d/nginx.pfile
rmdir /etc/pwatch/pfile.d /etc/pwatch
left=()
for p in "${paths[@]}"; do
	[ -n "${before[$p]:-}" ] || [ ! -e "$p" ] || left+=("$p")
done
for p in /var/lib/pwatch /run/pwatch /etc/default/pwatch /etc/systemd/system/multi-user.target.wants/pwatch.service; do
	[ ! -e "$p" ] && [ ! -L "$p" ] || left+=("$p")
done
[ ${#left[@]} -eq 0 ] || fail "left after the purge: ${left[*]}"
ok

echo "ok: $checks checks"
