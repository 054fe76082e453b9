#!/usr/bin/env bash
# How backup cost grows with the number of files: Bulwark and restic on a tree of N small files.
#
#   bench/scale.sh [--files N] [--tools LIST] [--dir DIR] [--bulwark PATH] [--index-blobs M]
#
#   --files N        corpus size (default 10000000)
#   --tools LIST     which tools to run (default bulwark,restic)
#   --dir DIR        write the corpus under DIR instead of a loop file system made for it
#   --bulwark PATH   the Bulwark binary (default target/release/bulwark, built if missing)
#   --index-blobs M  also measure the in-memory index at M simulated blobs (bulwark-repo's
#                    index_memory example; 100000000 takes ~6 GiB of RAM and ~2 minutes)
#
# The corpus (bench/scale_corpus.py: 100 top directories, leaves of 1-200 files, 0-120 bytes of
# text each) goes on an ext4 made with -O inline_data in a sparse file under bench/work/scale, so
# each file lives in its inode and ten million of them take ~5 GB instead of 40 (needs root, for
# the loop mount). It is made once and kept. Each tool then gets a fresh encrypted repository
# under bench/work/scale/repos (on the file system of bench/work): an initial backup, then a
# backup with nothing changed (restic with its parent; Bulwark finds its own). Every command is
# measured as a whole process with /usr/bin/time (wall, user, sys, peak RSS), with the load
# average before it. Report on stdout; each command's output in bench/work/scale/logs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
files=10000000 tools=bulwark,restic dir="" bulwark="" index_blobs=0
while [ $# -gt 0 ]; do
    case $1 in
        --files) files=$2; shift ;;
        --tools) tools=$2; shift ;;
        --dir) dir=$2; shift ;;
        --bulwark) bulwark=$2; shift ;;
        --index-blobs) index_blobs=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "scale.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "== $(date +%H:%M:%S) $*" >&2; }
die() { echo "scale.sh: $*" >&2; exit 1; }
wants() { [[ ",$tools," == *",$1,"* ]]; }
[[ $files =~ ^[0-9]+$ ]] && [ "$files" -ge 1 ] || die "--files wants a number >= 1"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
if wants restic; then command -v restic >/dev/null || die "restic missing (apt-get install restic)"; fi
if wants bulwark; then
    bulwark=${bulwark:-$root/target/release/bulwark}
    if [ ! -x "$bulwark" ]; then
        say "cargo build --release -p bulwark"
        (cd "$root" && cargo build --release -p bulwark >&2) || die "the Bulwark build failed"
    fi
fi

work=$here/work/scale
mkdir -p "$work"
if [ -z "$dir" ]; then
    dir=$work/mnt
    if ! mountpoint -q "$dir"; then
        [ "$(id -u)" = 0 ] || die "the loop file system needs root; or give --dir DIR"
        img=$work/fs-$files.img
        if [ ! -f "$img" ]; then
            # Inodes for every file and directory plus a tenth; 300 bytes a file for inode
            # tables, directories and the odd file too big to be inline.
            say "making an inline_data ext4 for $files files in $img"
            truncate -s $(( files * 300 + (2 << 30) )) "$img"
            mkfs.ext4 -q -F -O inline_data -I 256 -N $(( files + files / 10 + 100000 )) "$img"
        fi
        mkdir -p "$dir"
        mount -o loop,noatime "$img" "$dir"
    fi
fi
corpus=$dir/corpus-$files
say "corpus: $files files in $corpus"
python3 "$here/scale_corpus.py" make "$corpus" --files "$files"
say "warming the page cache (and the dentry cache)"
find "$corpus/tree" -printf '' 

logs=$work/logs repos=$work/repos
rm -rf "$logs" "$repos"
mkdir -p "$logs" "$repos"
export BULWARK_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export RESTIC_CACHE_DIR=$work/restic-cache
rm -rf "$RESTIC_CACHE_DIR"
results=$work/results.tsv
printf 'tool\tstep\twall_s\tuser_s\tsys_s\trss_kib\tload\n' > "$results"

measure() { # tool step command...
    local tool=$1 step=$2; shift 2
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    say "$tool $step"
    /usr/bin/time -o "$logs/$tool-$step.time" -f '%e\t%U\t%S\t%M' "$@" > "$logs/$tool-$step.out" 2> "$logs/$tool-$step.err" \
        || die "$tool $step failed: see $logs/$tool-$step.err"
    printf '%s\t%s\t%s\t%s\n' "$tool" "$step" "$(tail -1 "$logs/$tool-$step.time")" "$load" >> "$results"
}

for tool in ${tools//,/ }; do
    sync; sleep 5
    case $tool in
        bulwark)
            "$bulwark" init -r "$repos/bulwark" > /dev/null
            measure bulwark initial "$bulwark" backup -r "$repos/bulwark" "$corpus/tree"
            measure bulwark no-change "$bulwark" backup -r "$repos/bulwark" "$corpus/tree" ;;
        restic)
            restic init -r "$repos/restic" > /dev/null
            measure restic initial restic backup -r "$repos/restic" "$corpus/tree"
            measure restic no-change restic backup -r "$repos/restic" "$corpus/tree" ;;
        *) die "unknown tool $tool" ;;
    esac
    du -sk "$repos/$tool" | cut -f1 > "$logs/$tool-repo.kib"
done

index=""
if [ "$index_blobs" -gt 0 ]; then
    say "index_memory example at $index_blobs blobs"
    index=$(cd "$root" && cargo run --quiet --release -p bulwark-repo --example index_memory -- "$index_blobs")
fi

python3 - "$results" "$logs" "$files" "$index" <<'EOF'
import csv, sys
results, logs, files, index = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = list(csv.DictReader(open(results), delimiter="\t"))
by = {(r["tool"], r["step"]): r for r in rows}
tools = sorted({r["tool"] for r in rows}, key=lambda t: (t != "bulwark", t))
print(f"# Scale: {files:,} small files\n")
print("| step | " + " | ".join(f"{t} s (files/s) | {t} user+sys s | {t} peak RSS MiB" for t in tools) +
      (" | bulwark/restic time | bulwark/restic RSS |" if {"bulwark", "restic"} <= set(tools) else " |"))
print("|---" * (1 + 3 * len(tools) + (2 if {"bulwark", "restic"} <= set(tools) else 0)) + "|")
for step in ["initial", "no-change"]:
    cells = []
    for t in tools:
        r = by.get((t, step))
        if not r:
            cells += ["-", "-", "-"]
            continue
        wall = float(r["wall_s"])
        cells += [f"{wall:.1f} ({files / wall:,.0f})", f"{float(r['user_s']) + float(r['sys_s']):.1f}",
                  f"{int(r['rss_kib']) / 1024:.0f}"]
    if {"bulwark", "restic"} <= set(tools) and (("bulwark", step) in by and ("restic", step) in by):
        b, rr = by[("bulwark", step)], by[("restic", step)]
        cells += [f"{float(b['wall_s']) / float(rr['wall_s']):.2f}x", f"{int(b['rss_kib']) / int(rr['rss_kib']):.2f}x"]
    print(f"| {step} | " + " | ".join(cells) + " |")
print()
for t in tools:
    try:
        kib = int(open(f"{logs}/{t}-repo.kib").read())
        print(f"- {t} repository: {kib / 1024:,.0f} MiB")
    except OSError:
        pass
print("- load average before each step: " + ", ".join(f"{r['tool']} {r['step']} {r['load']}" for r in rows))
if index:
    print(f"- in-memory index (bulwark-repo example index_memory): {index.strip()}")
EOF
