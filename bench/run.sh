#!/usr/bin/env bash
# Benchmark Bulwark against restic, borg and rustic on the same data, in one run.
#
#   bench/run.sh [--quick] [--runs N] [--tools bulwark,restic,borg,rustic] [--no-install] [--keep]
#
#   --quick       ~200 MiB of files, ~50 MB dumps, 200 MiB random file (default: ~1 GiB, ~320 MB, 1 GiB)
#   --runs N      runs per tool and scenario, medians reported (default 3)
#   --tools LIST  which tools to run (default all four)
#   --no-install  do not apt-get / cargo install missing tools; leave missing ones out
#   --keep        keep the last run's repositories under bench/work/<mode>/repos
#   --no-build    use the existing target/release/bulwark as it is (its build time and hash are recorded)
#   --s3          also back up (a) to an S3 server on loopback (s3s-fs, installed with
#                 `cargo install s3s-fs@0.14.1 --features binary` if missing) and restore from it
#   --restore-dir DIR  restore into DIR (say a journaled ext4 or XFS made for the purpose) instead of
#                 bench/work/<mode>/restore
#
# Installs what is missing (restic, borgbackup and time from Debian; rustic with
# `cargo install rustic-rs --locked`, which compiles for 10+ minutes), builds Bulwark in release
# mode, generates the corpora once (bench/make_corpora.sh, cached in bench/work/corpus-<mode>),
# then runs bench/runner.py. Output: a Markdown report on stdout, raw data in
# bench/work/results.json (a copy per mode in bench/work/<mode>/results.json).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=full runs=3 tools=bulwark,restic,borg,rustic install=1 build=1 keep=() restore_dir=() s3=0
while [ $# -gt 0 ]; do
    case $1 in
        --quick) mode=quick ;;
        --runs) runs=$2; shift ;;
        --runs=*) runs=${1#*=} ;;
        --tools) tools=$2; shift ;;
        --tools=*) tools=${1#*=} ;;
        --no-install) install=0 ;;
        --keep) keep=(--keep) ;;
        --no-build) build=0 ;;
        --restore-dir) restore_dir=(--restore-dir "$2"); shift ;;
        --s3) s3=1 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "== $*" >&2; }
wants() { [[ ",$tools," == *",$1,"* ]]; }

# ---- tools
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if [ $install = 1 ]; then
    missing=()
    [ -x /usr/bin/time ] || missing+=(time)
    wants restic && ! command -v restic >/dev/null && missing+=(restic)
    wants borg && ! command -v borg >/dev/null && missing+=(borgbackup)
    command -v pg_config >/dev/null || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt-get install ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
    if wants rustic && ! command -v rustic >/dev/null; then
        say "cargo install rustic-rs --locked (compiles for a long while)"
        cargo install rustic-rs --locked >&2
    fi
fi
s3_args=()
if [ $s3 = 1 ]; then
    if ! command -v s3s-fs >/dev/null && [ $install = 1 ]; then
        say "cargo install s3s-fs@0.14.1 --features binary --locked"
        cargo install s3s-fs@0.14.1 --features binary --locked >&2
    fi
    command -v s3s-fs >/dev/null || { echo "run.sh: --s3 needs s3s-fs (cargo install s3s-fs@0.14.1 --features binary)" >&2; exit 1; }
    s3_args=(--s3 "$(command -v s3s-fs)")
fi
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

# ---- Bulwark
if wants bulwark && [ $build = 1 ]; then
    say "cargo build --release -p bulwark"
    if ! (cd "$root" && cargo build --release -p bulwark >&2); then
        echo "run.sh: the Bulwark build failed; fix it, or pass --no-build to measure the existing" \
             "target/release/bulwark" >&2
        exit 1
    fi
fi

# ---- corpora
say "corpora ($mode)"
quick=()
[ $mode = quick ] && quick=(--quick)
bash "$here/make_corpora.sh" "${quick[@]}" >&2

# ---- measure
work=$here/work/$mode
mkdir -p "$work"
say "runner: $runs run(s) of $tools"
rc=0
python3 "$here/runner.py" --corpus "$here/work/corpus-$mode" --work "$work" --runs "$runs" \
    --tools "$tools" --bulwark "$root/target/release/bulwark" --mode "$mode" "${keep[@]}" "${restore_dir[@]}" "${s3_args[@]}" || rc=$?
[ -f "$work/results.json" ] && cp "$work/results.json" "$here/work/results.json"
exit $rc
