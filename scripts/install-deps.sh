#!/usr/bin/env bash
# Installs what building and testing pwatch needs on a Debian machine:
# clang/llvm for the BPF objects, the real servers the end-to-end tests
# drive, and stress-ng to load the CPUs in the starvation tests. Package start-up is left to the tests (they run servers themselves).
set -euo pipefail
pkgs=(clang llvm libbpf-dev apache2 nginx openssl ca-certificates iproute2 procps stress-ng)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Servers installed from packages must not stay running: tests start their own.
for s in apache2 nginx; do
	pkill -x "$s" 2>/dev/null || true
done
