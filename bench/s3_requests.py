#!/usr/bin/env python3
"""Count the S3 requests Bulwark and restic make on the same data: object storage bills per
request, so this is a cost figure, not a speed one.

Starts a moto S3 server on loopback, runs each tool's initial backup, no-change backup, full
restore and `check --read-data` (and Bulwark's `copy` to a second bucket), and counts the HTTP
requests the server logged during each step, by kind (GET, PUT, LIST, DELETE, multipart, HEAD).
Prints a Markdown table with requests per GiB of source data.

Usage: s3_requests.py [--corpus DIR] [--bulwark PATH] [--tools bulwark,restic] [--work DIR]
Default corpus: bench/work/corpus-quick/files (make it with bench/make_corpora.sh --quick).
"""

import argparse
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "bench-passphrase-not-secret"
LINE = re.compile(r'"(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/[\d.]+" (\d+)')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kind_of(method, target):
    path, _, query = target.partition("?")
    if method == "GET" and ("list-type" in query or path.rstrip("/").count("/") <= 1):
        return "LIST"
    if method == "POST" and query.startswith("delete"):
        return "DELETE"
    if method == "POST" or "uploadId" in query or "uploads" in query:
        return "MULTIPART"
    return method


class Moto:
    def __init__(self, log_path):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(["moto_server", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/moto-api/", timeout=1)
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    sys.exit("s3_requests: moto_server did not start (pip install 'moto[server]')")
                time.sleep(0.2)
        self.mark = self.lines()

    def lines(self):
        self.log.flush()
        with open(self.log_path) as f:
            return sum(1 for _ in f)

    def create_bucket(self, name):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/{name}", method="PUT")
        urllib.request.urlopen(req, timeout=10)

    def counts_since_mark(self):
        """Requests logged since the last call, by kind."""
        time.sleep(0.3)  # the server logs after it answers
        with open(self.log_path) as f:
            new = f.readlines()[self.mark:]
        self.mark += len(new)
        counts = collections.Counter()
        for line in new:
            m = LINE.search(line)
            if m:
                counts[kind_of(m.group(1), m.group(2))] += 1
        return counts

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def tree_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=os.path.join(HERE, "work", "corpus-quick", "files"))
    ap.add_argument("--bulwark", default=os.path.join(ROOT, "target", "release", "bulwark"))
    ap.add_argument("--tools", default="bulwark,restic")
    ap.add_argument("--work", default=os.path.join(HERE, "work", "s3"))
    args = ap.parse_args()
    if not os.path.isdir(args.corpus):
        sys.exit(f"s3_requests: no corpus at {args.corpus} (run bench/make_corpora.sh --quick)")
    tools = args.tools.split(",")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    source_bytes = tree_size(args.corpus)
    gib = source_bytes / 2**30
    moto = Moto(os.path.join(args.work, "moto.log"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
               AWS_DEFAULT_REGION="us-east-1", BULWARK_PASSWORD=PASSWORD,
               RESTIC_PASSWORD=PASSWORD, HOME=os.path.join(args.work, "home"),
               XDG_CACHE_HOME=os.path.join(args.work, "home", ".cache"))
    os.makedirs(env["HOME"])
    endpoint = f"http://127.0.0.1:{moto.port}"

    def bulwark_url(bucket):
        return f"s3://{bucket}/repo?region=us-east-1&endpoint={endpoint}&allow_http=true"

    steps = {
        "bulwark": lambda r, t: [
            ("init", [args.bulwark, "init", "-r", r]),
            ("initial backup", [args.bulwark, "backup", "-q", "-r", r, args.corpus]),
            ("no-change backup", [args.bulwark, "backup", "-q", "-r", r, args.corpus]),
            ("restore", [args.bulwark, "restore", "-q", "-r", r, "latest", "--target", t]),
            ("check --read-data", [args.bulwark, "check", "-q", "-r", r, "--read-data"]),
            ("init a replica", [args.bulwark, "init", "-r", bulwark_url("bench-bulwark-copy"),
                                "--replica-of", r]),
            ("copy to the replica", [args.bulwark, "copy", "-q", "-r", r,
                                      "--to", bulwark_url("bench-bulwark-copy")]),
        ],
        "restic": lambda r, t: [
            ("init", ["restic", "init", "-r", r]),
            ("initial backup", ["restic", "backup", "-q", "-r", r, args.corpus]),
            ("no-change backup", ["restic", "backup", "-q", "-r", r, args.corpus]),
            ("restore", ["restic", "restore", "-q", "-r", r, "latest", "--target", t]),
            ("check --read-data", ["restic", "check", "-q", "-r", r, "--read-data"]),
        ],
    }
    results = []
    try:
        for tool in tools:
            bucket = f"bench-{tool}"
            moto.create_bucket(bucket)
            if tool == "bulwark":
                moto.create_bucket("bench-bulwark-copy")
                repo = bulwark_url(bucket)
            else:
                repo = f"s3:{endpoint}/{bucket}/repo"
            moto.counts_since_mark()
            target = tempfile.mkdtemp(dir=args.work, prefix=f"restore-{tool}-")
            for label, argv in steps[tool](repo, target):
                started = time.time()
                out = subprocess.run(argv, env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"s3_requests: {tool} {label} failed ({out.returncode}): {out.stderr.strip()}")
                counts = moto.counts_since_mark()
                total = sum(counts.values())
                results.append({"tool": tool, "step": label, "requests": total,
                                "per_gib": round(total / gib, 1), "by_kind": dict(counts),
                                "seconds": round(time.time() - started, 2)})
                print(f"{tool} {label}: {total} requests {dict(counts)}", file=sys.stderr)
            shutil.rmtree(target, ignore_errors=True)
    finally:
        moto.stop()

    print(f"# S3 requests, {source_bytes / 2**20:.0f} MiB of source files ({args.corpus})\n")
    print("| tool | step | requests | per GiB of source | by kind |")
    print("|---|---|---:|---:|---|")
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["by_kind"].items()))
        print(f"| {r['tool']} | {r['step']} | {r['requests']} | {r['per_gib']} | {kinds} |")
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"source_bytes": source_bytes, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
