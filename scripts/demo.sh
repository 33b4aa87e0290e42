#!/usr/bin/env bash
# The main job, on a fresh Debian machine as root, end to end:
#   a private munin-node (Debian's default plugins, plus one of the demo's own at a
#   5-second rate) -> our munin-asyncd -> the spool -> our munin-async -> Debian's
#   munin-update over cmd:// -> munin-html and munin-graph (the steps munin-cron runs).
# Installs what is missing, runs about a minute, keeps the master's web pages and prints
# the path of their index.html, and ends with a summary.
# DEMO_SECONDS (default 60) sets how long the daemon spools; MUNIN_NODE_PORT (4950) the
# private munin-node's port.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${MUNIN_NODE_PORT:-4950}"
seconds="${DEMO_SECONDS:-60}"

bash scripts/setup.sh
cargo build --release --locked --quiet
began=$(date +%s)

work="$(mktemp -d /tmp/munin-async-demo.XXXXXX)"
chmod 755 "$work"
mkdir -p "$work/bin" "$work/plugins" "$work/state" "$work/master/db" "$work/master/html" \
    "$work/master/log" "$work/master/run"
# The munin user runs the daemon, munin-async and the master here, from binaries it can
# reach.
install -m 755 target/release/munin-async target/release/munin-asyncd "$work/bin/"
chown -R munin: "$work/master"

pids=()
cleanup() {
    # munin-node's children first: killed after it, they would live on.
    node_pid=$(cat "$work/munin-node.pid" 2>/dev/null || true)
    if [ -n "$node_pid" ]; then
        pkill -P "$node_pid" 2>/dev/null || true
        kill "$node_pid" 2>/dev/null || true
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
say() { printf 'demo: %s\n' "$*"; }

# Debian's default plugins: what its postinst linked into /etc/munin/plugins, or, if that
# is empty, what munin-node-configure enables on this machine.
if compgen -G '/etc/munin/plugins/*' >/dev/null; then
    for p in /etc/munin/plugins/*; do ln -s "$(readlink -f "$p")" "$work/plugins/${p##*/}"; done
else
    munin-node-configure --shell --servicedir "$work/plugins" 2>/dev/null | sh
fi
default_plugins=$(find "$work/plugins" -mindepth 1 | wc -l)
# One plugin of the demo's own, at a 5-second rate, so that a minute draws a line: the
# machine's CPU time, read from /proc/stat (real samples, no made-up data).
cat >"$work/plugins/demo_cpu_5s" <<'PLUGIN'
#!/bin/sh
if [ "$1" = config ]; then
    cat <<'CONFIG'
graph_title CPU time every 5 seconds (munin-async demo)
graph_category demo
graph_vlabel % of one CPU
graph_args --base 1000 -l 0
graph_scale no
update_rate 5
graph_data_size custom 1d
user.label user
user.type DERIVE
user.min 0
user.draw AREA
system.label system
system.type DERIVE
system.min 0
system.draw STACK
CONFIG
    exit 0
fi
read -r _ user _ system _ </proc/stat
echo "user.value $user"
echo "system.value $system"
PLUGIN
chmod 755 "$work/plugins/demo_cpu_5s"

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
say "starting munin-node on 127.0.0.1:$port: $default_plugins default plugins and demo_cpu_5s, plugin state empty as on a new machine"
# A mount namespace of its own: this plugin directory and an empty plugin state, without
# touching the machine's.
unshare --mount --propagation private sh -c "
    mount --bind '$work/plugins' /etc/munin/plugins &&
    mkdir -p /var/lib/munin-node/plugin-state &&
    mount --bind '$work/state' /var/lib/munin-node/plugin-state &&
    exec /usr/sbin/munin-node --config '$work/munin-node.conf'" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
    { say "munin-node did not start: $(tail -n 5 "$work/munin-node.log")" >&2; exit 1; }

spool="$work/spool"
install -d -o munin -g munin -m 750 "$spool"
# --update-rate 10: the plugins that name no rate (Debian's all do not) and the daemon's
# own health are polled every 10 s rather than 300, so that a minute draws lines.
say "our munin-asyncd spools it into $spool for $seconds s, every 10 s (--update-rate 10) and demo_cpu_5s every 5 s"
setpriv --reuid=munin --regid=munin --init-groups \
    "$work/bin/munin-asyncd" --host "127.0.0.1:$port" --spooldir "$spool" --screen -v \
    --update-rate 10 2>"$work/munin-asyncd.log" &
daemon_pid=$!
pids+=("$daemon_pid")
# What the demo needs: every listed plugin has a record (a first fetch without values,
# as diskstats gives on a new machine, still spools its config), and the 5-second plugin
# has run for the whole time. It never waits for values.
start=$(date +%s)
first_round=""
while [ $(($(date +%s) - start)) -lt "$seconds" ]; do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        say "munin-asyncd stopped: $(tail -n 5 "$work/munin-asyncd.log")" >&2
        exit 1
    fi
    if [ -z "$first_round" ] && [ -s "$spool/munin-daemon.list" ]; then
        listed=$(wc -w <"$spool/munin-daemon.list")
        recorded=$(grep -c '^last-timestamp\.' "$spool/SPOOL-META" 2>/dev/null || true)
        if [ "${recorded:-0}" -ge "$listed" ]; then
            first_round=$(($(date +%s) - start))
            say "every one of the $listed plugins spooled after ${first_round} s"
        fi
    fi
    sleep 1
done
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
[ -n "$first_round" ] || say "warning: not every plugin was spooled in $seconds s (see $work/munin-asyncd.log)"

host=$(sed -n 's/^hostname://p' "$spool/SPOOL-META")
# graph_data_size custom 1d: the master keeps each plugin's own rate in its RRDs (with
# Munin 2.0's default, "normal", every RRD steps 300 s, and a minute is one point).
cat >"$work/master/munin.conf" <<CONF
dbdir $work/master/db
htmldir $work/master/html
logdir $work/master/log
rundir $work/master/run
graph_data_size custom 1d

[demo;$host]
    address cmd://$work/bin/munin-async --spooldir $spool --spoolfetch
CONF
as_munin() {
    # A home of its own, so that fontconfig (rrdtool's text) has a cache to write.
    setpriv --reuid=munin --regid=munin --init-groups \
        env HOME="$work/master" XDG_CACHE_HOME="$work/master/cache" "$@"
}
# What the master is about to receive, counted (as it would see it; --catchup-window 0:
# the whole spool).
reply=$(as_munin "$work/bin/munin-async" --spooldir "$spool" --spoolfetch --catchup-window 0 \
    <<<$'list\nspoolfetch 0\nquit')
rm -f "$spool/munin-async.cursor"
say "Debian's munin-update fetches the spool through our munin-async (cmd://)"
as_munin /usr/share/munin/munin-update --config_file "$work/master/munin.conf" --nofork ||
    { say "munin-update failed: $(tail -n 20 "$work/master/log/munin-update.log")" >&2; exit 1; }
say "munin-limits, munin-html and munin-graph draw the pages"
as_munin /usr/share/munin/munin-limits --config "$work/master/munin.conf" >/dev/null ||
    { say "munin-limits failed: $(tail -n 20 "$work/master/log/munin-limits.log")" >&2; exit 1; }
as_munin /usr/share/munin/munin-html --config "$work/master/munin.conf" >/dev/null ||
    { say "munin-html failed: $(tail -n 20 "$work/master/log/munin-html.log")" >&2; exit 1; }
as_munin /usr/share/munin/munin-graph --config "$work/master/munin.conf" >/dev/null ||
    { say "munin-graph failed: $(tail -n 20 "$work/master/log/munin-graph.log")" >&2; exit 1; }
# The day graph spans 30 hours, where the demo's minute is less than a pixel. Munin's zoom
# draws a graph over any span (a "pinpoint" graph); munin-graph draws the graphs
# munin-html lists in the db directory's `graphs` file, so for a moment that list names
# only the close-ups over the demo's own minutes: the 5-second plugin, the daemon's
# health, and a few of Debian's plugins.
hostdir="$work/master/html/demo/$host"
graphs=$(find "$hostdir" -name '*.png' | wc -l)
end=$(date +%s)
span="pinpoint=$((start - 20)),$((end + 5))"
closeups=()
for g in demo_cpu_5s munin_asyncd_polls munin_asyncd_latency munin_asyncd_samples \
         munin_asyncd_spool load cpu memory; do
    [ -e "$hostdir/$g.html" ] && closeups+=("$g")
done
cp "$work/master/db/graphs" "$work/master/graphs.all"
for g in "${closeups[@]}"; do echo "/demo/$host/$g-$span.png"; done >"$work/master/db/graphs"
as_munin /usr/share/munin/munin-graph --config "$work/master/munin.conf" >/dev/null ||
    say "warning: the close-ups were not drawn: $(tail -n 5 "$work/master/log/munin-graph.log")"
cp "$work/master/graphs.all" "$work/master/db/graphs"
closeup="demo_cpu_5s-$span.png"
# The page the demo ends on: what was spooled, close up, linked to the master's pages.
page="$work/master/html/demo.html"
{
    printf '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>munin-async demo: %s</title></head><body>\n' "$host"
    printf '<h1>What munin-asyncd spooled from %s, as Debian'"'"'s master drew it</h1>\n' "$host"
    printf '<p>%s s of spooling, fetched once by munin-update through munin-async. Each graph: the demo'"'"'s minutes close up; click for the master'"'"'s page of it (day, week, month and year). <a href="index.html">The master'"'"'s overview</a>, <a href="demo/%s/index.html">the host'"'"'s page</a>.</p>\n' "$seconds" "$host"
    for g in "${closeups[@]}"; do
        if [ -s "$hostdir/$g-$span.png" ]; then
            printf '<h2>%s</h2>\n<a href="demo/%s/%s.html"><img src="demo/%s/%s-%s.png" alt="%s"></a>\n' \
                "$g" "$host" "$g" "$host" "$g" "$span" "$g"
        fi
    done
    printf '</body></html>\n'
} >"$page"
chown munin: "$page"

plugins_listed=$(sed -n 2p <<<"$reply" | wc -w)
blocks=$(grep -c '^multigraph ' <<<"$reply" || true)
values=$(grep -c '\.value ' <<<"$reply" || true)
spooled=$(find "$spool" -maxdepth 1 -name 'munin-daemon.*.*.*' | sed 's/.*munin-daemon\.\(.*\)\.[0-9]*\.[0-9]*$/\1/' | sort -u | wc -l)
rrds=$(find "$work/master/db/demo" -name '*.rrd' | wc -l)
pages=$(find "$work/master/html" -name '*.html' | wc -l)
echo
say "munin-asyncd said:"
sed 's/^/    /' "$work/munin-asyncd.log"
echo
say "summary"
printf '    plugins listed by munin-node:   %s\n' "$plugins_listed"
printf '    plugins spooled:                %s\n' "$spooled"
printf '    values served to the master:    %s (in %s multigraph blocks)\n' "$values" "$blocks"
printf '    RRD files made by munin-update: %s\n' "$rrds"
printf '    graphs drawn by munin-graph:    %s (day, week, month, year), on %s pages\n' "$graphs" "$pages"
printf '    close-ups drawn:                %s of %s (%s)\n' \
    "$(find "$hostdir" -name "*-$span.png" -size +0 | wc -l)" "${#closeups[@]}" "${closeups[*]}"
printf '    took %s s after the packages were installed and the build was done\n' "$(($(date +%s) - began))"
echo
say "the master's web pages (kept): $work/master/html/index.html"
say "open this one first, the demo's minutes close up: $page"
# The demo fails loudly when the chain did not carry everything.
fail=""
[ "$spooled" -ge "$plugins_listed" ] && [ "$plugins_listed" -gt 0 ] || fail="not every listed plugin was spooled"
[ "$graphs" -gt 0 ] || fail="munin-graph drew nothing"
[ -s "$hostdir/$closeup" ] || fail="the close-up of demo_cpu_5s was not drawn"
for g in munin_asyncd_polls munin_asyncd_samples; do
    [ -s "$hostdir/$g-$span.png" ] || fail="the close-up of $g was not drawn"
done
grep -q 'demo_cpu_5s' "$hostdir/index.html" 2>/dev/null || fail="the host's page does not show demo_cpu_5s"
if [ -n "$fail" ]; then
    say "FAILED: $fail" >&2
    exit 1
fi
