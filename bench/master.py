#!/usr/bin/env python3
"""Benchmark: the master's cost. Debian's munin-update ingesting a backlog through our
munin-async (blocks, the default), ours with --compat-output (Perl's form) and Debian's
Perl munin-async, in the same run.

For each backlog (30 plugins from ../shared/tools/gen-spool.py, 2 and 5 days by default),
each variant gets a fresh master (its own dbdir) and one munin-update run, as root running
munin-update as the munin user over a cmd:// address. Reported: munin-update's wall time,
CPU time (user + system, munin-async's included: munin-update waits for it) and peak RSS
(GNU time), the reply's size, and whether the RRDs are identical to those made through
Perl's munin-async (rrdtool dump of every file). Targets (issue 10): munin-update through
ours at most 0.25 of its time through Perl's, peak RSS at most half.

Usage: bench/master.py [--days 2,5] [--runs N] [--ours PATH]   (as root)
"""
import argparse, hashlib, os, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GEN = os.path.join(REPO, "..", "shared", "tools", "gen-spool.py")
PERL = "/usr/share/munin/munin-async"
UPDATE = "/usr/share/munin/munin-update"
TIME = "/usr/bin/time"


def need(path, what):
    if not os.path.exists(path):
        sys.exit(f"bench: {path} is missing ({what})")


def run(argv, **kw):
    r = subprocess.run(argv, **kw)
    if r.returncode != 0:
        sys.exit(f"bench: {argv} exited {r.returncode}")
    return r


def master(work, name, address):
    d = os.path.join(work, name)
    os.mkdir(d)
    for sub in ("db", "html", "log", "run"):
        os.mkdir(os.path.join(d, sub))
    with open(os.path.join(d, "munin.conf"), "w") as f:
        f.write(f"dbdir {d}/db\nhtmldir {d}/html\nlogdir {d}/log\nrundir {d}/run\n"
                f"[bench;node]\n    address {address}\n")
    run(["chown", "-R", "munin:", d])
    return d


def update(d):
    """One munin-update run; returns (wall s, cpu s, peak RSS KiB)."""
    report = os.path.join(d, "time")
    argv = [TIME, "-f", "%e %U %S %M %x", "-o", report, "setpriv", "--reuid=munin",
            "--regid=munin", "--init-groups", UPDATE, "--config_file",
            os.path.join(d, "munin.conf"), "--nofork"]
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, user, sys_, rss, code = open(report).read().split()[-5:]
    if code != "0":
        sys.exit(f"bench: munin-update exited {code}; see {d}/log/munin-update.log")
    return float(wall), float(user) + float(sys_), int(rss)


def rrd_digest(d):
    db = os.path.join(d, "db", "bench")
    h = hashlib.sha256()
    names = sorted(n for n in os.listdir(db) if n.endswith(".rrd"))
    for n in names:
        h.update(n.encode())
        h.update(subprocess.run(["rrdtool", "dump", os.path.join(db, n)],
                                capture_output=True, check=True).stdout)
    return len(names), h.hexdigest()


def reply_bytes(argv, spool):
    r = subprocess.run(argv + ["--spooldir", spool, "--spoolfetch"], input=b"spoolfetch 0\n",
                       capture_output=True)
    return len(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", default="2,5")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--ours", default=os.path.join(REPO, "target", "release", "munin-async"))
    a = ap.parse_args()
    for p, what in ((GEN, "the shared tools"), (PERL, "Debian's munin-async"),
                    (UPDATE, "Debian's munin"), (TIME, "GNU time"), (a.ours, "cargo build --release")):
        need(p, what)
    if os.geteuid() != 0:
        sys.exit("bench: run as root (munin-update runs as the munin user)")
    work = tempfile.mkdtemp(prefix="munin-master-bench.")
    os.chmod(work, 0o755)
    ours = os.path.join(work, "munin-async")
    shutil.copy(a.ours, ours)
    os.chmod(ours, 0o755)
    now = int(time.time())
    ok = True
    try:
        for days in [int(x) for x in a.days.split(",")]:
            spool = os.path.join(work, f"spool-{days}d")
            end = now - now % 86400
            run([sys.executable, GEN, spool, "--days", str(days), "--end", str(end)],
                stdout=subprocess.DEVNULL)
            run(["chown", "-R", "munin:", spool])
            variants = [
                ("ours (blocks)", f"cmd://{ours} --spooldir {spool} --spoolfetch --catchup-window 0",
                 [ours, "--catchup-window", "0"]),
                ("ours (--compat-output)",
                 f"cmd://{ours} --spooldir {spool} --spoolfetch --catchup-window 0 --compat-output",
                 [ours, "--catchup-window", "0", "--compat-output"]),
                ("Perl munin-async", f"cmd://{PERL} --spooldir {spool} --spoolfetch", ["perl", PERL]),
            ]
            results = {}
            for r in range(a.runs):
                for name, address, argv in variants:
                    d = master(work, f"{days}d-{r}-{name.split()[0]}{len(results.get(name, []))}"
                               f"{'-compat' if 'compat' in name else ''}", address)
                    wall, cpu, rss = update(d)
                    results.setdefault(name, []).append((wall, cpu, rss, d))
            digests = {name: rrd_digest(res[0][3]) for name, res in results.items()}
            perl_best = min(w for w, _, _, _ in results["Perl munin-async"])
            perl_rss = min(m for _, _, m, _ in results["Perl munin-async"])
            print(f"\n{days}-day backlog, 30 plugins: munin-update, best of {a.runs}")
            print(f"{'through':<26}{'wall s':>8}{'cpu s':>8}{'peak RSS MiB':>14}{'reply MB':>10}"
                  f"{'RRDs':>6}  {'same RRDs as Perl':<18}{'time ratio':>11}{'RSS ratio':>10}")
            for name, address, argv in variants:
                res = results[name]
                wall = min(x[0] for x in res)
                cpu = min(x[1] for x in res)
                rss = min(x[2] for x in res)
                n, dig = digests[name]
                same = dig == digests["Perl munin-async"][1]
                size = reply_bytes(argv, spool) / 1e6
                print(f"{name:<26}{wall:>8.2f}{cpu:>8.2f}{rss / 1024:>14.1f}{size:>10.1f}{n:>6}  "
                      f"{'yes' if same else 'NO':<18}{wall / perl_best:>11.3f}{rss / perl_rss:>10.3f}")
                if not same:
                    ok = False
            blocks = results["ours (blocks)"]
            t = min(x[0] for x in blocks) / perl_best
            m = min(x[2] for x in blocks) / perl_rss
            print(f"targets: time ratio {t:.3f} <= 0.25: {'met' if t <= 0.25 else 'NOT met'}; "
                  f"RSS ratio {m:.3f} <= 0.5: {'met' if m <= 0.5 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not ok:
        sys.exit("bench: the RRDs differ between the variants")


if __name__ == "__main__":
    main()
