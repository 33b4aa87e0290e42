#!/usr/bin/env bash
# The main job, on a fresh Debian machine as root: installs munin-node if missing, starts
# a private munin-node on 127.0.0.1 with the plugins Debian configured, spools one round
# of it, and shows what a Munin master receives from our munin-async.
#
# Our munin-asyncd is not written yet: the spool is written by Debian's Perl munin-asyncd
# for now, which also shows that ours reads the Perl daemon's spool.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${MUNIN_NODE_PORT:-4950}"

bash scripts/setup.sh
cargo build --release --locked --quiet
bin="$PWD/target/release/munin-async"

work="$(mktemp -d /tmp/munin-async-demo.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/munin-node.conf" <<CONF
log_level 4
log_file $work/munin-node.log
pid_file $work/munin-node.pid
background 0
setsid 0
user root
group root
host 127.0.0.1
port $port
allow ^127\.0\.0\.1\$
timeout 60
CONF
echo "demo: starting munin-node on 127.0.0.1:$port with the plugins in /etc/munin/plugins"
/usr/sbin/munin-node --config "$work/munin-node.conf" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "demo: munin-node did not start: $(tail -n 5 "$work/munin-node.log")" >&2; exit 1; }

echo "demo: spooling one round with Debian's munin-asyncd into $work/spool"
mkdir -p "$work/spool"
/usr/share/munin/munin-asyncd --host "127.0.0.1:$port" --spooldir "$work/spool" --nocleanup >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 600); do
    grep -q '^lastruntime:' "$work/spool/SPOOL-META" 2>/dev/null && break
    sleep 0.2
done
grep -q '^lastruntime:' "$work/spool/SPOOL-META" || { echo "demo: munin-asyncd wrote no round in 120 s" >&2; exit 1; }

echo "demo: what the master receives (cap, list, spoolfetch 0) from our munin-async:"
echo "----"
reply="$(printf 'cap multigraph dirtyconfig\nlist\nspoolfetch 0\nquit\n' | "$bin" --spooldir "$work/spool" --spoolfetch --screen)"
printf '%s\n' "$reply" | head -n 30
echo "... ($(printf '%s\n' "$reply" | wc -l) lines in all)"
echo "----"
printf 'demo: %s plugins spooled, %s values served\n' \
    "$(printf '%s\n' "$reply" | sed -n 3p | wc -w)" \
    "$(printf '%s\n' "$reply" | grep -c '\.value ')"
