#!/usr/bin/env python3
"""Benchmark: one munin-asyncd polling a site's worth of munin-nodes (the "fanout").

Starts one fake munin-node process (examples/fake_munin_nodes.rs, one epoll thread) listening on NODES loopback ports,
each node with PLUGINS plugins at update_rate RATE, and one munin-asyncd polling all of
them from a configuration file (`--config`), one spool directory each. After a warm-up
of two rates it measures, over SECONDS:
  - munin-asyncd's CPU (user + system, as a share of one core), its resident memory
    (VmRSS at the end, VmHWM), its threads and open descriptors;
  - the fake node's CPU, so it can be seen not to be the bottleneck;
  - slots filled: for every node and plugin, the RATE slots within the window that hold
    a sample, against all there were;
  - lateness: a sample's time (when its request went out) minus its slot; p50, p99, max.
    Samples are stamped in whole seconds; with the Rust fake node, each round's lateness
    to the millisecond too, as the fake node saw each fetch arrive.
Then the idle case: one node whose plugins are due once a day, after its first round and
its first health sample (10 s after the start): bytes written and CPU over 30 s.

Targets (docs/benchmarks.md): 1000 nodes x 30 plugins at 60 s on at most 10% of a core
and 64 MiB, p99 lateness 2 s, every slot filled; idle: zero bytes written.

Usage: bench/fanout.py [--nodes N] [--plugins P] [--rate S] [--seconds S] [--ours PATH]
                       [--durability record|kernel] [--fake rust|python] [--hup-at S]
(as root, for the descriptor limit)
"""
import argparse, os, re, resource, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")

FAKE = r'''
import asyncio, sys
base, nodes, plugins, rate = (int(a) for a in sys.argv[1:5])
names = " ".join(f"p{i}" for i in range(plugins)) + "\n"

async def serve(reader, writer, k):
    writer.write(f"# munin node at node{k}\n".encode())
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            l = line.decode(errors="replace").strip()
            if l.startswith("cap"):
                out = "cap multigraph dirtyconfig\n"
            elif l == "nodes":
                out = f"node{k}\n.\n"
            elif l.startswith("list"):
                out = names
            elif l.startswith("config "):
                out = f"graph_title {l[7:]}\nupdate_rate {rate}\nv.label v\nv.type GAUGE\n.\n"
            elif l.startswith("fetch "):
                out = "v.value 42\n.\n"
            elif l == "quit":
                break
            else:
                out = "# Unknown command\n"
            writer.write(out.encode())
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()

async def main():
    servers = []
    for k in range(nodes):
        servers.append(await asyncio.start_server(
            lambda r, w, k=k: serve(r, w, k), "127.0.0.1", base + k, backlog=64))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def io_written(pid):
    with open(f"/proc/{pid}/io") as f:
        d = dict(l.split(": ") for l in f.read().splitlines())
    return int(d["wchar"]), int(d["syscw"])


def free_base(n):
    """A run of n free ports."""
    for base in range(20000, 60000 - n, 1000):
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    sys.exit("no run of free ports")


def sample_times(spooldir):
    """Every record time in each plugin's interval files: {(node, plugin): [t]}."""
    out = {}
    head = re.compile(rb"^timestamp (\d+)", re.M)
    for node in os.listdir(spooldir):
        d = os.path.join(spooldir, node)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            m = re.match(r"munin-daemon\.(.+)\.\d+\.\d+$", name)
            if not m or m.group(1) == "munin_asyncd":
                continue
            with open(os.path.join(d, name), "rb") as f:
                times = [int(t) for t in head.findall(f.read())]
            out.setdefault((node, m.group(1)), []).extend(times)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--plugins", type=int, default=30)
    ap.add_argument("--rate", type=int, default=60)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--ours", default=os.path.join(REPO, "target/release/munin-asyncd"))
    ap.add_argument("--durability", default="record", help="munin-asyncd's --durability")
    ap.add_argument("--fake", choices=["rust", "python"], default="rust",
                    help="the fake nodes: one epoll process (examples/fake_munin_nodes.rs) or "
                         "Python asyncio (slower: it saturates a core while a round comes in)")
    ap.add_argument("--hup-at", type=int, default=None,
                    help="send munin-asyncd a SIGHUP (every node reads its plugin list again) "
                         "this many seconds into the window; the round after it is marked")
    a = ap.parse_args()
    if a.fake == "rust":
        subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "fake_munin_nodes"],
                       cwd=REPO, check=True)
        fake_cmd = [os.path.join(REPO, "target/release/examples/fake_munin_nodes")]
    else:
        fake_cmd = [sys.executable, "-c", FAKE]
    limit = a.nodes * 12 + 1024
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    work = tempfile.mkdtemp(prefix="fanout-bench.")
    base = free_base(a.nodes)
    fake_log = open(os.path.join(work, "fake.log"), "w")
    fake = subprocess.Popen(fake_cmd + [str(base), str(a.nodes), str(a.plugins), str(a.rate)],
                            stdout=subprocess.PIPE, stderr=fake_log, text=True)
    if fake.stdout.readline().strip() != "ready":
        sys.exit("the fake node did not start")
    spool = os.path.join(work, "spool")
    os.mkdir(spool)
    conf = os.path.join(work, "munin-asyncd.conf")
    with open(conf, "w") as f:
        for k in range(a.nodes):
            f.write(f"[node{k}]\nhost 127.0.0.1:{base + k}\nspooldir {spool}/node{k}\n\n")
    log = open(os.path.join(work, "asyncd.log"), "w")
    d = subprocess.Popen([a.ours, "--config", conf, "--screen", "--update-rate", str(a.rate),
                          "--durability", a.durability],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        warm = 2 * a.rate
        print(f"{a.nodes} nodes x {a.plugins} plugins at {a.rate} s, --durability {a.durability}: "
              f"warming up {warm} s, then measuring {a.seconds} s")
        time.sleep(warm)
        # The window starts on a slot, so its slots are whole.
        now = time.time()
        start = (int(now) // a.rate + 1) * a.rate
        time.sleep(start - now)
        c0, f0 = cpu_ticks(d.pid), cpu_ticks(fake.pid)
        t0 = time.time()
        # Each second's CPU too: a round's polls all fall on one second, so the average
        # hides a process that is saturated while they come in.
        peak_d = peak_f = 0
        last = (c0, f0)
        hup = None
        for i in range(a.seconds):
            if a.hup_at is not None and i == a.hup_at:
                d.send_signal(signal.SIGHUP)
                hup = time.time()
            time.sleep(max(0.0, t0 + i + 1 - time.time()))
            now_ticks = (cpu_ticks(d.pid), cpu_ticks(fake.pid))
            peak_d = max(peak_d, now_ticks[0] - last[0])
            peak_f = max(peak_f, now_ticks[1] - last[1])
            last = now_ticks
        c1, f1 = cpu_ticks(d.pid), cpu_ticks(fake.pid)
        elapsed = time.time() - t0
        end = start + a.seconds
        rss, hwm, threads = status(d.pid, "VmRSS"), status(d.pid, "VmHWM"), status(d.pid, "Threads")
        fds = len(os.listdir(f"/proc/{d.pid}/fd"))
        # Samples land within seconds of their slot: wait one more rate before counting.
        time.sleep(min(a.rate, 30))
        times = sample_times(spool)
        slots = range(start, end, a.rate)
        filled = late = 0
        lateness = []
        for k in range(a.nodes):
            for p in range(a.plugins):
                ts = times.get((f"node{k}", f"p{p}"), [])
                for s in slots:
                    got = [t - s for t in ts if s <= t < s + a.rate]
                    if got:
                        filled += 1
                        lateness.append(min(got))
        total = a.nodes * a.plugins * len(slots)
        lateness.sort()
        pct = lambda q: lateness[min(len(lateness) - 1, int(q * len(lateness)))] if lateness else float("nan")
        print(f"munin-asyncd: CPU {100 * (c1 - c0) / TICK / elapsed:.1f}% of a core (busiest second {100 * peak_d / TICK:.0f}%), RSS {rss / 1024:.1f} MiB "
              f"(peak {hwm / 1024:.1f} MiB), {threads} threads, {fds} descriptors")
        print(f"fake munin-node ({a.fake}): CPU {100 * (f1 - f0) / TICK / elapsed:.1f}% of a core "
              f"(busiest second {100 * peak_f / TICK:.0f}%), "
              f"{len(os.listdir(f'/proc/{fake.pid}/fd'))} descriptors")
        print(f"slots filled: {filled} of {total} ({100 * filled / max(total, 1):.2f}%)")
        print(f"lateness: p50 {pct(0.5)} s, p99 {pct(0.99)} s, max {lateness[-1] if lateness else 'n/a'} s")
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
        fake.kill()
        fake.wait()
        if a.fake == "rust" and 'start' in locals():
            # "round SLOT N P50 P99 MAX" (ms), printed once the next slot began.
            rounds = []
            for line in fake.stdout.read().splitlines():
                f = line.split()
                if len(f) == 6 and f[0] == "round" and start <= int(f[1]) < start + a.seconds:
                    rounds.append(tuple(int(x) for x in f[1:]))
            # The reload's round: the first slot after the SIGHUP.
            reload_slot = min((s for s, *_ in rounds if hup is not None and s >= hup), default=None)
            print("lateness at the fake node, each round (fetches, p50 / p99 / max ms): " +
                  "; ".join(f"{n}, {p50} / {p99} / {mx}" + (" (after the SIGHUP)" if s == reload_slot else "")
                            for s, n, p50, p99, mx in rounds))
            if hup is not None:
                print(f"SIGHUP sent at +{hup - start:.1f} s of the window")
        log.close()
        fake_log.close()
        errors = os.path.getsize(os.path.join(work, "fake.log"))
        if errors:
            print(f"the fake node logged {errors} bytes of errors: {work}/fake.log")

    # Idle: one node, daily plugins, after its first round.
    base = free_base(1)
    fake = subprocess.Popen(fake_cmd + [str(base), "1", str(a.plugins), "86400"],
                            stdout=subprocess.PIPE, text=True)
    fake.stdout.readline()
    idle_spool = os.path.join(work, "idle")
    d = subprocess.Popen([a.ours, "--host", f"127.0.0.1:{base}", "--spooldir", idle_spool, "--screen",
                          "--update-rate", "86400"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The first round, and the first health sample 10 s after the start.
        time.sleep(15)
        w0, s0 = io_written(d.pid)
        c0 = cpu_ticks(d.pid)
        time.sleep(30)
        w1, s1 = io_written(d.pid)
        c1 = cpu_ticks(d.pid)
        print(f"idle, one node of {a.plugins} daily plugins, 30 s: {w1 - w0} bytes written in {s1 - s0} writes, "
              f"CPU {100 * (c1 - c0) / TICK / 30:.2f}% of a core")
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
        fake.kill()
        fake.wait()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
