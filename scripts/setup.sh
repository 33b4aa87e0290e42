#!/usr/bin/env bash
# Installs what the project's tests, demo and benchmarks need on a fresh Debian machine,
# as root. Idempotent: installs only what is missing.
set -euo pipefail

packages=(munin munin-node munin-async munin-plugins-c rrdtool openssh-server openssh-client perl
          time procps strace systemd dpkg-dev debhelper lintian python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    # Keep the packaged daemons from starting on a machine that runs no init system.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's munin-node-c conflicts with munin-node (each is the node of its machine): the
# tests run the binary of its package unpacked here, not installed.
nodec=/var/cache/munin-async-tests/munin-node-c
if [ ! -x "$nodec/usr/sbin/munin-node-c" ]; then
    echo "setup: unpacking Debian's munin-node-c into $nodec"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && { apt-get download munin-node-c >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download munin-node-c >/dev/null 2>&1; }; })
    mkdir -p "$nodec"
    dpkg-deb -x "$tmp"/munin-node-c_*.deb "$nodec"
    rm -rf "$tmp"
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is not installed; this project needs a Rust toolchain (1.89 or newer)" >&2
    exit 1
fi
for component in rustfmt clippy; do
    cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
if [ "${1:-}" = "--fuzz" ] && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz"
    # Quiet when it works; what cargo said, and a line saying so, when it does not.
    log=$(mktemp)
    if ! cargo install --locked cargo-fuzz >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "setup: cargo install cargo-fuzz failed (its last lines above); the fuzz step needs it" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
