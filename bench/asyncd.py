#!/usr/bin/env python3
"""Benchmark: one polling round over Debian's default plugins, ours against Perl's munin-asyncd.

Starts a private munin-node on 127.0.0.1 with the plugins Debian configured in
/etc/munin/plugins, then for each daemon, in turn and several times:
  - wall time of the first round: from start to the last spool file written (mtime);
  - wall time of the second round (both poll every RATE seconds here): from its start to
    the last spool file written. Ours starts it on the wall-clock slot, a multiple of RATE;
    Perl's start is when, after its "Sleeping" line, it next writes to stderr (--verbose),
    the last such wake-up before its first write of the round.
    Ours dispatches the plugins that took longest first from the second round on;
  - CPU time of the daemon process (user + system) at that point;
  - idle RSS: VmRSS once the round is over and the daemon sleeps.
It also measures the floor: the slowest plugin's config and fetch, asked one after the
other over a connection of its own; no round can be shorter.
munin-node's own work (running the plugins) is the same for both and not counted.

Usage: bench/asyncd.py [--runs N] [--ours PATH]   (as root)
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PERL = "/usr/share/munin/munin-asyncd"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_node(work):
    port = free_port()
    conf = os.path.join(work, "munin-node.conf")
    with open(conf, "w") as f:
        f.write(f"log_level 4\nlog_file {work}/node.log\npid_file {work}/node.pid\nbackground 0\nsetsid 0\n"
                f"user root\ngroup root\nhost 127.0.0.1\nport {port}\nallow ^127\\.0\\.0\\.1$\ntimeout 60\n")
    node = subprocess.Popen(["/usr/sbin/munin-node", "--config", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return node, port
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: munin-node did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def round_done(spool, perl):
    meta = os.path.join(spool, "SPOOL-META")
    try:
        text = open(meta).read()
    except OSError:
        return False
    if perl:
        return "lastruntime:" in text
    try:
        listed = len(open(os.path.join(spool, "munin-daemon.list")).read().split())
    except OSError:
        return False
    return listed > 0 and text.count("last-timestamp.") >= listed


def data_files(spool):
    return [os.path.join(spool, f) for f in os.listdir(spool) if f.startswith("munin-daemon.") and f != "munin-daemon.list"]


def perl_wakeups(pipe, out):
    """Collects the times Perl's munin-asyncd starts a round after sleeping."""
    slept = False
    for line in pipe:
        if slept:
            out.append(time.time())
            slept = False
        if b"Sleeping" in line:
            slept = True


def one_round(argv, spool, perl, rate):
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if perl else subprocess.DEVNULL)
    wakeups = []
    if perl:
        threading.Thread(target=perl_wakeups, args=(p.stderr, wakeups), daemon=True).start()
    try:
        deadline = time.time() + 180
        while not round_done(spool, perl):
            if time.time() > deadline or p.poll() is not None:
                sys.exit(f"bench: {argv[0]} did not finish a round")
            time.sleep(0.02)
        cpu = cpu_seconds(p.pid)
        files = data_files(spool)
        end1 = max(os.stat(f).st_mtime for f in files)
        wall = end1 - t0
        time.sleep(2)  # idle: between rounds
        rss = rss_kib(p.pid)
        # The second round: every file written again after the first round ended.
        deadline = time.time() + 3 * rate + 60
        while True:
            times = [os.stat(f).st_mtime for f in files]
            if min(times) > end1 + 0.001:
                break
            if time.time() > deadline or p.poll() is not None:
                sys.exit(f"bench: {argv[0]} did not finish a second round")
            time.sleep(0.02)
        time.sleep(0.5)
        times = [os.stat(f).st_mtime for f in files]
        if perl:
            if not wakeups:
                sys.exit("bench: Perl's munin-asyncd logged no wake-up")
            # Perl may wake for a round in which every plugin is skipped as not due yet
            # (its threshold is 0.75 of the rate): the round is the last wake-up before
            # the first file written again.
            before = [w for w in wakeups if w <= min(times)]
            if not before:
                sys.exit("bench: Perl's munin-asyncd wrote before it woke up")
            start2 = before[-1]
        else:
            start2 = (min(times) // rate) * rate
        return wall, cpu, rss, len(files), max(times) - start2
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def slowest_plugin(port):
    """The plugin whose config and fetch take longest over one connection to munin-node:
    no round can be shorter. Returns (name, seconds)."""
    sock = socket.create_connection(("127.0.0.1", port), 10)
    f = sock.makefile("rwb")
    f.readline()

    def ask(cmd):
        f.write(cmd.encode() + b"\n")
        f.flush()
        lines = []
        while True:
            line = f.readline()
            if not line or line.startswith(b"."):
                return lines
            lines.append(line)

    f.write(b"list\n")
    f.flush()
    plugins = f.readline().decode().split()
    worst = ("", 0.0)
    for p in plugins:
        t = time.time()
        ask(f"config {p}")
        ask(f"fetch {p}")
        worst = max(worst, (p, time.time() - t), key=lambda w: w[1])
    f.write(b"quit\n")
    f.flush()
    sock.close()
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10, help="seconds between rounds (--minrate, --update-rate)")
    ap.add_argument("--ours", default=os.path.join(REPO, "target", "release", "munin-asyncd"))
    a = ap.parse_args()
    for path, what in ((PERL, "Debian's munin-async package"), (a.ours, "run: cargo build --release"), ("/usr/sbin/munin-node", "Debian's munin-node")):
        if not os.path.exists(path):
            sys.exit(f"bench: {path} is missing ({what})")
    work = tempfile.mkdtemp(prefix="munin-asyncd-bench.")
    node, port = start_node(work)
    results = {"ours": [], "perl": []}
    floors = []
    try:
        for i in range(a.runs):
            for name in ("perl", "ours"):
                spool = os.path.join(work, f"{name}-{i}")
                os.mkdir(spool)
                if name == "perl":
                    argv = ["perl", PERL, "--host", f"127.0.0.1:{port}", "--spooldir", spool, "--nocleanup",
                            "--minrate", str(a.rate), "--verbose"]
                else:
                    argv = [a.ours, "--host", f"127.0.0.1:{port}", "--spooldir", spool, "--nocleanup", "--durability", "record",
                            "--update-rate", str(a.rate)]
                results[name].append(one_round(argv, spool, name == "perl", a.rate))
            floors.append(slowest_plugin(port))
    finally:
        node.terminate()
        node.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = {n: [statistics.median(r[k] for r in results[n]) for k in (0, 1, 2, 4)] for n in results}
    plugins = results["ours"][0][3]
    print(f"rounds over {plugins} plugins of this machine's munin-node, median of {a.runs}")
    print(f"{'':6} {'1st round':>10} {'2nd round':>10} {'CPU (1st)':>10} {'idle RSS':>10}")
    for n in ("ours", "perl"):
        w, c, r, w2 = med[n]
        print(f"{n:6} {w * 1000:8.0f}ms {w2 * 1000:8.0f}ms {c * 1000:8.0f}ms {r / 1024:8.1f}MiB")
    wall = med["ours"][0] / med["perl"][0]
    wall2 = med["ours"][3] / med["perl"][3]
    rss = med["ours"][2] / 1024
    ok = lambda b: "ok" if b else "MISSED"
    print(f"1st round vs Perl: {wall:5.2f}  (nothing known yet about the plugins)")
    print(f"2nd round vs Perl: {wall2:5.2f}  (target <= 0.25)  {ok(wall2 <= 0.25)}")
    print(f"idle RSS:          {rss:5.1f} MiB (target < 5 MiB) {ok(rss < 5)}")
    slow = statistics.median(f[1] for f in floors)
    print(f"floor: {floors[0][0]} alone takes {slow * 1000:.0f} ms (config + fetch, median): "
          f"{slow / med['perl'][3]:.2f} of Perl's round; ours is {med['ours'][3] / slow:.2f}x that")


if __name__ == "__main__":
    main()
