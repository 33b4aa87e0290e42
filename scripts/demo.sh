#!/usr/bin/env bash
# The main job, on a fresh Debian machine as root: installs munin-node if missing, starts
# a private munin-node on 127.0.0.1 with the plugins Debian configured, spools one round
# of it with our munin-asyncd, and shows what a Munin master receives from our munin-async.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${MUNIN_NODE_PORT:-4950}"

bash scripts/setup.sh
cargo build --release --locked --quiet
bin="$PWD/target/release/munin-async"
daemon="$PWD/target/release/munin-asyncd"

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

echo "demo: spooling one round with our munin-asyncd into $work/spool"
"$daemon" --host "127.0.0.1:$port" --spooldir "$work/spool" --screen -v 2>"$work/munin-asyncd.log" &
daemon_pid=$!
pids+=("$daemon_pid")
# One round is done when every listed plugin has a sample.
for _ in $(seq 600); do
    listed=$(wc -w 2>/dev/null <"$work/spool/munin-daemon.list" || echo 0)
    sampled=$(grep -c '^last-timestamp\.' "$work/spool/SPOOL-META" 2>/dev/null || true)
    [ "$listed" -gt 0 ] && [ "${sampled:-0}" -ge "$listed" ] && break
    sleep 0.2
done
[ "${sampled:-0}" -ge "$listed" ] && [ "$listed" -gt 0 ] || { echo "demo: no full round in 120 s: $(tail -n 5 "$work/munin-asyncd.log")" >&2; exit 1; }
sleep 1.2   # let the daemon publish complete_until past the round
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
echo "demo: munin-asyncd said:"
sed 's/^/    /' "$work/munin-asyncd.log"

echo "demo: what the master receives (cap, list, spoolfetch 0) from our munin-async:"
echo "----"
reply="$(printf 'cap multigraph dirtyconfig\nlist\nspoolfetch 0\nquit\n' | "$bin" --spooldir "$work/spool" --spoolfetch --screen)"
printf '%s\n' "$reply" | head -n 30
echo "... ($(printf '%s\n' "$reply" | wc -l) lines in all)"
echo "----"
printf 'demo: %s plugins spooled, %s values served\n' \
    "$(printf '%s\n' "$reply" | sed -n 3p | wc -w)" \
    "$(printf '%s\n' "$reply" | grep -c '\.value ')"
