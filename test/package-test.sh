#!/usr/bin/env bash
# The Debian package, as a DBA installs it: checks that the changelog and
# META.json carry the control file's version, builds
# postgresql-15-qiwi-kassa_<version>_<arch>.deb from a copy of the tree
# (dpkg-buildpackage, which also runs the regression tests against the
# package's files), removes what `make install` put into the system,
# installs the .deb with apt, checks that dpkg owns the installed files, and
# runs `make installcheck` against the installed package in a throwaway
# cluster.  Leaves the package installed.  Run as root on Debian 12; it
# installs the build packages it needs.  Does not take the install lock:
# run it under `flock /tmp/qiwi_kassa.install.lock`.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_CONFIG=/usr/bin/pg_config
PACKAGE=postgresql-$PG_MAJOR-qiwi-kassa

# Print a progress line
say() { printf '==> %s\n' "$*" >&2; }
# Print an error and stop
fail() { printf 'package-test: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages)"
export DEBIAN_FRONTEND=noninteractive

WORK=$(mktemp -d /tmp/qiwi_kassa-deb.XXXXXX)
chmod 755 "$WORK"
cleanup() { [ -n "${QIWI_KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# ---- the version, written once in the control file ----
VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$SRC/qiwi_kassa.control")
[ -n "$VERSION" ] || fail "no default_version in qiwi_kassa.control"
say "qiwi_kassa.control: version $VERSION"

if ! dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null | grep -q "install ok installed"; then
	say "installing dpkg-dev"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
fi

CHANGELOG_VERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
[ "$CHANGELOG_VERSION" = "$VERSION" ] ||
	fail "debian/changelog is at $CHANGELOG_VERSION, qiwi_kassa.control at $VERSION: add a changelog entry"
# PGXN wants semantic versions: 1.1 is 1.1.0 there
SEMVER=$VERSION
while [ "$(tr -cd . <<<"$SEMVER" | wc -c)" -lt 2 ]; do SEMVER=$SEMVER.0; done
META_VERSIONS=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(m["version"], m["provides"]["qiwi_kassa"]["version"])' "$SRC/META.json")
[ "$META_VERSIONS" = "$SEMVER $SEMVER" ] ||
	fail "META.json says version/provides version $META_VERSIONS, qiwi_kassa.control $VERSION (PGXN: $SEMVER)"
say "debian/changelog ($CHANGELOG_VERSION) and META.json ($SEMVER) agree"

# ---- build the .deb from a copy: dpkg-buildpackage writes into the parent ----
TREE=$WORK/qiwi-kassa-$VERSION
mkdir "$TREE"
cp -a "$SRC/." "$TREE/"
rm -rf "$TREE/.git"
# The build's test cluster (the postgres user) reads the package's files here
chmod -R a+rX,go-w "$TREE"

if ! (cd "$TREE" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
	say "installing the build dependencies of debian/control"
	apt-get update -qq
	apt-get build-dep -y -qq "$TREE" >/dev/null
fi

say "dpkg-buildpackage -us -uc -b (the build runs the regression tests against the package's files)"
if ! (cd "$TREE" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
	tail -n 150 "$WORK/build.log" >&2
	fail "dpkg-buildpackage failed (full log: $WORK/build.log with QIWI_KEEP_WORK=1)"
fi
grep -E '^(test |     )[a-z_]+ +\.\.\. |tests passed|tests failed' "$WORK/build.log" >&2 || true

DEB=$WORK/${PACKAGE}_${VERSION}_$(dpkg --print-architecture).deb
[ -f "$DEB" ] || fail "$(basename "$DEB") was not built: $(ls "$WORK")"
say "built $(basename "$DEB")"

# ---- what the package holds and needs ----
LIBDIR=$($PG_CONFIG --pkglibdir)
SHAREDIR=$($PG_CONFIG --sharedir)/extension
FILES=("$LIBDIR/qiwi_kassa.so" "$SHAREDIR/qiwi_kassa.control"
	"$SHAREDIR/qiwi_kassa--$VERSION.sql" "$SHAREDIR/qiwi_kassa--1.0.sql")
for f in "$SRC"/sql/qiwi_kassa--*--*.sql; do
	FILES+=("$SHAREDIR/$(basename "$f")")
done
CONTENTS=$(dpkg-deb -c "$DEB" | awk '{ print substr($6, 2) }')
for f in "${FILES[@]}"; do
	grep -qxF "$f" <<<"$CONTENTS" || fail "$(basename "$DEB") lacks $f"
done
say "the package holds: ${FILES[*]}"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
for dep in "postgresql-$PG_MAJOR" libcurl4 libssl3; do
	grep -Eq "(^|, )$dep( |,|$)" <<<"$DEPENDS" || fail "Depends lacks $dep: $DEPENDS"
done
say "Depends: $DEPENDS"

# ---- replace what `make install` put there by the package ----
if dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q "install ok installed"; then
	say "removing the $PACKAGE installed before"
	apt-get purge -y -qq "$PACKAGE" >/dev/null
fi
say "make uninstall (the files test/run-tests.sh installed)"
make -s -C "$TREE" PG_CONFIG=$PG_CONFIG uninstall >/dev/null
for f in "${FILES[@]}"; do
	[ ! -e "$f" ] || fail "$f is still there after make uninstall"
done

say "apt-get install -y $DEB"
apt-get install -y -qq "$DEB" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get install failed"; }
for f in "${FILES[@]}"; do
	owner=$(dpkg -S "$f" 2>/dev/null | cut -d: -f1) || true
	[ "$owner" = "$PACKAGE" ] || fail "dpkg -S $f names '${owner}', not $PACKAGE"
done
dpkg -S "$LIBDIR/qiwi_kassa.so" >&2
# Every file is the one the package shipped (md5sums); dpkg --verify
# reports a difference on its output, not in its exit status
VERIFY=$(dpkg --verify "$PACKAGE" 2>&1) || true
[ -z "$VERIFY" ] || fail "dpkg --verify $PACKAGE: installed files differ from the package: $VERIFY"
say "dpkg owns every installed file, unchanged"

# ---- make installcheck against the installed package ----
# Its server is configured as README's "Installing it in your server" and
# "Configuration" say for production (all but qiwi.secret_key_file, which
# make installcheck refuses): the tests must not depend on these
PRODUCTION_OPTS="-o qiwi.api_url=https://api.qiwi.com -o qiwi.payin_api_url=https://api.qiwi.com
 -o qiwi.site_id=prod-site-1 -o qiwi.payin_site_id=prod-payin-1 -o qiwi.public_key=prod-public-key
 -o qiwi.ca_file=/etc/ssl/certs/ca-certificates.crt -o qiwi.timeout=20s -o qiwi.connect_timeout=5s
 -o qiwi.max_retries=5 -o qiwi.database=postgres -o qiwi.reconcile_interval=30s"
say "make installcheck-virtualenv: make installcheck in a throwaway cluster preloading the installed library, configured for production"
if ! make -C "$TREE" PG_CONFIG=$PG_CONFIG VIRTUALENV_OPTS="${PRODUCTION_OPTS//$'\n'/}" installcheck-virtualenv \
	>"$WORK/installcheck.log" 2>&1; then
	cat "$WORK/installcheck.log" >&2
	[ -f "$TREE/regression.diffs" ] && cat "$TREE/regression.diffs" >&2
	fail "make installcheck failed against the installed package"
fi
grep -E '^(test |     )[a-z_]+ +\.\.\. |tests passed' "$WORK/installcheck.log" >&2
say "$PACKAGE $VERSION is installed and passes make installcheck"
