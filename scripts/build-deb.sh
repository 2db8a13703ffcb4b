#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make deb`: builds bin/pwatch_VERSION_amd64.deb with nfpm (pinned in
# go.mod). It stages bin/deb/root: static, stripped binaries installed by
# scripts/install.sh with Debian's paths, the man pages (generated from the
# programs' CLI definitions and docs/pfile.md), the completions, the
# monitoring rules and dashboard, copyright and changelog; then
# packaging/nfpm.yaml says what goes where. Prints the package's path.
#
# Environment: GO (default go), PWATCH_DEB_MAINTAINER.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
stage=bin/deb
root=$stage/root

# A Debian version from git: v1.2.3 is 1.2.3, commits after it
# 1.2.3+git5.abc1234; no tag yet: 0.0~gitDATE.HASH. Uncommitted changes
# add +dirty.
hash=$(git rev-parse --short=7 HEAD)
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
	n=$(git rev-list --count "$tag..HEAD")
	version=${tag#v}
	[ "$n" -eq 0 ] || version=$version+git$n.$hash
else
	version=0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$hash
fi
[ -z "$(git status --porcelain --untracked-files=no)" ] || version=$version+dirty
case $version in
[0-9]*) ;;
*) echo "build-deb.sh: version $version does not start with a digit" >&2; exit 1 ;;
esac
export PWATCH_DEB_VERSION=$version
export PWATCH_DEB_MAINTAINER=${PWATCH_DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>')}

rm -rf "$stage" bin/pwatch_*.deb
mkdir -p "$stage/bin"
# Static (no libc dependency) and stripped, as Debian wants binaries;
# without urfave/cli's renderers, as the Makefile builds them.
CGO_ENABLED=0 "$GO" build -trimpath -tags urfave_cli_no_docs \
	-ldflags "-s -w -X github.com/pwatch/pwatch/internal/version.Version=$version" \
	-o "$stage/bin/" ./cmd/pcheck ./cmd/padmin

DESTDIR=$PWD/$root PREFIX=/usr UNITDIR=/lib/systemd/system \
	scripts/install.sh --bin "$stage/bin" >/dev/null

# Man pages, compressed as Debian wants them (-n: no name or time stamp,
# so the same tree gives the same package).
mkdir -p "$root/usr/share/man/man8" "$root/usr/share/man/man5"
for b in pcheck padmin; do
	"$stage/bin/$b" man | "$GO" tool go-md2man | gzip -9n >"$root/usr/share/man/man8/$b.8.gz"
done
scripts/pfile-man.sh "$version" | gzip -9n >"$root/usr/share/man/man5/pfile.5.gz"

install -D -m 0644 scripts/completion/pwatch.bash "$root/usr/share/bash-completion/completions/padmin"
install -D -m 0644 scripts/completion/pwatch.bash "$root/usr/share/bash-completion/completions/pcheck"
install -D -m 0644 scripts/completion/_pwatch "$root/usr/share/zsh/vendor-completions/_pwatch"
install -D -m 0644 scripts/completion/pwatch.fish "$root/usr/share/fish/vendor_completions.d/padmin.fish"
install -D -m 0644 scripts/completion/pwatch.fish "$root/usr/share/fish/vendor_completions.d/pcheck.fish"

install -D -m 0644 monitoring/prometheus/pwatch.rules.yml "$root/usr/share/pwatch/monitoring/prometheus/pwatch.rules.yml"
install -D -m 0644 monitoring/grafana/pwatch-dashboard.json "$root/usr/share/pwatch/monitoring/grafana/pwatch-dashboard.json"

doc=$root/usr/share/doc/pwatch
install -m 0644 packaging/copyright "$doc/copyright"
{
	echo "pwatch ($version) unstable; urgency=medium"
	echo
	echo "  * Built from git commit $(git rev-parse HEAD)."
	echo
	echo " -- $PWATCH_DEB_MAINTAINER  $(git log -1 --format=%cd --date=rfc2822)"
} | gzip -9n >"$doc/changelog.gz"
install -D -m 0644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/pwatch"

# The files' times are the commit's: the same commit gives the same package.
export SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
"$GO" tool nfpm package --config packaging/nfpm.yaml --packager deb --target bin/ >&2
echo "bin/pwatch_${version}_amd64.deb"
