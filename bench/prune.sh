#!/usr/bin/env bash
# Benchmark `bulwark prune` against `restic prune` on a repository of ~1 million small blobs.
#
#   bench/prune.sh [--files N] [--max-unused P] [--bulwark PATH] [--tools LIST] [--perf] [--keep]
#
#   --files N       corpus size: N files of 64-512 random bytes, one blob each (default 1000000)
#   --max-unused P  pass --max-unused P (e.g. 0%) to both prunes; default: each tool's own (5% in
#                   both, but Bulwark allows 5% of the size before prune, restic 5% of after)
#   --bulwark PATH  the Bulwark binary (default target/release/bulwark, built if missing)
#   --tools LIST    which tools to run (default bulwark,restic)
#   --perf          after the measured prune, profile Bulwark's prune on a copy of the repository
#                   (perf record --call-graph dwarf); report in bench/work/prune/perf-report.txt
#   --keep          keep the repositories under bench/work/prune/repos (removed otherwise)
#
# Scenario, the same for each tool in a fresh encrypted repository: backup #1 of the corpus
# (bench/work/prune/corpus/N/full), backup #2 of a tree that hard-links every second file of it
# (.../half), `forget --keep-last 1 --group-by host` (the two snapshots have different paths),
# then `prune --dry-run`, `prune`, `check` and `check --read-data`; a failed check, or a kept
# snapshot that no longer lists every file, stops the script. Half the blobs of nearly every pack
# are unused after the forget, so both tools repack most packs. Every step is measured as a whole
# process with /usr/bin/time (wall, user, sys, peak RSS), with the load average before it. The
# corpus is made once by bench/prune_corpus.py (~1 min for 1M files, ~4.5 GB of disk in 4 KiB
# blocks) and cached. Output: a Markdown report on stdout, raw data in
# bench/work/prune/results.json (a copy in results-N[-maxunused-P].json), each command's output
# in bench/work/prune/logs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
files=1000000 bulwark="" tools=bulwark,restic perf=0 keep=0 max_unused=()
while [ $# -gt 0 ]; do
    case $1 in
        --files) files=$2; shift ;;
        --files=*) files=${1#*=} ;;
        --max-unused) max_unused=(--max-unused "$2"); shift ;;
        --max-unused=*) max_unused=(--max-unused "${1#*=}") ;;
        --bulwark) bulwark=$2; shift ;;
        --bulwark=*) bulwark=${1#*=} ;;
        --tools) tools=$2; shift ;;
        --tools=*) tools=${1#*=} ;;
        --perf) perf=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "prune.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "== $(date +%H:%M:%S) $*" >&2; }
die() { echo "prune.sh: $*" >&2; exit 1; }
wants() { [[ ",$tools," == *",$1,"* ]]; }
[[ $files =~ ^[0-9]+$ ]] && [ "$files" -ge 2 ] || die "--files wants a number >= 2"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
if [ $perf = 1 ]; then command -v perf >/dev/null || die "--perf needs perf (apt-get install linux-perf)"; fi

# ---- tools
if wants bulwark; then
    if [ -z "$bulwark" ]; then
        bulwark=$root/target/release/bulwark
        if [ ! -x "$bulwark" ]; then
            say "cargo build --release -p bulwark"
            (cd "$root" && cargo build --release -p bulwark >&2) || die "the Bulwark build failed"
        fi
    fi
    [ -x "$bulwark" ] || die "no Bulwark binary at $bulwark"
    bulwark=$(cd "$(dirname "$bulwark")" && pwd)/$(basename "$bulwark")
fi
if wants restic; then command -v restic >/dev/null || die "restic missing (apt-get install restic)"; fi

# ---- corpus
work=$here/work/prune
corpus=$work/corpus/$files
say "corpus: $files files in $corpus"
python3 "$here/prune_corpus.py" make "$corpus" --files "$files"
half=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["half_files"])' "$corpus/complete")
# Read the corpus once so that whichever tool goes first does not pay for a cold page cache.
say "warming the page cache"
tar -cf - -C "$corpus" full | cat > /dev/null

# ---- run state: fresh repositories, homes (restic's cache) and logs
run=$work/run
rm -rf "$work/repos" "$work/home" "$run" "$work/logs" "$work/perf.data" "$work/perf-report.txt"
mkdir -p "$work/repos" "$work/home" "$run" "$work/logs"
password=bench-passphrase-not-secret
{
    echo "files=$files"
    echo "max_unused=${max_unused[1]:-}"
    echo "corpus=$corpus"
    echo "bulwark=${bulwark:-}"
    echo "bulwark_version=$( [ -n "$bulwark" ] && "$bulwark" --version 2>&1 | head -n1 || true)"
    echo "restic_version=$(wants restic && restic version 2>&1 | head -n1 || true)"
    echo "host=$(uname -srm)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "cpus=$(nproc)"
    echo "mem_total_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
    echo "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$run/meta.env"

# tool_env TOOL: the environment one tool's commands run in (own HOME and cache, its password).
tool_env() {
    local h=$work/home/$1
    mkdir -p "$h"
    local e=(env -u RESTIC_REPOSITORY -u RESTIC_PASSWORD_FILE -u RESTIC_PASSWORD_COMMAND -u RESTIC_CACHE_DIR
             -u BULWARK_REPO -u BULWARK_PASSWORD_FILE -u BULWARK_KEY_FILE
             HOME="$h" XDG_CACHE_HOME="$h/.cache" XDG_CONFIG_HOME="$h/.config")
    case $1 in
        bulwark) e+=(BULWARK_PASSWORD=$password) ;;
        restic) e+=(RESTIC_PASSWORD=$password) ;;
    esac
    printf '%s\0' "${e[@]}"
}

# measure TOOL STEP CMD...: run CMD under /usr/bin/time, stdout to logs/TOOL-STEP.out, stderr
# to .err, and append wall/user/sys/RSS and the load before it to run/steps.tsv.
measure() {
    local tool=$1 step=$2; shift 2
    local slug=${step//[^A-Za-z0-9-]/_} envv=()
    slug=$(echo "$slug" | tr -s _ | sed 's/_$//')
    local out=$work/logs/$tool-$slug.out err=$work/logs/$tool-$slug.err tf=$run/time.tmp
    mapfile -d '' envv < <(tool_env "$tool")
    local load1 rc=0
    load1=$(cut -d' ' -f1 /proc/loadavg)
    say "$tool: $step"
    echo "\$ $*" > "$err"
    "${envv[@]}" /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" > "$out" 2>> "$err" < /dev/null || rc=$?
    local wall user sys rss
    read -r wall user sys rss < <(tail -n1 "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "$user" "$sys" "$rss" \
        "$load1" "$rc" >> "$run/steps.tsv"
    echo "   wall ${wall}s, user ${user}s, sys ${sys}s, peak RSS $((rss / 1024)) MiB (load before $load1)" >&2
    if [ $rc != 0 ]; then
        echo "prune.sh: $tool $step failed (exit $rc); the end of $err:" >&2
        tail -n 20 "$err" >&2
        exit 1
    fi
}

# quietly TOOL CMD...: run an unmeasured command in the tool's environment, stdout to stdout.
quietly() {
    local tool=$1; shift
    local envv=()
    mapfile -d '' envv < <(tool_env "$tool")
    "${envv[@]}" "$@" < /dev/null
}

packs_in() { find "$1/data" -type f | wc -l; }
bytes_in() { du -sb "$1" | cut -f1; }

# blobs TOOL REPO: how many blobs the repository's index lists.
blobs() {
    case $1 in
        bulwark) quietly bulwark "$bulwark" --json check -r "$2" 2> /dev/null \
                     | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"])' ;;
        restic) quietly restic restic -r "$2" --no-lock list blobs 2> /dev/null | wc -l ;;
    esac
}

# record TOOL PHASE REPO: size, packs and blobs of the repository at this point.
record() {
    local b p n
    b=$(bytes_in "$3") p=$(packs_in "$3") n=$(blobs "$1" "$3")
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$b" "$n" "$p" >> "$run/repos.tsv"
    say "$1 repository $2: $b bytes, $n blobs, $p packs"
}

# ---- Bulwark
if wants bulwark; then
    R=$work/repos/bulwark
    measure bulwark init "$bulwark" init -r "$R"
    measure bulwark "backup #1 (all files)" "$bulwark" backup -r "$R" "$corpus/full"
    measure bulwark "backup #2 (half)" "$bulwark" backup -r "$R" "$corpus/half"
    measure bulwark forget "$bulwark" forget -r "$R" --keep-last 1 --group-by host
    [ "$(quietly bulwark "$bulwark" --json snapshots -r "$R" \
         | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] \
        || die "bulwark: forget left other than one snapshot"
    record bulwark before "$R"
    if [ $perf = 1 ]; then cp -a "$R" "$work/repos/bulwark-perf" && sync; fi
    measure bulwark "prune --dry-run" "$bulwark" --json prune -r "$R" "${max_unused[@]}" --dry-run
    measure bulwark prune "$bulwark" --json prune -r "$R" "${max_unused[@]}"
    cp "$work/logs/bulwark-prune.out" "$run/bulwark-prune.json"
    measure bulwark check "$bulwark" --json check -r "$R"
    measure bulwark "check --read-data" "$bulwark" --json check -r "$R" --read-data
    for c in check check_--read-data; do
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["ok"] and not d["errors"] else 1)' \
            "$work/logs/bulwark-$c.out" || die "bulwark ${c/_/ } after prune is not clean: $(cat "$work/logs/bulwark-$c.out")"
    done
    record bulwark after "$R"
    listed=$(quietly bulwark "$bulwark" ls -r "$R" latest 2> /dev/null | grep -c '/f[0-9]*$' || true)
    [ "$listed" = "$half" ] || die "bulwark: the kept snapshot lists $listed files, want $half"
    if [ $perf = 1 ]; then
        say "bulwark: perf record --call-graph dwarf of prune on a copy"
        quietly bulwark perf record -F 499 --call-graph dwarf -o "$work/perf.data" -- \
            "$bulwark" -q prune -r "$work/repos/bulwark-perf" "${max_unused[@]}" 2> "$work/logs/bulwark-perf.err" \
            || die "perf record failed; see $work/logs/bulwark-perf.err"
        {
            echo "# Self time, with the callers of each hot symbol (inlined frames folded in)"
            perf report -i "$work/perf.data" --no-children --no-inline --stdio -g graph,2,callee \
                --max-stack 8 --percent-limit 1 2> /dev/null | grep -v '^ *|* *$' || true
            echo; echo "# Inclusive time (children) per function"
            perf report -i "$work/perf.data" --children --no-inline --stdio -g none \
                --percent-limit 2 2> /dev/null | grep -E '^ +[0-9]' || true
        } > "$work/perf-report.txt"
        rm -rf "$work/repos/bulwark-perf"
    fi
fi

# ---- restic
if wants restic; then
    R=$work/repos/restic
    measure restic init restic -r "$R" init
    measure restic "backup #1 (all files)" restic -r "$R" backup "$corpus/full"
    measure restic "backup #2 (half)" restic -r "$R" backup "$corpus/half"
    measure restic forget restic -r "$R" forget --keep-last 1 --group-by host
    [ "$(quietly restic restic -r "$R" --no-lock list snapshots 2> /dev/null | wc -l)" = 1 ] \
        || die "restic: forget left other than one snapshot"
    record restic before "$R"
    measure restic "prune --dry-run" restic -r "$R" prune "${max_unused[@]}" --dry-run
    measure restic prune restic -r "$R" prune "${max_unused[@]}"
    cp "$work/logs/restic-prune.out" "$run/restic-prune.txt"
    measure restic check restic -r "$R" check
    measure restic "check --read-data" restic -r "$R" check --read-data
    record restic after "$R"
    listed=$(quietly restic restic -r "$R" --no-lock ls latest 2> /dev/null | grep -c '/f[0-9]*$' || true)
    [ "$listed" = "$half" ] || die "restic: the kept snapshot lists $listed files, want $half"
fi

echo "finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$run/meta.env"
[ $keep = 1 ] || rm -rf "$work/repos"
python3 "$here/prune_corpus.py" report "$run" "$work/results.json"
cp "$work/results.json" "$work/results-$files${max_unused[1]:+-maxunused-${max_unused[1]%\%}}.json"
