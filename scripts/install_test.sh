#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tests scripts/install.sh in temporary roots (DESTDIR): it never touches
# the system it runs on. Run: scripts/install_test.sh (no root needed).
# Exits 1 on the first failure, printing it.
set -euo pipefail
cd "$(dirname "$0")/.."
install_sh=$PWD/scripts/install.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { checks=$((checks + 1)); }
file_is() { # PATH MODE: a regular file with that mode
	[ -f "$1" ] || fail "$1: missing"
	[ "$(stat -c %a "$1")" = "$2" ] || fail "$1: mode $(stat -c %a "$1"), want $2"
	ok
}
dir_is() {
	[ -d "$1" ] || fail "$1: not a directory"
	ok
}
contains() { # FILE LINE: FILE has exactly this line
	grep -qxF -- "$2" "$1" || fail "$1: no line '$2'"
	ok
}

# Stand-ins for the built binaries, and a systemctl that only records.
mkdir -p "$tmp/bin"
for b in pcheck padmin; do printf '#!/bin/sh\necho %s v1\n' "$b" >"$tmp/bin/$b"; done
chmod 0755 "$tmp/bin"/*
cat >"$tmp/systemctl" <<SH
#!/bin/sh
echo "\$*" >>"$tmp/systemctl.log"
SH
chmod 0755 "$tmp/systemctl"
export SYSTEMCTL=$tmp/systemctl

run() { # DESTDIR [ARG...]: install.sh into DESTDIR, output in $tmp/out
	local root=$1
	shift
	DESTDIR=$root "$install_sh" --bin "$tmp/bin" "$@" >"$tmp/out" 2>&1
}

# 1. A default install: everything in place, nothing enabled or started.
root=$tmp/root1
run "$root" || { cat "$tmp/out"; fail "install failed"; }
file_is "$root/usr/local/sbin/pcheck" 755
file_is "$root/usr/local/sbin/padmin" 755
cmp -s "$tmp/bin/pcheck" "$root/usr/local/sbin/pcheck" || fail "pcheck not copied as is"
ok
unit=$root/etc/systemd/system/pwatch.service
file_is "$unit" 644
cmp -s scripts/pwatch.service "$unit" || fail "default paths: the unit must be installed unchanged"
ok
contains "$unit" "ExecStart=/usr/local/sbin/pcheck run /etc/pwatch/pfile.d"
contains "$unit" "KillMode=process"
dir_is "$root/etc/pwatch/pfile.d"
dir_is "$root/etc/pwatch/scripts"
[ -z "$(ls -A "$root/etc/pwatch/pfile.d")" ] || fail "pfile.d is not empty: a template was enabled"
ok
# systemd itself finds nothing wrong with it (pointed at the staged binary).
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$tmp/verify"
	sed "s|^ExecStart=/usr/local/sbin/pcheck|ExecStart=$root/usr/local/sbin/pcheck|" "$unit" >"$tmp/verify/pwatch.service"
	out=$(systemd-analyze verify "$tmp/verify/pwatch.service" 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
	ok
else
	echo "note: no systemd-analyze here; the unit was not verified" >&2
fi
file_is "$root/etc/default/pwatch" 644
for p in pfile/*.pfile pfile/README*.md; do
	file_is "$root/usr/local/share/pwatch/pfile/$(basename "$p")" 644
done
for s in scripts/restart/*.restart scripts/restart/*.retry-over; do
	file_is "$root/usr/local/share/pwatch/restart/$(basename "$s")" 755
done
for s in scripts/notify/mail scripts/notify/webhook; do
	file_is "$root/usr/local/share/pwatch/notify/$(basename "$s")" 755
done
for r in scripts/notify/README*.md; do
	file_is "$root/usr/local/share/pwatch/notify/$(basename "$r")" 644
done
for d in operations pfile behaviour migrating cluster; do
	file_is "$root/usr/local/share/doc/pwatch/$d.md" 644
done
# The hint names the server README's walk-through uses.
contains "$tmp/out" "  cp /usr/local/share/pwatch/pfile/nginx.pfile /etc/pwatch/pfile.d/      # edit to taste"
[ ! -e "$tmp/systemctl.log" ] || fail "systemctl was run without --enable: $(cat "$tmp/systemctl.log")"
ok
[ ! -e "$root/etc/systemd/system/multi-user.target.wants" ] || fail "the unit was enabled without --enable"
ok
# Only the paths above: nothing strays outside the staged root's tree.
[ "$(ls "$root")" = "$(printf 'etc\nusr')" ] || fail "unexpected top-level entries in DESTDIR: $(ls "$root")"
ok

# 2. Re-install over an edited system: the operator's files stay, ours are
# replaced.
echo '# mine' >"$root/etc/default/pwatch"
echo 'process /bin/true' >"$root/etc/pwatch/pfile.d/mine.pfile"
printf '#!/bin/sh\necho pcheck v2\n' >"$tmp/bin/pcheck"
run "$root" || { cat "$tmp/out"; fail "re-install failed"; }
[ "$(cat "$root/etc/default/pwatch")" = "# mine" ] || fail "/etc/default/pwatch overwritten"
ok
[ -f "$root/etc/pwatch/pfile.d/mine.pfile" ] || fail "the operator's pfile is gone"
ok
cmp -s "$tmp/bin/pcheck" "$root/usr/local/sbin/pcheck" || fail "pcheck not upgraded"
ok
[ -z "$(find "$root" -name '*.tmp')" ] || fail "temporary files left: $(find "$root" -name '*.tmp')"
ok

# 3. Other paths: the unit names them.
root=$tmp/root2
PREFIX=/opt/pwatch SYSCONFDIR=/etc/opt run "$root" || { cat "$tmp/out"; fail "PREFIX install failed"; }
unit=$root/etc/opt/systemd/system/pwatch.service
file_is "$root/opt/pwatch/sbin/pcheck" 755
contains "$unit" "ExecStart=/opt/pwatch/sbin/pcheck run /etc/opt/pwatch/pfile.d"
contains "$unit" "EnvironmentFile=-/etc/opt/default/pwatch"
contains "$unit" "Documentation=file:/opt/pwatch/share/doc/pwatch/operations.md"
! grep -q /usr/local "$unit" || fail "$unit still names /usr/local"
ok
dir_is "$root/etc/opt/pwatch/pfile.d"

# 4. --enable with DESTDIR enables in that root, starts nothing.
root=$tmp/root3
run "$root" --enable || { cat "$tmp/out"; fail "--enable failed"; }
[ "$(cat "$tmp/systemctl.log")" = "--root=$root enable pwatch.service" ] ||
	fail "systemctl calls: $(cat "$tmp/systemctl.log"), want only an offline enable"
ok
rm "$tmp/systemctl.log"
if command -v systemctl >/dev/null; then
	root=$tmp/root4
	SYSTEMCTL=systemctl run "$root" --enable || { cat "$tmp/out"; fail "--enable with the real systemctl failed"; }
	link=$root/etc/systemd/system/multi-user.target.wants/pwatch.service
	[ -L "$link" ] || fail "$link: not created"
	ok
else
	echo "note: no systemctl here; the real offline enable was not tried" >&2
fi

# 5. Refusals, each leaving nothing behind.
root=$tmp/root5
rm "$tmp/bin/padmin"
if run "$root"; then fail "installed without padmin"; fi
grep -q "make build" "$tmp/out" || fail "missing binary: message does not say to build: $(cat "$tmp/out")"
ok
[ ! -e "$root" ] || fail "a failed install left $root"
ok
printf '#!/bin/sh\n' >"$tmp/bin/padmin" && chmod 0755 "$tmp/bin/padmin"
if run relative/root; then fail "a relative DESTDIR was accepted"; fi
ok
if PREFIX=usr run "$root"; then fail "a relative PREFIX was accepted"; fi
ok
if PREFIX="/a b" run "$root"; then fail "a PREFIX with a space was accepted"; fi
ok
if run "$root" --bogus; then fail "an unknown option was accepted"; fi
ok
[ ! -e "$root" ] || fail "a refused install left $root"
ok

echo "ok: $checks checks"
