#!/usr/bin/env bash
# Builds the Debian package target/debian/munin-async-rs_<version>_<arch>.deb and prints
# its path. It installs the two programs where Debian's munin-async package puts them,
# declares that it replaces that package, and ships the systemd unit, an init script, the
# manual pages, shell completions and a commented example configuration.
#   scripts/package.sh [--bin-dir DIR] [--version VERSION]
# Without --bin-dir it builds the release binaries first.
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
for tool in dpkg-deb dpkg gzip install; do
    command -v "$tool" >/dev/null || { echo "package: $tool is missing" >&2; exit 1; }
done
if [ -z "$bin_dir" ]; then
    cargo build --release --locked >&2
    bin_dir=target/release
fi
[ -n "$version" ] || version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)-1"
arch="$(dpkg --print-architecture)"
name=munin-async-rs

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin_dir/munin-async" "$stage/usr/share/munin/munin-async"
install -D -m 0755 "$bin_dir/munin-asyncd" "$stage/usr/share/munin/munin-asyncd"
install -D -m 0644 packaging/munin-async.service "$stage/lib/systemd/system/munin-async.service"
install -D -m 0755 packaging/munin-async.init "$stage/etc/init.d/munin-async"
install -D -m 0644 packaging/munin-async.default "$stage/etc/default/munin-async"
for p in munin-async munin-asyncd; do
    install -D -m 0644 "man/$p.8" "$stage/usr/share/man/man8/$p.8"
    gzip -9n "$stage/usr/share/man/man8/$p.8"
    install -D -m 0644 "completions/$p.bash" "$stage/usr/share/bash-completion/completions/$p"
    install -D -m 0644 "completions/_$p" "$stage/usr/share/zsh/vendor-completions/_$p"
    install -D -m 0644 "completions/$p.fish" "$stage/usr/share/fish/vendor_completions.d/$p.fish"
done
install -D -m 0644 man/munin-asyncd.conf.5 "$stage/usr/share/man/man5/munin-asyncd.conf.5"
gzip -9n "$stage/usr/share/man/man5/munin-asyncd.conf.5"
doc="$stage/usr/share/doc/$name"
install -D -m 0644 packaging/munin-asyncd.conf.example "$doc/examples/munin-asyncd.conf"
install -m 0644 README.md "$doc/README.md"
for f in docs/*.md; do
    install -D -m 0644 "$f" "$doc/$f"
done
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $name

Files: *
License: GPL-2.0-only
 On Debian systems, the full text of the GNU General Public License version 2 can be
 found in /usr/share/common-licenses/GPL-2.
COPYRIGHT

mkdir -p "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
printf "%s\n" /etc/init.d/munin-async /etc/default/munin-async > "$stage/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: munin-async in Rust <munin-async-rs@example.org>
Installed-Size: $size
Depends: libc6, adduser
Recommends: munin-node
Provides: munin-async
Conflicts: munin-async
Replaces: munin-async
Section: net
Priority: optional
Description: Munin asynchronous proxy node (munin-asyncd, munin-async), in Rust
 munin-asyncd polls munin-node on each plugin's own schedule and spools every
 sample; munin-async replays the spool to a Munin master, usually as the forced
 command of the master's ssh key. A drop-in replacement for Debian's munin-async:
 same options, same spool, same protocol.
CONTROL
mkdir -p target/debian
out="target/debian/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >&2
echo "$out"
