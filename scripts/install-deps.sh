#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what building and testing pwatch needs on a Debian machine:
# clang/llvm for the BPF objects, the real servers the end-to-end tests
# drive, stress-ng to load the CPUs in the starvation tests, lintian and
# man-db for the package (make deb), promtool (in the prometheus package)
# for the metrics and alerting rules, zsh and fish for the completion
# tests, chromium for the status page's browser test (test/web_test.go
# drives it headless with chromedp). The tests start their servers
# themselves: no service of these packages is started or left enabled,
# and no process this script did not start is signalled.
set -euo pipefail
pkgs=(clang llvm libbpf-dev apache2 nginx tomcat10 default-jre-headless openssl ca-certificates iproute2 procps stress-ng)
# The OCF agent's tests (scripts/ocf/): a Pacemaker cluster stack, ocf-tester
# (resource-agents), xmllint (libxml2-utils), unshare (util-linux).
pkgs+=(pacemaker pacemaker-cli-utils corosync resource-agents crmsh libxml2-utils util-linux)
pkgs+=(lintian man-db prometheus zsh fish)
pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0

# While installing, a policy-rc.d that denies every start (invoke-rc.d and
# deb-systemd-invoke ask it); the machine's own one is put back after.
policy=/usr/sbin/policy-rc.d
saved=
if [ -e "$policy" ]; then
	saved=$(mktemp)
	cp -p "$policy" "$saved"
fi
restore_policy() {
	if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# scripts/install-deps.sh: start no service while it installs\nexit 101\n' >"$policy"
chmod 0755 "$policy"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Packages enable their services for the next boot: undo that for the
# packages installed now (those installed before are the machine's own).
for p in "${missing[@]}"; do
	while read -r unit; do
		if command -v systemctl >/dev/null; then
			systemctl disable --quiet "$unit" || echo "install-deps.sh: $unit left enabled" >&2
		fi
	done < <(dpkg -L "$p" | sed -n 's|^/lib/systemd/system/\([^/@]*\.service\)$|\1|p')
	while read -r script; do
		update-rc.d "$script" disable >/dev/null || echo "install-deps.sh: /etc/init.d/$script left enabled" >&2
	done < <(dpkg -L "$p" | sed -n 's|^/etc/init\.d/\([^/]*\)$|\1|p')
done
