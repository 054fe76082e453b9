#!/usr/bin/env python3
"""Where a point-in-time restore's replay spends its time, seen from PostgreSQL's startup process.

Runs `bulwark restore latest --dataset D --postgres-datadir DIR` and samples the server's startup
process every millisecond: its process title (`recovering SEG`, `waiting for SEG`, or bare while
it syncs the data directory and waits for the end-of-recovery checkpoint), its scheduler state
and its kernel wait channel. Prints the time per title and per (title, state, wait channel),
then the restore's own phases. Run as root; the restore runs as the `postgres` account.

    bench/replay_phases.py --bulwark target/release/bulwark --repo R --key-file K --dataset db \
        --datadir /tmp/restored/data

`bench/pgbackrest.sh --keep` leaves a repository to point it at (bench/work/pgbackrest/repo,
key in bench/work/pgbackrest/pgbr/key).
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time


def startup_pid():
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if f.read().startswith(b"postgres: startup"):
                        return p
            except OSError:
                pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bulwark", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--datadir", required=True)
    a = ap.parse_args()
    if os.path.exists(a.datadir):
        shutil.rmtree(a.datadir)
    parent = os.path.dirname(os.path.abspath(a.datadir))
    os.makedirs(parent, exist_ok=True)
    shutil.chown(parent, "postgres")
    out = open(os.path.join(parent, "restore.json"), "w+")
    restore = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", a.bulwark, "-r", a.repo, "--key-file", a.key_file,
         "restore", "latest", "--dataset", a.dataset, "--postgres-datadir", a.datadir, "--json"],
        stdout=out, stderr=subprocess.DEVNULL)
    pid = None
    while pid is None and restore.poll() is None:
        pid = startup_pid()
        time.sleep(0.002)
    if pid is None:
        sys.exit("the restore ended before a startup process was seen")
    by_title = collections.Counter()
    by_wait = collections.Counter()
    started = last = time.time()
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read() or "-"
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            break
        now = time.time()
        title = re.sub(r"[0-9A-F]{24}", "SEG", title)
        by_title[title] += now - last
        by_wait[(title, state, wchan)] += now - last
        last = now
        time.sleep(0.001)
    if restore.wait() != 0:
        sys.exit(f"the restore failed (exit {restore.returncode})")
    print(f"startup process lived {last - started:.2f} s")
    for title, s in by_title.most_common():
        print(f"{s:6.2f} s  {title}")
    print()
    for (title, state, wchan), s in by_wait.most_common(12):
        print(f"{s:6.2f} s  {state} {wchan:24} {title}")
    out.seek(0)
    report = json.load(out)
    print()
    print("restore phases:", {k: round(v, 2) for k, v in report["phases"].items()},
          f"total {report['duration_s']:.2f} s, WAL wait {report['wal_wait_s']:.2f} s")


if __name__ == "__main__":
    main()
