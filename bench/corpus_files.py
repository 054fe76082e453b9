#!/usr/bin/env python3
"""Build corpus (a): a deterministic selection of real files copied from this machine.

Files come from a fixed list of system trees (docs, headers, the Python standard library,
/usr/share, /usr/lib). Inside each tree the regular files are ordered by a hash of their
relative path, which spreads the pick over the whole tree instead of its alphabetical start,
and taken while the tree's share of the byte budget allows. A tree that is missing or smaller
than its share passes the rest on to the next one. Symlinks, special files, unreadable files
and files over 64 MiB are skipped (corpus (c) covers one huge file).

Usage: corpus_files.py DEST TARGET_BYTES
Writes DEST/<tree-tag>/<relative path> (modes and mtimes kept) and DEST.manifest.json.
"""

import hashlib
import json
import os
import shutil
import sys
import sysconfig

MAX_FILE = 64 << 20

# (tag, root, share of the whole budget); the last tree takes whatever is left.
TREES = [
    ("doc", "/usr/share/doc", 0.10),
    ("include", "/usr/include", 0.10),
    ("python", sysconfig.get_paths()["stdlib"], 0.25),
    ("share", "/usr/share", 0.15),
    ("lib", "/usr/lib", 1.00),
]


def candidates(root, skip):
    """Regular files below root as (relative path, size), ordered by the hash of the path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in skip)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not os.path.isfile(path) or os.path.islink(path) or st.st_size > MAX_FILE:
                continue
            if not os.access(path, os.R_OK):
                continue
            found.append((os.path.relpath(path, root), st.st_size))
    found.sort(key=lambda item: hashlib.sha256(item[0].encode("utf-8", "surrogateescape")).digest())
    return found


def main():
    dest, target = sys.argv[1], int(sys.argv[2])
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    total, count, per_tree = 0, 0, {}
    skip = {"/usr/share/doc"}  # already its own tree; keep /usr/share from taking it twice
    for tag, root, share in TREES:
        if not os.path.isdir(root):
            continue
        budget = min(target - total, int(target * share)) if share < 1 else target - total
        taken = 0
        for rel, size in candidates(root, skip if tag == "share" else set()):
            if taken + size > budget:
                continue  # a smaller file further on may still fit
            src, dst = os.path.join(root, rel), os.path.join(dest, tag, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                shutil.copy2(src, dst)
            except OSError:
                continue
            taken += size
            count += 1
            if budget - taken < 4096:
                break
        per_tree[tag] = {"root": root, "bytes": taken}
        total += taken
        if target - total < 4096:
            break
    manifest = {"files": count, "bytes": total, "target_bytes": target, "trees": per_tree}
    with open(dest.rstrip("/") + ".manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"corpus files: {count} files, {total / 2**20:.1f} MiB in {dest}")


if __name__ == "__main__":
    main()
