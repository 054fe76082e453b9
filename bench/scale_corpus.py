#!/usr/bin/env python3
"""Helper for bench/scale.sh: write a tree of many small files, the same on every machine.

    scale_corpus.py make DEST --files N [--seed S]

The shape of a large source or configuration tree: DEST/tree/pNNN/mNNN/dN/, 100 top directories,
modules of 10 leaf directories, leaves of 1-200 files (100 on average) named like source files.
Contents are 0-120 bytes of text (so that an ext4 made with `-O inline_data` keeps each in its
inode and ten million files fit in a few GB): 3% empty, 10% one of 50 boilerplate texts (a
licence header, an `__init__.py`), the rest distinct. Everything comes from PRNGs seeded per top
directory, so two processes write it at once. DEST/complete marks a finished corpus (it holds N
and the seed); a DEST without it, or made with other parameters, is removed and made again.
"""

import json
import multiprocessing
import os
import random
import shutil
import sys

TOPS = 100
MAX_BYTES = 120
EXTS = [".py", ".rs", ".go", ".c", ".h", ".json", ".yaml", ".md", ".txt", ".toml"]
WORDS = ("fn let use impl struct enum match return self mod pub const static async await "
         "import from def class if else for while try except with yield lambda none true false "
         "config value name path size count index error result option vec map set key").split()


def boilerplate(seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 18)))[:MAX_BYTES].encode()
            for _ in range(50)]


def leaf_sizes(files, seed):
    """Files per leaf directory, for each top directory: N in all, 1-200 a leaf."""
    rng = random.Random(seed)
    per_top = [files // TOPS + (1 if t < files % TOPS else 0) for t in range(TOPS)]
    out = []
    for n in per_top:
        sizes = []
        while n > 0:
            k = min(n, rng.randint(1, 200))
            sizes.append(k)
            n -= k
        out.append(sizes)
    return out


def write_top(args):
    dest, t, sizes, seed = args
    rng = random.Random(seed * 1_000_003 + t)
    common = boilerplate(seed)
    for leaf, count in enumerate(sizes):
        d = os.path.join(dest, f"p{t:03d}", f"m{leaf // 10:03d}", f"d{leaf % 10}")
        os.makedirs(d, exist_ok=True)
        for f in range(count):
            r = rng.random()
            if r < 0.03:
                data = b""
            elif r < 0.13:
                data = rng.choice(common)
            else:
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20)))
                data = f"{t}/{leaf}/{f} {words}".encode()[:MAX_BYTES]
            name = os.path.join(d, f"{rng.choice(WORDS)}_{f}{rng.choice(EXTS)}")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            if data:
                os.write(fd, data)
            os.close(fd)


def make(dest, files, seed):
    marker = os.path.join(dest, "complete")
    want = {"files": files, "seed": seed}
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == want:
                return
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(os.path.join(dest, "tree"))
    jobs = [(os.path.join(dest, "tree"), t, s, seed) for t, s in enumerate(leaf_sizes(files, seed))]
    with multiprocessing.Pool(max(2, os.cpu_count() or 2)) as pool:
        for _ in pool.imap_unordered(write_top, jobs):
            pass
    with open(marker, "w") as f:
        json.dump(want, f)


def main(argv):
    if len(argv) < 2 or argv[0] != "make":
        print(__doc__, file=sys.stderr)
        return 2
    dest, files, seed = argv[1], None, 1
    rest = argv[2:]
    while rest:
        if rest[0] == "--files":
            files = int(rest[1])
        elif rest[0] == "--seed":
            seed = int(rest[1])
        else:
            print(f"scale_corpus.py: unknown option {rest[0]}", file=sys.stderr)
            return 2
        rest = rest[2:]
    if not files or files < 1:
        print("scale_corpus.py: --files N is required", file=sys.stderr)
        return 2
    make(dest, files, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
