#!/usr/bin/env python3
"""Helper for bench/prune.sh: make the many-small-files corpus, and print the report.

    prune_corpus.py make DEST --files N [--seed S]
    prune_corpus.py report RUN_DIR RESULTS_JSON

`make` writes DEST/full/dNNNN/fNNNN: N files in directories of 1000, each 64-512 bytes of
random content from a PRNG seeded per directory (so the corpus is the same on every machine
and can be written by two processes at once). Every file is smaller than any chunker's
minimum, so each is exactly one data blob, and none repeats another. DEST/half is the same
tree with every second file (odd file numbers) hard-linked from DEST/full: half the blobs,
identical content, no extra disk. DEST/complete marks a finished corpus (it holds N and the
seed); a DEST without it, or made with other parameters, is removed and made again.

`report` gathers what prune.sh left in RUN_DIR (meta.env, steps.tsv, repos.tsv, the prune
outputs) into RESULTS_JSON and prints the Markdown tables.
"""

import json
import multiprocessing
import os
import random
import shutil
import sys

PER_DIR = 1000
MIN_SIZE, MAX_SIZE = 64, 512


def dir_sizes(files):
    """File count of each directory: PER_DIR each, the last one holding the rest."""
    full, rest = divmod(files, PER_DIR)
    return [PER_DIR] * full + ([rest] if rest else [])


def write_dir(args):
    dest, d, count, seed = args
    rng = random.Random(seed * 1_000_003 + d)
    full = os.path.join(dest, "full", f"d{d:04d}")
    half = os.path.join(dest, "half", f"d{d:04d}")
    os.makedirs(full)
    os.makedirs(half)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    total = 0
    for f in range(count):
        data = rng.randbytes(rng.randint(MIN_SIZE, MAX_SIZE))
        path = os.path.join(full, f"f{f:04d}")
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        total += len(data)
        if f % 2 == 1:
            os.link(path, os.path.join(half, f"f{f:04d}"))
    return count, total


def make(dest, files, seed):
    marker = os.path.join(dest, "complete")
    want = {"files": files, "seed": seed, "per_dir": PER_DIR, "sizes": [MIN_SIZE, MAX_SIZE]}
    try:
        with open(marker) as f:
            have = json.load(f)
        if {k: have.get(k) for k in want} == want:
            print(f"corpus {dest}: complete ({files} files), kept", file=sys.stderr)
            return
    except (OSError, ValueError):
        pass
    if os.path.exists(dest):
        print(f"corpus {dest}: incomplete or other parameters, removing", file=sys.stderr)
        shutil.rmtree(dest)
    os.makedirs(dest)
    jobs = [(dest, d, n, seed) for d, n in enumerate(dir_sizes(files))]
    with multiprocessing.Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        done = pool.map(write_dir, jobs, chunksize=4)
    count = sum(c for c, _ in done)
    total = sum(b for _, b in done)
    half_files = sum(n // 2 for n in dir_sizes(files))
    with open(marker, "w") as f:
        json.dump({**want, "bytes": total, "half_files": half_files}, f)
        f.write("\n")
    print(f"corpus {dest}: {count} files, {total} bytes; half: {half_files} files",
          file=sys.stderr)


# ---------------------------------------------------------------- report


def assemble(run):
    """results.json's content from what prune.sh left in RUN."""
    meta = {}
    with open(os.path.join(run, "meta.env")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            meta[key] = value
    for key in ("files", "cpus", "mem_total_kib"):
        meta[key] = int(meta[key])
    try:
        with open(os.path.join(meta["corpus"], "complete")) as f:
            meta["corpus_info"] = json.load(f)
    except (OSError, ValueError):
        meta["corpus_info"] = {}
    steps = []
    with open(os.path.join(run, "steps.tsv")) as f:
        for line in f:
            tool, step, wall, user, sys_, rss, load1, rc = line.rstrip("\n").split("\t")
            steps.append({"tool": tool, "step": step, "wall_s": float(wall),
                          "user_s": float(user), "sys_s": float(sys_),
                          "max_rss_kib": int(rss), "load1_before": float(load1),
                          "rc": int(rc)})
    repos = {}
    with open(os.path.join(run, "repos.tsv")) as f:
        for line in f:
            tool, phase, nbytes, blobs, packs = line.rstrip("\n").split("\t")
            repos.setdefault(tool, {})[phase] = {
                "bytes": int(nbytes), "blobs": int(blobs), "packs": int(packs)}
    prune_out = {}
    path = os.path.join(run, "bulwark-prune.json")
    if os.path.exists(path):
        with open(path) as f:
            prune_out["bulwark"] = json.load(f)
    path = os.path.join(run, "restic-prune.txt")
    if os.path.exists(path):
        with open(path) as f:
            prune_out["restic"] = f.read()
    return {"meta": meta, "steps": steps, "repos": repos, "prune_output": prune_out}


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def cpu(s):
    return s["user_s"] + s["sys_s"]


def report(run, out):
    res = assemble(run)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    meta, ci = res["meta"], res["meta"]["corpus_info"]
    print(f"## prune of a {meta['files']:,}-blob repository: Bulwark vs restic\n")
    if ci:
        print(f"- corpus: {ci['files']:,} files of {ci['sizes'][0]}-{ci['sizes'][1]} random "
              f"bytes ({ci['bytes'] / 1e6:,.1f} MB) in directories of {ci['per_dir']}; "
              f"snapshot #2 hard-links every second one ({ci['half_files']:,} files)")
    if meta.get("bulwark"):
        print(f"- bulwark: {meta['bulwark_version']} ({meta['bulwark']})")
    if meta.get("restic_version"):
        print(f"- restic: {meta['restic_version']}")
    mu = meta.get("max_unused")
    print(f"- prune: --max-unused {mu} for both" if mu else
          "- prune: each tool's default --max-unused (5%: of the size before prune in Bulwark, "
          "of the size after in restic)")
    print(f"- machine: {meta['cpu_model']}, {meta['cpus']} CPUs, "
          f"{meta['mem_total_kib'] / 1048576:.0f} GiB; {meta['host']}")
    print(f"- {meta['started']} to {meta.get('finished', '?')}\n")

    print("| tool | step | wall s | user s | sys s | CPU s | peak RSS MiB | load before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for s in res["steps"]:
        print(f"| {s['tool']} | {s['step']} | {s['wall_s']:.2f} | {s['user_s']:.2f} | "
              f"{s['sys_s']:.2f} | {cpu(s):.2f} | {s['max_rss_kib'] / 1024:,.1f} | "
              f"{s['load1_before']:.2f} |")

    print("\n| tool | repo bytes before prune | after | blobs before prune | after "
          "| packs before prune | after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool, r in res["repos"].items():
        b, a = r.get("before", {}), r.get("after", {})
        print(f"| {tool} | {fmt(b.get('bytes'))} | {fmt(a.get('bytes'))} | "
              f"{fmt(b.get('blobs'))} | {fmt(a.get('blobs'))} | "
              f"{fmt(b.get('packs'))} | {fmt(a.get('packs'))} |")

    steps = {(s["tool"], s["step"]): s for s in res["steps"]}
    rows = []
    for step in ("prune", "prune --dry-run", "backup #1 (all files)", "check"):
        b, r = steps.get(("bulwark", step)), steps.get(("restic", step))
        if b and r:
            rows.append((step, cpu(b) / max(cpu(r), 0.01), b["wall_s"] / max(r["wall_s"], 0.01),
                         b["max_rss_kib"] / r["max_rss_kib"]))
    if rows:
        print("\n| bulwark / restic | CPU time (user+sys) | wall time | peak RSS |")
        print("|---|---:|---:|---:|")
        for step, c, w, m in rows:
            print(f"| {step} | {c:.2f} | {w:.2f} | {m:.2f} |")
    print()
    for tool in ("bulwark", "restic"):
        s, r = steps.get((tool, "prune")), res["repos"].get(tool, {}).get("before")
        if s and r and r["blobs"]:
            base = steps.get((tool, "forget"))
            extra = ""
            if base:
                extra = (f"; {(s['max_rss_kib'] - base['max_rss_kib']) * 1024 / r['blobs']:,.0f} "
                         f"above the peak RSS of its `forget` (same start-up and key derivation, "
                         f"no index)")
            print(f"- {tool} prune: {s['max_rss_kib'] * 1024 / r['blobs']:,.0f} bytes of peak RSS "
                  f"per blob ({r['blobs']:,} blobs in the index before prune){extra}")
    if "bulwark" in res["prune_output"]:
        print(f"- bulwark prune --json: `{json.dumps(res['prune_output']['bulwark'])}`")
    print(f"\nRaw data: {out}")


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "make":
        dest, files, seed = args[1], 1_000_000, 1
        rest = args[2:]
        while rest:
            opt, val = rest[0], rest[1]
            if opt == "--files":
                files = int(val)
            elif opt == "--seed":
                seed = int(val)
            else:
                sys.exit(f"prune_corpus.py: unknown option {opt}")
            rest = rest[2:]
        make(os.path.abspath(dest), files, seed)
    elif len(args) == 3 and args[0] == "report":
        report(args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
