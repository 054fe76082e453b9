#!/usr/bin/env bash
# Generate the three benchmark corpora (nothing is downloaded):
#   files/    (a) real files copied from this machine       full ~1 GiB,  quick ~200 MiB
#   pgdump/   (b) PostgreSQL dumps day1.sql and day2.sql     full ~320 MB, quick ~50 MB
#   random/   (c) one file of /dev/urandom bytes, big.bin    full 1 GiB,   quick 200 MiB
#
#   make_corpora.sh [--quick] [--force] [DIR]
#
# DIR defaults to bench/work/corpus-full or bench/work/corpus-quick. A corpus that is already
# there (its .done stamp matches the parameters) is kept, so repeated runs measure the same bytes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=full force=0 dir=
while [ $# -gt 0 ]; do
    case $1 in
        --quick) mode=quick ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) dir=$1 ;;
    esac
    shift
done
dir=${dir:-$here/work/corpus-$mode}
mkdir -p "$dir"

if [ $mode = quick ]; then
    files_bytes=$((200 << 20)) pg_scale=32 random_mib=200
else
    files_bytes=$((1 << 30)) pg_scale=200 random_mib=1024
fi

# Runs step NAME if its stamp is missing or records other parameters.
step() {
    local name=$1 params=$2; shift 2
    local stamp="$dir/.$name.done"
    if [ $force = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$params" ]; then
        echo "corpus $name: up to date ($params)"
        return
    fi
    rm -f "$stamp"
    "$@"
    echo "$params" >"$stamp"
}

make_files() { python3 "$here/corpus_files.py" "$dir/files" "$files_bytes"; }
make_pg() {
    rm -rf "$dir/pgdump" && mkdir -p "$dir/pgdump"
    bash "$here/make_pgdump.sh" "$dir/pgdump" "$pg_scale"
}
make_random() {
    rm -rf "$dir/random" && mkdir -p "$dir/random"
    head -c "$((random_mib << 20))" /dev/urandom >"$dir/random/big.bin"
    ls -l "$dir/random/big.bin"
}

step files "bytes=$files_bytes" make_files
step pgdump "scale=$pg_scale hot-ranges" make_pg
step random "mib=$random_mib" make_random
du -sh "$dir"/files "$dir"/pgdump "$dir"/random
