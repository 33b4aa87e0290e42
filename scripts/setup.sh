#!/usr/bin/env bash
# Installs what the project's tests, demo and benchmarks need on a fresh Debian machine,
# as root. Idempotent: installs only what is missing.
set -euo pipefail

packages=(munin munin-node munin-async rrdtool openssh-server openssh-client perl time procps strace systemd
          dpkg-dev debhelper lintian)
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

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is not installed; this project needs a Rust toolchain (1.89 or newer)" >&2
    exit 1
fi
for component in rustfmt clippy; do
    cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
if [ "${1:-}" = "--fuzz" ] && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz"
    cargo install --locked cargo-fuzz >/dev/null 2>&1
fi
