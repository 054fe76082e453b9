#!/usr/bin/env bash
# Logical PostgreSQL backups and restore tests against the floor of the bare tools.
#
#   bench/pg_floor.sh [--scale N] [--runs N] [--bulwark PATH]
#
#   --scale N     pgbench scale of the database (default 30: about 450 MB, 3 M rows)
#   --runs N      rounds (default 2)
#   --bulwark P   the Bulwark binary (default target/release/bulwark, built if missing)
#
# A throwaway cluster on a private socket holds a database made by `pgbench -i -s N`. Each round:
#   1. backup: a bare `pg_dump -Fp` to /dev/null, then `bulwark backup --postgres` of the same
#      database into a fresh encrypted repository (which also takes the globals, orders the rows of
#      keyed tables by key and fingerprints every table);
#   2. restore test, by hand: `pg_dump` to a file, `initdb --data-checksums`, a server started
#      with fsync off, `createdb`, `psql` loading the dump, a count of the largest table and
#      `pg_amcheck --heapallindexed`; then `bulwark restore-test latest`, which does the same from
#      the repository and checks every table's count and checksum against the backup's.
# Every step runs as the `postgres` account and is timed whole. Output: a Markdown table on
# stdout (medians, and Bulwark's ratio to the floor); each command's output in
# bench/work/pg_floor/logs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
scale=30 runs=2 bulwark=""
while [ $# -gt 0 ]; do
    case $1 in
        --scale) scale=$2; shift ;;
        --runs) runs=$2; shift ;;
        --bulwark) bulwark=$2; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "pg_floor.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "== $(date +%H:%M:%S) $*" >&2; }
die() { echo "pg_floor.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run it as root (the servers run as the postgres account)"
bindir=$(pg_config --bindir)
[ -x "$bindir/initdb" ] || die "no initdb in $bindir"
bulwark=${bulwark:-$root/target/release/bulwark}
if [ ! -x "$bulwark" ]; then
    say "cargo build --release -p bulwark"
    (cd "$root" && cargo build --release -p bulwark >&2) || die "the Bulwark build failed"
fi
bulwark=$(cd "$(dirname "$bulwark")" && pwd)/$(basename "$bulwark")

work=$here/work/pg_floor
su postgres -s /bin/sh -c "$bindir/pg_ctl -D $work/src -m immediate stop" >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work/sock" "$work/logs"
chown -R postgres: "$work"
as_pg() { su postgres -s /bin/bash -c "$*"; }
port=55470
trap 'as_pg "$bindir/pg_ctl -D $work/src -m immediate stop" >/dev/null 2>&1 || true; as_pg "$bindir/pg_ctl -D $work/floor/pg -m immediate stop" >/dev/null 2>&1 || true' EXIT
say "source cluster, pgbench -i -s $scale"
as_pg "$bindir/initdb -D $work/src -U postgres" > "$work/logs/initdb.log"
as_pg "$bindir/pg_ctl -D $work/src -o '-c listen_addresses= -c unix_socket_directories=$work/sock -c port=$port' -l $work/logs/src.log -w start" >/dev/null
as_pg "$bindir/createdb -h $work/sock -p $port bench"
as_pg "$bindir/pgbench -q -i -s $scale -h $work/sock -p $port bench" > "$work/logs/pgbench.log" 2>&1
dsn="host=$work/sock port=$port user=postgres dbname=bench"
export BULWARK_PASSWORD=bench-password

results=$work/results.tsv
: > "$results"
timed() { # name command...
    local name=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$work/logs/$name.out" 2> "$work/logs/$name.err" || die "$name failed: see $work/logs/$name.err"
    t1=$(date +%s.%N)
    printf '%s\t%s\n' "$name" "$(echo "$t1 - $t0" | bc)" >> "$results"
}
floor_restore() {
    local f=$work/floor
    rm -rf "$f"; mkdir -p "$f/sock"; chown -R postgres: "$f"
    as_pg "$bindir/pg_dump -Fp -h $work/sock -p $port bench > $f/dump.sql &&
        $bindir/initdb -D $f/pg --data-checksums -U postgres >/dev/null &&
        $bindir/pg_ctl -D $f/pg -o '-c listen_addresses= -c unix_socket_directories=$f/sock -c port=$((port + 1)) -c fsync=off' -l $f/log -w start >/dev/null &&
        $bindir/createdb -h $f/sock -p $((port + 1)) bench &&
        $bindir/psql -X -q -v ON_ERROR_STOP=1 -h $f/sock -p $((port + 1)) -f $f/dump.sql bench >/dev/null &&
        $bindir/psql -X -q -h $f/sock -p $((port + 1)) -c 'SELECT count(*) FROM pgbench_accounts' bench >/dev/null &&
        $bindir/pg_amcheck --install-missing --heapallindexed -h $f/sock -p $((port + 1)) bench &&
        $bindir/pg_ctl -D $f/pg -m immediate stop >/dev/null"
}
for run in $(seq "$runs"); do
    say "round $run: backups"
    timed "pg_dump" as_pg "$bindir/pg_dump -Fp -h $work/sock -p $port bench > /dev/null"
    rm -rf "$work/repo"
    as_pg "BULWARK_PASSWORD=$BULWARK_PASSWORD $bulwark init -r $work/repo" > /dev/null
    timed "bulwark-backup" as_pg "BULWARK_PASSWORD=$BULWARK_PASSWORD $bulwark backup -r $work/repo --postgres '$dsn'"
    say "round $run: restore tests"
    timed "floor-restore" floor_restore
    timed "bulwark-restore-test" as_pg "BULWARK_PASSWORD=$BULWARK_PASSWORD $bulwark restore-test -r $work/repo latest --json"
    python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["passed"] else 1)' \
        "$work/logs/bulwark-restore-test.out" || die "the restore test did not pass: see $work/logs/bulwark-restore-test.out"
done

python3 - "$results" "$scale" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for name, secs in rows:
    by.setdefault(name, []).append(float(secs))
med = {k: statistics.median(v) for k, v in by.items()}
print(f"# Logical PostgreSQL, pgbench scale {sys.argv[2]}: Bulwark against the bare tools\n")
print("| step | floor s | bulwark s | bulwark / floor | every run (floor; bulwark) |")
print("|---|---|---|---|---|")
for label, floor, ours in [("backup (bare pg_dump to /dev/null)", "pg_dump", "bulwark-backup"),
                           ("restore test (dump, initdb, load, count, pg_amcheck)", "floor-restore", "bulwark-restore-test")]:
    runs = ", ".join(f"{a:.2f}" for a in by[floor]) + "; " + ", ".join(f"{b:.2f}" for b in by[ours])
    print(f"| {label} | {med[floor]:.2f} | {med[ours]:.2f} | {med[ours] / med[floor]:.2f}x | {runs} |")
EOF
