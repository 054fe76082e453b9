#!/usr/bin/env python3
"""Run Bulwark, restic, borg and rustic on the same corpora and report medians and ratios.

Every command runs as a whole process under `/usr/bin/time -v`: wall time is taken around it,
peak RSS (and user/system CPU) come from time's report. Each run starts from fresh, empty
repositories; within a run each scenario is done by every tool before the next scenario starts,
and the tool order rotates from run to run so that drift (thermal, page cache, neighbours)
falls on all tools alike. Runs are warm-cache for every tool: each corpus is read before
every run (and the wait for freed inodes is sat out first), and nothing drops the page cache (that needs privileges this harness avoids).

Usage: runner.py --corpus DIR --work DIR [--runs N] [--tools a,b,...] [--bulwark PATH] [--keep]
Prints a Markdown report and writes WORK/results.json with every raw measurement.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time

ALL_TOOLS = ["bulwark", "restic", "borg", "rustic"]
PASSWORD = "bench-passphrase-not-secret"
TIMEOUT = 4 * 3600  # per command: a safety net, not a measurement

# Scenario key -> (label, what the MB/s column divides by).
SCENARIOS = {
    "a_initial": ("(a) files: initial backup", "files"),
    "a_nochange": ("(a) files: no-change backup", "files"),
    "a_changed": ("(a) files: backup after 1% of files changed", "files"),
    "a_restore": ("(a) files: full restore to an empty dir", "files"),
    "a_restore_deleted": ("(a) files: full restore right after a tree as large was deleted", "files"),
    "a_check": ("(a) files: check --read-data (MB/s of repository)", "repo_a"),
    "b_day1": ("(b) pg dump: backup day1.sql", "day1"),
    "b_day2": ("(b) pg dump: backup day2.sql", "day2"),
    "c_backup": ("(c) random 1 file: backup", "random"),
    "s3_initial": ("(a) files on S3 (s3s-fs on loopback): initial backup", "files"),
    "s3_nochange": ("(a) files on S3: no-change backup", "files"),
    "s3_restore": ("(a) files on S3: full restore to an empty dir", "files"),
}
# Tools that speak S3 themselves (borg does not).
S3_TOOLS = {"bulwark", "restic"}
S3_KEY, S3_SECRET, S3_BUCKET = "bench-access-key", "bench-secret-key-not-secret", "bench"
SIZES = {
    "a_initial": "(a) files: after initial backup",
    "a_final": "(a) files: after all three backups",
    "b_day1": "(b) pg dump: after day1",
    "b_day2": "(b) pg dump: after day1 + day2",
    "c": "(c) random file",
}


# ---------------------------------------------------------------- the tools

S3_ENV = {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
          "AWS_DEFAULT_REGION": "us-east-1"}


class Tool:
    """How one backup program spells each step. Each method returns (argv, cwd)."""

    name = ""
    exe_name = ""

    def __init__(self, exe, home):
        self.exe = exe
        self.home = home

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RESTIC_", "BORG_", "RUSTIC_", "BULWARK_"))}
        # Each tool's caches and configuration live in a home of its own, wiped between runs.
        env.update(HOME=self.home, XDG_CACHE_HOME=os.path.join(self.home, ".cache"),
                   XDG_CONFIG_HOME=os.path.join(self.home, ".config"))
        return env

    def version(self):
        try:
            out = subprocess.run([self.exe, "--version"], capture_output=True, text=True, timeout=60)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError) as e:
            return f"unknown ({e})"


class Bulwark(Tool):
    name = exe_name = "bulwark"

    def env(self):
        return {**super().env(), "BULWARK_PASSWORD": PASSWORD, **S3_ENV}

    def s3_repo(self, endpoint, name):
        return f"s3://{S3_BUCKET}/{name}?region=us-east-1&endpoint={endpoint}&allow_http=true"

    def init(self, repo):
        return [self.exe, "init", "-r", repo], None

    def backup(self, repo, path, label):
        return [self.exe, "backup", "-r", repo, path], None

    def restore(self, repo, target, label):
        return [self.exe, "restore", "-r", repo, "latest", "--target", target], None

    def check(self, repo):
        return [self.exe, "check", "-r", repo, "--read-data"], None


class Restic(Tool):
    name = exe_name = "restic"

    def env(self):
        return {**super().env(), "RESTIC_PASSWORD": PASSWORD, **S3_ENV}

    def s3_repo(self, endpoint, name):
        return f"s3:{endpoint}/{S3_BUCKET}/{name}"

    def version(self):
        out = subprocess.run([self.exe, "version"], capture_output=True, text=True)
        return out.stdout.strip()

    # Repository format: 'stable' (v2 since 0.14), so compression is on, mode auto.
    def init(self, repo):
        return [self.exe, "-r", repo, "init"], None

    def backup(self, repo, path, label):
        return [self.exe, "-r", repo, "backup", path], None

    def restore(self, repo, target, label):
        return [self.exe, "-r", repo, "restore", "latest", "--target", target], None

    def check(self, repo):
        return [self.exe, "-r", repo, "check", "--read-data"], None


class Borg(Tool):
    name = exe_name = "borg"

    def env(self):
        return {**super().env(), "BORG_PASSPHRASE": PASSWORD,
                "BORG_BASE_DIR": self.home, "BORG_DISPLAY_PASSPHRASE": "no"}

    def init(self, repo):
        return [self.exe, "init", "--encryption=repokey-blake2", repo], None

    def backup(self, repo, path, label):
        return [self.exe, "create", "--compression", "zstd,3", f"{repo}::{label}", path], None

    def restore(self, repo, target, label):
        return [self.exe, "extract", f"{repo}::{label}"], target  # borg extracts into its cwd

    def check(self, repo):
        return [self.exe, "check", "--verify-data", repo], None


class Rustic(Tool):
    name = exe_name = "rustic"

    def env(self):
        return {**super().env(), "RUSTIC_PASSWORD": PASSWORD, "RUSTIC_NO_PROGRESS": "true"}

    def init(self, repo):
        return [self.exe, "-r", repo, "init"], None

    def backup(self, repo, path, label):
        return [self.exe, "-r", repo, "backup", path], None

    def restore(self, repo, target, label):
        return [self.exe, "-r", repo, "restore", "latest", target], None

    def check(self, repo):
        return [self.exe, "-r", repo, "check", "--read-data"], None


TOOL_CLASSES = {c.name: c for c in (Bulwark, Restic, Borg, Rustic)}


# ---------------------------------------------------------------- measuring


def measure(argv, env, cwd, log_path):
    """Run argv to completion under /usr/bin/time -v; wall seconds, peak RSS and CPU times."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        time_file = tf.name
    full = ["/usr/bin/time", "-v", "-o", time_file] + argv
    load_before = loadavg()
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(argv) + (f"   (cwd {cwd})" if cwd else "") + "\n").encode())
        log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(full, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        seconds = time.perf_counter() - start
    report = {}
    with open(time_file) as f:
        for line in f:
            key, _, value = line.strip().rpartition(": ")
            report[key] = value
    os.unlink(time_file)
    return {
        "seconds": round(seconds, 4),
        "max_rss_kib": int(report.get("Maximum resident set size (kbytes)", 0)),
        "user_s": float(report.get("User time (seconds)", 0)),
        "sys_s": float(report.get("System time (seconds)", 0)),
        "rc": rc,
        "loadavg_before": load_before,
        "cmd": argv,
    }


def tree_bytes(path):
    """(regular files, their apparent bytes) below path."""
    files = total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                files += 1
                total += st.st_size
    return files, total


def warm_up(paths):
    """Read every byte once so that every tool starts from the same warm page cache."""
    buf = bytearray(1 << 20)
    for root in paths:
        for dirpath, _, names in os.walk(root):
            for name in names:
                p = os.path.join(dirpath, name)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb", buffering=0) as f:
                        while f.readinto(buf):
                            pass


class S3Server:
    """s3s-fs on a free loopback port, serving a directory of its own (each bucket a folder)."""

    def __init__(self, exe, root, log_path):
        import socket
        os.makedirs(os.path.join(root, S3_BUCKET), exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [exe, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", S3_KEY,
             "--secret-key", S3_SECRET, root],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"runner: s3s-fs did not start (see {log_path})")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def settle_after_deleting():
    """Flush and wait out ext4's recently-deleted-inode window (dirty_expire_centisecs, plus
    the 5 s ext4 adds for dirty blocks), so the next file creations are not slowed by it."""
    os.sync()
    try:
        with open("/proc/sys/vm/dirty_expire_centisecs") as f:
            window = int(f.read()) / 100
    except (OSError, ValueError):
        window = 30
    time.sleep(window + 6)


def cpu_busy(seconds=2.0):
    """Share of all CPUs busy over a short window: other load present before a run."""
    def sample():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + vals[4]
        return idle, sum(vals)
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return round(100.0 * (1 - (i1 - i0) / max(1, t1 - t0)), 1)


def busy_processes():
    """Names of other processes using CPU right now (top 5 by CPU over 1 s), for the record."""
    def ticks():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    s = f.read()
                name = s[s.index("(") + 1:s.rindex(")")]
                fields = s[s.rindex(")") + 2:].split()
                out[pid] = (name, int(fields[11]) + int(fields[12]))
            except (OSError, ValueError, IndexError):
                pass
        return out
    a = ticks()
    time.sleep(1)
    b = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    used = [(b[p][1] - a[p][1], b[p][0]) for p in b if p in a and p != str(os.getpid())]
    return [f"{name} {100 * t / hz:.0f}%" for t, name in sorted(used, reverse=True)[:5] if t > 0]


# ---------------------------------------------------------------- the 1% change


class Change:
    """A deterministic 1% of the files of corpus (a), changed in place and put back afterwards.

    The picked files are the first 1% by the hash of their relative path. Each gets 4 KiB in its
    middle (the whole file if smaller) overwritten with bytes derived from its path; sizes stay.
    The originals are saved first (with their times) and copied back by revert(), so the corpus
    is pristine again for the next run and every tool sees exactly the same change.
    """

    def __init__(self, root, save_dir):
        self.root, self.save_dir = root, save_dir
        self.journal = os.path.join(save_dir, "journal.json")

    def pick(self):
        rels = []
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                p = os.path.join(dirpath, name)
                if os.path.isfile(p) and not os.path.islink(p):
                    rels.append(os.path.relpath(p, self.root))
        rels.sort(key=lambda r: hashlib.sha256(b"change:" + r.encode("utf-8", "surrogateescape")).digest())
        return sorted(rels[:max(1, (len(rels) + 99) // 100)])

    def apply(self):
        self.revert()
        rels = self.pick()
        os.makedirs(self.save_dir, exist_ok=True)
        for i, rel in enumerate(rels):
            shutil.copy2(os.path.join(self.root, rel), os.path.join(self.save_dir, f"{i}"))
        with open(self.journal, "w") as f:
            json.dump(rels, f)
        changed = 0
        for rel in rels:
            path = os.path.join(self.root, rel)
            size = os.path.getsize(path)
            n = min(4096, size)
            seed = hashlib.sha256(rel.encode("utf-8", "surrogateescape")).digest()
            data = b"".join(hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
                            for i in range((n + 31) // 32))[:n]
            with open(path, "r+b") as f:
                f.seek((size - n) // 2)
                f.write(data)
            changed += n
        return len(rels), changed

    def revert(self):
        if not os.path.exists(self.journal):
            shutil.rmtree(self.save_dir, ignore_errors=True)
            return
        with open(self.journal) as f:
            rels = json.load(f)
        for i, rel in enumerate(rels):
            saved = os.path.join(self.save_dir, f"{i}")
            if os.path.exists(saved):
                shutil.copy2(saved, os.path.join(self.root, rel))
        shutil.rmtree(self.save_dir)


# ---------------------------------------------------------------- the benchmark


def fmt_ratio(num, den):
    if num is None or den in (None, 0):
        return "–"
    return f"{num / den:.2f}×"


def median_or_none(values):
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="directory made by make_corpora.sh")
    ap.add_argument("--work", required=True, help="scratch directory for repositories and logs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--bulwark", default=None, help="path of the bulwark binary")
    ap.add_argument("--mode", default="full", help="recorded in the results only")
    ap.add_argument("--keep", action="store_true", help="keep the last run's repositories")
    ap.add_argument("--results", default=None, help="default WORK/results.json")
    ap.add_argument("--s3", default=None, metavar="S3S_FS",
                    help="also back up to and restore from an S3 server: the s3s-fs binary to run")
    ap.add_argument("--restore-dir", default=None,
                    help="restore into this directory (say on another filesystem); default WORK/restore")
    args = ap.parse_args()

    corpus = os.path.abspath(args.corpus)
    work = os.path.abspath(args.work)
    restore_root = os.path.abspath(args.restore_dir or os.path.join(work, "restore"))
    files_dir = os.path.join(corpus, "files")
    day1 = os.path.join(corpus, "pgdump", "day1.sql")
    day2 = os.path.join(corpus, "pgdump", "day2.sql")
    random_dir = os.path.join(corpus, "random")
    for p in (files_dir, day1, day2, random_dir):
        if not os.path.exists(p):
            sys.exit(f"runner: {p} missing; run bench/make_corpora.sh first")

    tools = []
    for name in [t.strip() for t in args.tools.split(",") if t.strip()]:
        if name not in TOOL_CLASSES:
            sys.exit(f"runner: unknown tool {name}")
        exe = args.bulwark if name == "bulwark" and args.bulwark else shutil.which(name)
        if not exe or not os.access(exe, os.X_OK):
            print(f"runner: WARNING: {name} not found, left out", file=sys.stderr)
            continue
        tools.append(TOOL_CLASSES[name](os.path.abspath(exe), os.path.join(work, "home", name)))
    if not tools:
        sys.exit("runner: no tools to run")
    names = [t.name for t in tools]

    logs = os.path.join(work, "logs")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    change = Change(files_dir, os.path.join(work, "change-saved"))
    change.revert()  # an interrupted earlier run may have left corpus (a) changed

    files_count, files_bytes = tree_bytes(files_dir)
    basis = {"files": files_bytes, "day1": os.path.getsize(day1), "day2": os.path.getsize(day2),
             "random": tree_bytes(random_dir)[1]}

    print(f"warming the page cache with every corpus ({sum(basis.values()) / 2**20:.0f} MiB)...", file=sys.stderr)
    t0 = time.perf_counter()
    warm_up([files_dir, os.path.dirname(day1), random_dir])
    warm_s = time.perf_counter() - t0

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": args.mode,
        "runs": args.runs,
        "tools": {t.name: {"exe": t.exe, "version": t.version(), **binary_info(t.exe)} for t in tools},
        "bulwark_git": git_describe(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "restore_fs": restore_filesystem(restore_root),
        "cache": "warm: every corpus read before each run; the page cache is never dropped",
        "corpus": {"dir": corpus, "files_count": files_count, "files_bytes": files_bytes,
                   "day1_bytes": basis["day1"], "day2_bytes": basis["day2"],
                   "random_bytes": basis["random"]},
        "warm_up_seconds": round(warm_s, 1),
        "change": {"rule": Change.__doc__.strip().splitlines()[0]},
        "units": {"seconds": "wall clock of the whole process", "max_rss_kib": "peak RSS from /usr/bin/time -v",
                  "repo_bytes": "apparent size of all files in the repository directory",
                  "MB": "10^6 bytes", "MiB": "2^20 bytes"},
        "load": [],
    }

    raw, sizes, failures = [], [], []

    def record(run, tool, scenario, position, m):
        m.update(run=run, tool=tool.name, scenario=scenario, position=position)
        raw.append(m)
        status = "ok" if m["rc"] == 0 else f"FAILED rc={m['rc']}"
        if m["rc"] != 0:
            failures.append(f"run {run} {tool.name} {scenario}: rc={m['rc']} (see {logs})")
        print(f"  run {run} {scenario:11s} {tool.name:8s} {m['seconds']:9.2f} s "
              f"{m['max_rss_kib'] / 1024:8.1f} MiB  {status}", file=sys.stderr)

    def size(run, tool, key, repo):
        b = tree_bytes(repo)[1] if os.path.isdir(repo) else None
        sizes.append({"run": run, "tool": tool.name, "size": key, "repo_bytes": b})

    runs_dir = os.path.join(work, "repos")
    live_pg = os.path.join(work, "live", "pgdump")
    s3_root = os.path.join(work, "s3")
    shutil.rmtree(s3_root, ignore_errors=True)
    s3 = S3Server(args.s3, s3_root, os.path.join(logs, "s3s-fs.log")) if args.s3 else None
    if s3:
        meta["s3"] = f"s3s-fs ({args.s3}) at {s3.endpoint}, objects under {s3_root}"
    try:
        for run in range(1, args.runs + 1):
            k = (run - 1) % len(tools)
            order = tools[k:] + tools[:k]
            busy = cpu_busy()
            load = {"run": run, "cpu_busy_percent_before": busy, "loadavg_before": loadavg(),
                    "busy_processes_before": busy_processes(), "order": [t.name for t in order]}
            meta["load"].append(load)
            print(f"run {run}/{args.runs}: order {', '.join(load['order'])}; CPU busy before: {busy}%",
                  file=sys.stderr)
            shutil.rmtree(runs_dir, ignore_errors=True)
            shutil.rmtree(os.path.join(work, "home"), ignore_errors=True)
            if run > 1:
                # The last run's repositories were just deleted, and its restores may have pushed
                # the corpus out of the page cache: whoever backs up first would pay for both.
                settle_after_deleting()
                warm_up([files_dir, random_dir])
            repo = {}
            for t in tools:
                os.makedirs(t.home)
                repo[t.name] = {c: os.path.join(runs_dir, t.name, f"repo-{c}") for c in "abc"}
                os.makedirs(os.path.join(runs_dir, t.name))

            def step(scenario, build, among=None):
                for pos, t in enumerate(among or order):
                    argv, cwd = build(t)
                    log = os.path.join(logs, f"run{run}-{t.name}-{scenario}.log")
                    record(run, t, scenario, pos, measure(argv, t.env(), cwd, log))

            for c in "abc":
                step(f"init_{c}", lambda t, c=c: t.init(repo[t.name][c]))

            # (a) real files: initial, no change, 1% changed; then restore and check.
            step("a_initial", lambda t: t.backup(repo[t.name]["a"], files_dir, "a-1"))
            for t in tools:
                size(run, t, "a_initial", repo[t.name]["a"])
            step("a_nochange", lambda t: t.backup(repo[t.name]["a"], files_dir, "a-2"))
            n, nbytes = change.apply()
            load["changed_files"], load["changed_bytes"] = n, nbytes
            try:
                step("a_changed", lambda t: t.backup(repo[t.name]["a"], files_dir, "a-3"))
            finally:
                change.revert()
            for t in tools:
                size(run, t, "a_final", repo[t.name]["a"])

            def restore_a(pos, t, scenario, target):
                os.makedirs(target)
                argv, cwd = t.restore(repo[t.name]["a"], target, "a-3")
                log = os.path.join(logs, f"run{run}-{t.name}-{scenario}.log")
                m = measure(argv, t.env(), cwd, log)
                got = tree_bytes(target)
                m["restored_files"], m["restored_bytes"] = got
                m["restore_matches_corpus"] = got == (files_count, files_bytes)
                if m["rc"] == 0 and not m["restore_matches_corpus"]:
                    failures.append(f"run {run} {t.name} {scenario}: restored {got[0]} files / {got[1]} bytes, "
                                    f"corpus has {files_count} / {files_bytes}")
                record(run, t, scenario, pos, m)

            # Two protocols. Fresh: nothing is deleted between restores (on ext4, creating files
            # within ~35 s of deleting many others scans the freed inodes, and whoever restores
            # next would pay for the previous tool's cleanup). Deleted: what a restore after a
            # disaster meets; each tool restores right after one of the fresh trees, as large
            # as its own, is deleted from the same filesystem.
            restore_dir = restore_root
            for pos, t in enumerate(order):
                restore_a(pos, t, "a_restore", os.path.join(restore_dir, f"run{run}-{t.name}"))
            for pos, t in enumerate(order):
                shutil.rmtree(os.path.join(restore_dir, f"run{run}-{t.name}"))
                restore_a(pos, t, "a_restore_deleted", os.path.join(restore_dir, f"run{run}-{t.name}-deleted"))
            shutil.rmtree(restore_dir, ignore_errors=True)
            settle_after_deleting()

            step("a_check", lambda t: t.check(repo[t.name]["a"]))

            # (b) a nightly database dump at one path: day1, then day2 over it.
            shutil.rmtree(os.path.dirname(live_pg), ignore_errors=True)
            os.makedirs(live_pg)
            dump = os.path.join(live_pg, "dump.sql")
            shutil.copy2(day1, dump)
            warm_up([live_pg])
            step("b_day1", lambda t: t.backup(repo[t.name]["b"], live_pg, "b-1"))
            for t in tools:
                size(run, t, "b_day1", repo[t.name]["b"])
            shutil.copy2(day2, dump)
            warm_up([live_pg])
            step("b_day2", lambda t: t.backup(repo[t.name]["b"], live_pg, "b-2"))
            for t in tools:
                size(run, t, "b_day2", repo[t.name]["b"])

            # (c) one large file of random bytes.
            step("c_backup", lambda t: t.backup(repo[t.name]["c"], random_dir, "c-1"))
            for t in tools:
                size(run, t, "c", repo[t.name]["c"])

            # (d) the files of (a) to an S3 server on loopback: where off-site copies live.
            s3_order = [t for t in order if t.name in S3_TOOLS] if s3 else []
            if s3_order:
                s3_repo = {t.name: t.s3_repo(s3.endpoint, f"run{run}-{t.name}") for t in s3_order}
                step("init_s3", lambda t: t.init(s3_repo[t.name]), s3_order)
                step("s3_initial", lambda t: t.backup(s3_repo[t.name], files_dir, "s3-1"), s3_order)
                step("s3_nochange", lambda t: t.backup(s3_repo[t.name], files_dir, "s3-2"), s3_order)
                for pos, t in enumerate(s3_order):
                    target = os.path.join(restore_root, f"run{run}-{t.name}-s3")
                    os.makedirs(target)
                    argv, cwd = t.restore(s3_repo[t.name], target, "s3-2")
                    m = measure(argv, t.env(), cwd, os.path.join(logs, f"run{run}-{t.name}-s3_restore.log"))
                    got = tree_bytes(target)
                    m["restored_files"], m["restored_bytes"] = got
                    if m["rc"] == 0 and got != (files_count, files_bytes):
                        failures.append(f"run {run} {t.name} s3_restore: restored {got[0]} files / "
                                        f"{got[1]} bytes, corpus has {files_count} / {files_bytes}")
                    record(run, t, "s3_restore", pos, m)
                shutil.rmtree(restore_root, ignore_errors=True)
                settle_after_deleting()
            load["loadavg_after"] = loadavg()
    finally:
        change.revert()
        if s3:
            s3.stop()
            if not args.keep:
                shutil.rmtree(s3_root, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(runs_dir, ignore_errors=True)
        shutil.rmtree(restore_root, ignore_errors=True)

    # ------------------------------------------------------------ medians and ratios
    basis["repo_a"] = None
    med = {"seconds": {}, "seconds_min": {}, "seconds_max": {}, "mb_per_s": {}, "max_rss_mib": {},
           "repo_mib": {}, "n": {}}
    for s in SCENARIOS:
        for name in names:
            ok = [m for m in raw if m["scenario"] == s and m["tool"] == name and m["rc"] == 0]
            sec = median_or_none([m["seconds"] for m in ok])
            rss = median_or_none([m["max_rss_kib"] / 1024 for m in ok])
            b = basis[SCENARIOS[s][1]]
            if SCENARIOS[s][1] == "repo_a":
                b = median_or_none([z["repo_bytes"] for z in sizes
                                    if z["tool"] == name and z["size"] == "a_final" and z["repo_bytes"]])
            med["seconds"].setdefault(s, {})[name] = sec
            med["seconds_min"].setdefault(s, {})[name] = min((m["seconds"] for m in ok), default=None)
            med["seconds_max"].setdefault(s, {})[name] = max((m["seconds"] for m in ok), default=None)
            med["max_rss_mib"].setdefault(s, {})[name] = rss
            med["mb_per_s"].setdefault(s, {})[name] = (b / 1e6 / sec) if (sec and b) else None
            med["n"].setdefault(s, {})[name] = len(ok)
    for key in SIZES:
        for name in names:
            vals = [z["repo_bytes"] / 2**20 for z in sizes
                    if z["tool"] == name and z["size"] == key and z["repo_bytes"] is not None]
            med["repo_mib"].setdefault(key, {})[name] = median_or_none(vals)

    peers = [n for n in names if n != "bulwark"]
    ratios = {}
    if "bulwark" in names:
        for metric, table in (("time", med["seconds"]), ("rss", med["max_rss_mib"]), ("size", med["repo_mib"])):
            ratios[f"bulwark_{metric}_over_peer"] = {
                row: {p: (vals["bulwark"] / vals[p]) if vals.get("bulwark") and vals.get(p) else None
                      for p in peers}
                for row, vals in table.items()}

    one_min = [float(m["loadavg_before"].split()[0]) for m in raw]
    if one_min:
        meta["loadavg_range"] = f"{min(one_min):.2f}–{max(one_min):.2f}"
    results = {"meta": meta, "scenarios": {k: v[0] for k, v in SCENARIOS.items()}, "sizes": SIZES,
               "raw": raw, "raw_sizes": sizes, "medians": med, "ratios": ratios, "failures": failures}
    out = args.results or os.path.join(work, "results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)

    print(report(meta, med, names, peers, failures, out))
    return 1 if failures else 0


def binary_info(path):
    """When the binary was built and what it hashes to, so a result names exactly what ran."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    return {"sha256": h.hexdigest(), "mtime": mtime.isoformat(timespec="seconds")}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def restore_filesystem(path):
    """The filesystem restores go to, with its mount options (a journal or not matters)."""
    os.makedirs(path, exist_ok=True)
    try:
        out = subprocess.run(["findmnt", "-n", "-o", "TARGET,FSTYPE,OPTIONS", "-T", path],
                             capture_output=True, text=True, timeout=30).stdout.split()
        journal = ""
        if len(out) >= 2 and out[1] == "ext4":
            dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "-T", path],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
            feats = subprocess.run(["dumpe2fs", "-h", dev], capture_output=True, text=True,
                                   timeout=30).stdout
            journal = ", journal" if "has_journal" in feats else ", no journal"
        return f"{out[1]}{journal} at {out[0]} ({out[2]})" if len(out) >= 3 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_describe():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "crates"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+uncommitted changes in crates/" if dirty else "")
    except OSError:
        return "unknown"


def report(meta, med, names, peers, failures, out):
    c = meta["corpus"]
    lines = [
        f"# Bulwark benchmark ({meta['mode']}, median of {meta['runs']} runs, {meta['date']})",
        "",
        f"Corpora: (a) {c['files_count']} real files, {c['files_bytes'] / 2**20:.0f} MiB; "
        f"(b) PostgreSQL dumps day1 {c['day1_bytes'] / 2**20:.0f} MiB, day2 {c['day2_bytes'] / 2**20:.0f} MiB; "
        f"(c) {c['random_bytes'] / 2**20:.0f} MiB of random bytes.",
        "Versions: " + "; ".join(f"{n}: {meta['tools'][n]['version']}" for n in names)
        + (f" (bulwark binary built {meta['tools']['bulwark']['mtime']}, tree at {meta['bulwark_git']})."
           if "bulwark" in meta["tools"] else "."),
        f"Machine: {meta['machine']['cpus']} CPUs, {meta['machine']['mem_gib']} GiB. Warm cache for all tools. "
        f"Restores go to {meta.get('restore_fs', 'unknown')}. "
        + (f"S3: {meta['s3']}. " if "s3" in meta else "")
        + 
        "CPU busy before each run: " + ", ".join(f"{l['cpu_busy_percent_before']}%" for l in meta["load"])
        + f"; 1-minute loadavg before the measurements: {meta.get('loadavg_range', '?')}.",
        "Ratios are Bulwark ÷ peer: below 1.00× Bulwark is faster / uses less memory / stores less.",
        "",
    ]
    ratio_heads = [f"bulwark/{p}" for p in peers] if "bulwark" in names else []

    def table(title, rows, cell, values, with_ratios=True):
        heads = ratio_heads if with_ratios else []
        lines.append(f"## {title}")
        lines.append("")
        lines.append("| scenario | " + " | ".join(names + heads) + " |")
        lines.append("|---|" + "---:|" * (len(names) + len(heads)))
        for key, label in rows.items():
            v = values.get(key, {})
            cells = [cell(key, n) for n in names]
            if heads:
                cells += [fmt_ratio(v.get("bulwark"), v.get(p)) for p in peers]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")

    def time_cell(s, n):
        sec, rate = med["seconds"][s][n], med["mb_per_s"][s][n]
        if not_run(s, n):
            return "–"
        if sec is None:
            return "FAILED"
        return f"{sec:.2f} s ({rate:.0f} MB/s)" if rate else f"{sec:.2f} s"

    def not_run(s, n):
        """S3 scenarios for a tool without S3, or in a run without --s3."""
        return s.startswith("s3_") and (n not in S3_TOOLS or "s3" not in meta)

    labels = {k: v[0] for k, v in SCENARIOS.items() if not k.startswith("s3_") or "s3" in meta}
    table("Wall time, seconds (throughput MB/s = 10^6 bytes of the scenario's input per second)",
          labels, time_cell, med["seconds"])
    def spread_cell(s, n):
        lo, hi = med["seconds_min"][s][n], med["seconds_max"][s][n]
        if not_run(s, n):
            return "–"
        return "FAILED" if lo is None else f"{lo:.2f}–{hi:.2f}"

    lines.append("Spread of the runs (min–max seconds): wide ranges mean other load or I/O writeback "
                 "disturbed some runs; compare with loadavg_before of each measurement in the JSON.")
    lines.append("")
    table("Wall time spread, min–max seconds", labels, spread_cell, {}, with_ratios=False)
    table("Peak RSS, MiB", labels,
          lambda s, n: "–" if not_run(s, n) else "FAILED" if med["max_rss_mib"][s][n] is None
          else f"{med['max_rss_mib'][s][n]:.0f}",
          med["max_rss_mib"])
    table("Repository size, MiB", SIZES,
          lambda k, n: "–" if med["repo_mib"][k][n] is None else f"{med['repo_mib'][k][n]:.1f}",
          med["repo_mib"])
    if failures:
        lines.append("## Failures")
        lines.append("")
        lines += [f"- {f}" for f in failures]
        lines.append("")
    lines.append(f"Raw measurements: {out}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
