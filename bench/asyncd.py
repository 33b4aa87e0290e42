#!/usr/bin/env python3
"""Benchmark: one polling round over Debian's default plugins, ours against Perl's munin-asyncd.

Starts a private munin-node on 127.0.0.1 with the plugins Debian configured in
/etc/munin/plugins, then for each daemon, in turn and several times:
  - wall time of the first round: from start to the last spool file written (mtime);
  - CPU time of the daemon process (user + system) at that point;
  - idle RSS: VmRSS once the round is over and the daemon sleeps.
munin-node's own work (running the plugins) is the same for both and not counted.

Usage: bench/asyncd.py [--runs N] [--ours PATH]   (as root)
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

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


def one_round(argv, spool, perl):
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not round_done(spool, perl):
            if time.time() > deadline or p.poll() is not None:
                sys.exit(f"bench: {argv[0]} did not finish a round")
            time.sleep(0.02)
        cpu = cpu_seconds(p.pid)
        files = [os.path.join(spool, f) for f in os.listdir(spool) if f.startswith("munin-daemon.") and f != "munin-daemon.list"]
        wall = max(os.stat(f).st_mtime for f in files) - t0
        time.sleep(2)  # idle: between rounds
        rss = rss_kib(p.pid)
        return wall, cpu, rss, len(files)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ours", default=os.path.join(REPO, "target", "release", "munin-asyncd"))
    a = ap.parse_args()
    for path, what in ((PERL, "Debian's munin-async package"), (a.ours, "run: cargo build --release"), ("/usr/sbin/munin-node", "Debian's munin-node")):
        if not os.path.exists(path):
            sys.exit(f"bench: {path} is missing ({what})")
    work = tempfile.mkdtemp(prefix="munin-asyncd-bench.")
    node, port = start_node(work)
    results = {"ours": [], "perl": []}
    try:
        for i in range(a.runs):
            for name in ("perl", "ours"):
                spool = os.path.join(work, f"{name}-{i}")
                os.mkdir(spool)
                if name == "perl":
                    argv = ["perl", PERL, "--host", f"127.0.0.1:{port}", "--spooldir", spool, "--nocleanup"]
                else:
                    argv = [a.ours, "--host", f"127.0.0.1:{port}", "--spooldir", spool, "--nocleanup", "--durability", "record"]
                results[name].append(one_round(argv, spool, name == "perl"))
    finally:
        node.terminate()
        node.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = {n: [statistics.median(r[k] for r in results[n]) for k in range(3)] for n in results}
    plugins = results["ours"][0][3]
    print(f"one round over {plugins} plugins of this machine's munin-node, median of {a.runs}")
    print(f"{'':6} {'wall':>9} {'CPU':>9} {'idle RSS':>10}")
    for n in ("ours", "perl"):
        w, c, r = med[n]
        print(f"{n:6} {w * 1000:7.0f}ms {c * 1000:7.0f}ms {r / 1024:8.1f}MiB")
    wall = med["ours"][0] / med["perl"][0]
    rss = med["ours"][2] / 1024
    ok = lambda b: "ok" if b else "MISSED"
    print(f"wall time vs Perl: {wall:5.2f}  (target <= 0.25)  {ok(wall <= 0.25)}")
    print(f"idle RSS:          {rss:5.1f} MiB (target < 5 MiB) {ok(rss < 5)}")


if __name__ == "__main__":
    main()
