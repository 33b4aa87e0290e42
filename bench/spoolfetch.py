#!/usr/bin/env python3
"""Benchmark: spoolfetch of a five-day backlog, ours against Debian's Perl munin-async.

Generates a 30-plugin spool with ../shared/tools/gen-spool.py, then in the same run:
  - `spoolfetch 0` piped to a reader (wc -c), for ours, Perl's munin-async and `cat` of
    the same files: wall time (best of N), peak RSS of the server process;
  - time from start to the greeting line (median of 100 starts);
  - peak RSS of ours on a much larger backlog with no catch-up limit (memory must not grow
    with the backlog).
Checks that ours (with --compat-output) and Perl send the same lines (plugin order aside)
before reporting. Ours in its default form (blocks, see docs/protocol.md) is timed too;
the targets are for the same work as Perl's, the compat form.

Usage: bench/spoolfetch.py [--runs N] [--days D] [--big-days D] [--ours PATH]
Prints a table and the ratios against the targets; exits 1 if a component is missing.
"""
import argparse, hashlib, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GEN = os.path.join(REPO, "..", "shared", "tools", "gen-spool.py")
PERL = "/usr/share/munin/munin-async"
TIME = "/usr/bin/time"


def need(path, what):
    if not os.path.exists(path):
        sys.exit(f"bench: {path} is missing ({what})")


def measure(argv, stdin_bytes):
    """Runs argv with stdin_bytes, stdout piped into `wc -c`; returns (seconds, maxrss KiB, bytes).

    GNU time forks the program from a small process: Linux carries a process's peak RSS
    across exec, so measuring a direct child of this (large) Python process would report
    Python's own memory.
    """
    with tempfile.TemporaryFile() as inp, tempfile.NamedTemporaryFile("r") as report:
        inp.write(stdin_bytes)
        inp.seek(0)
        t0 = time.perf_counter()
        p = subprocess.Popen([TIME, "-f", "%e %M %x", "-o", report.name] + argv,
                             stdin=inp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        wc = subprocess.Popen(["wc", "-c"], stdin=p.stdout, stdout=subprocess.PIPE)
        p.stdout.close()
        out = wc.communicate()[0]
        p.wait()
        elapsed = time.perf_counter() - t0
        _, rss, code = report.read().split()[-3:]
        if code != "0":
            sys.exit(f"bench: {argv[0]} exited {code}")
        return elapsed, int(rss), int(out)


def greeting_ms(argv, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = p.stdout.readline()
        times.append((time.perf_counter() - t0) * 1000)
        p.stdin.close()
        p.wait()
        assert line.startswith(b"# munin node at "), line
    return statistics.median(times)


def lines_digest(argv, stdin_bytes):
    out = subprocess.run(argv, input=stdin_bytes, stdout=subprocess.PIPE, check=True).stdout
    lines = out.split(b"\n")
    lines.sort()
    return hashlib.sha256(b"\n".join(lines)).hexdigest(), len(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--big-days", type=int, default=30)
    ap.add_argument("--ours", default=os.path.join(REPO, "target", "release", "munin-async"))
    a = ap.parse_args()
    need(GEN, "the shared tools beside the checkout")
    need(PERL, "Debian's munin-async package")
    need(a.ours, "run: cargo build --release")
    need(TIME, "Debian's time package")
    work = tempfile.mkdtemp(prefix="munin-async-bench.")
    try:
        spool = os.path.join(work, "spool")
        subprocess.run([sys.executable, GEN, spool, "--plugins", "30", "--days", str(a.days)], check=True)
        files = sorted(os.path.join(spool, f) for f in os.listdir(spool) if f.startswith("munin-daemon.") and f != "munin-daemon.list")
        size = sum(os.path.getsize(f) for f in files)
        req = b"spoolfetch 0\nquit\n"
        # Perl's form, byte for byte: the same work as Perl's and cat's.
        ours = [a.ours, "--spooldir", spool, "--spoolfetch", "--compat-output"]
        # The default form, in blocks (less to send, more to do per record).
        blocks = [a.ours, "--spooldir", spool, "--spoolfetch"]
        perl = ["perl", PERL, "--spooldir", spool, "--spoolfetch"]
        cat = ["cat"] + files

        d_ours, n_ours = lines_digest(ours, req)
        d_perl, n_perl = lines_digest(perl, req)
        if d_ours != d_perl:
            sys.exit(f"bench: ours and Perl differ ({n_ours} vs {n_perl} bytes)")

        # The three run in turn in every round, so they share whatever the machine is doing;
        # the ratios are the medians of each round's ratios.
        rounds = []
        for _ in range(a.runs):
            rounds.append({name: measure(argv, req) for name, argv in
                           (("ours", ours), ("blocks", blocks), ("perl", perl), ("cat", cat))})
        res = {name: (min(r[name][0] for r in rounds), max(r[name][1] for r in rounds), rounds[0][name][2])
               for name in ("ours", "blocks", "perl", "cat")}
        speed = statistics.median(r["perl"][0] / r["ours"][0] for r in rounds)
        vs_cat = statistics.median(r["ours"][0] / r["cat"][0] for r in rounds)
        g_ours = greeting_ms([a.ours, "--spooldir", spool, "--spoolfetch"], 100)
        g_perl = greeting_ms(perl, 20)

        big = os.path.join(work, "big")
        subprocess.run([sys.executable, GEN, big, "--plugins", "30", "--days", str(a.big_days)], check=True)
        big_size = sum(os.path.getsize(os.path.join(big, f)) for f in os.listdir(big))
        b_time, b_rss, b_bytes = measure([a.ours, "--spooldir", big, "--spoolfetch", "--catchup-window", "0"], req)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mib = 1024 * 1024
    print(f"spool: 30 plugins, {a.days} days, {len(files)} files, {size / mib:.1f} MiB; reply {res['ours'][2] / mib:.1f} MiB "
          f"with --compat-output (same lines as Perl), {res['blocks'][2] / mib:.1f} MiB in blocks (the default)")
    print("ours: --compat-output; blocks: the default reply")
    print(f"{'':6} {'best of ' + str(a.runs):>12} {'MiB/s':>8} {'peak RSS':>10}   (ratios: median of the rounds)")
    for name in ("ours", "blocks", "perl", "cat"):
        t, rss, n = res[name]
        print(f"{name:6} {t * 1000:10.1f}ms {n / mib / t:8.0f} {rss / 1024:8.1f}MiB")
    rss = res["ours"][1] / 1024
    verdict = lambda ok: "ok" if ok else "MISSED"
    print(f"speed vs Perl:   {speed:6.1f}x   (target >= 30x)   {verdict(speed >= 30)}")
    print(f"time vs cat:     {vs_cat:6.2f}x   (target <= 4x)    {verdict(vs_cat <= 4)}")
    print(f"peak RSS:        {rss:6.1f} MiB (target < 8 MiB) {verdict(rss < 8)}")
    print(f"greeting:        {g_ours:6.2f} ms  (target < 5 ms)  {verdict(g_ours < 5)}; Perl {g_perl:.1f} ms")
    print(f"big backlog:     {a.big_days} days, {big_size / mib:.0f} MiB, reply {b_bytes / mib:.0f} MiB in {b_time:.2f} s, peak RSS {b_rss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
