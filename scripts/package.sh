#!/usr/bin/env bash
# Builds the Debian package target/debian/munin-async-rs_<version>_<arch>.deb with
# debhelper (packaging/debian/) and prints its path on its last line. The programs go to
# /usr/lib/munin-async/, with symlinks where Debian's munin-async package puts them
# (/usr/share/munin/), so existing forced commands keep working; the package declares
# that it replaces that package, and ships the systemd unit, an init script,
# /etc/default/munin-async, the manual pages, shell completions, README.Debian,
# NEWS.Debian and a copyright file naming every crate linked in.
#   scripts/package.sh [--bin-dir DIR] [--version VERSION]
# Without --bin-dir it builds the release binaries first. --version adds a changelog
# entry of that version (the package test's upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=""
version=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        *) echo "usage: scripts/package.sh [--bin-dir DIR] [--version VERSION]" >&2; exit 2 ;;
    esac
done
for tool in dpkg-buildpackage dh python3; do
    command -v "$tool" >/dev/null ||
        { echo "package: $tool is missing (scripts/setup.sh installs dpkg-dev and debhelper)" >&2; exit 1; }
done
if [ -z "$bin_dir" ]; then
    cargo build --release --locked >&2
    bin_dir=target/release
fi
bin_dir="$(cd "$bin_dir" && pwd)"

# The changelog's version must be the crate's.
crate="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
logged="$(sed -n '1s/^munin-async-rs (\([^)]*\)).*/\1/p' packaging/debian/changelog)"
[ "${logged%-*}" = "$crate" ] ||
    { echo "package: packaging/debian/changelog is at $logged, Cargo.toml at $crate" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$work/munin-async-rs"
mkdir -p "$src"
cp -r packaging man completions docs README.md "$src/"
cp -r packaging/debian "$src/debian"
for f in service init default; do
    cp "packaging/munin-async.$f" "$src/debian/munin-async-rs.munin-async.$f"
done
python3 scripts/copyright.py > "$src/debian/copyright"
if [ -n "$version" ]; then
    {
        printf 'munin-async-rs (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * Rebuilt as %s.\n\n' "$version"
        printf ' -- munin-async in Rust <munin-async-rs@example.org>  %s\n\n' "$(date -R)"
        cat packaging/debian/changelog
    } > "$src/debian/changelog"
fi
(
    cd "$src"
    BIN_DIR="$bin_dir" dpkg-buildpackage -b -us -uc --no-sign >&2
)
mkdir -p target/debian
deb="$(ls "$work"/munin-async-rs_*.deb)"
out="target/debian/$(basename "$deb")"
mv "$deb" "$out"
echo "$out"
