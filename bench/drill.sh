#!/usr/bin/env bash
# A disaster-recovery drill at a size that says something: a PostgreSQL database made by
# `pgbench -i` and a tree of real files, backed up by `bulwark run` into a local primary and
# copied to a local "off-site" replica, then brought back by `bulwark drill` from the replica
# alone. Prints the time of every phase, the RTO and RPO achieved, and the projection of the
# measured throughput to a 1 TB platform.
#
#   bench/drill.sh [--scale N] [--files-mib N] [--bulwark PATH] [--keep]
#
#   --scale N       pgbench scale (default 70: about 1.05 GB of tables and indexes)
#   --files-mib N   MiB of real files copied from /usr (default 1024)
#   --bulwark P     the Bulwark binary (default target/release/bulwark, built if missing)
#   --keep          keep bench/work/drill afterwards
#
# Runs as root (the cluster runs as `postgres`). Output: a Markdown table on stdout; the run's
# and the drill's JSON reports in bench/work/drill.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
scale=70 files_mib=1024 bulwark="" keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --scale) scale=$2; shift ;;
        --files-mib) files_mib=$2; shift ;;
        --bulwark) bulwark=$2; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "drill.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "== $(date +%H:%M:%S) $*" >&2; }
die() { echo "drill.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the cluster runs as postgres)"
bindir=$(pg_config --bindir)
if [ -z "$bulwark" ]; then
    bulwark=$root/target/release/bulwark
    [ -x "$bulwark" ] || (cd "$root" && cargo build --release -p bulwark)
fi

work=$root/bench/work/drill
pgdata=$work/pg
stop_pg() { runuser -u postgres -- "$bindir/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true; }
cleanup() { stop_pg; [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
stop_pg
rm -rf "$work"
mkdir -p "$work"
chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

say "initdb and pgbench -i -s $scale"
runuser -u postgres -- "$bindir/initdb" -D "$pgdata" -A trust -U postgres >/dev/null
runuser -u postgres -- "$bindir/pg_ctl" -D "$pgdata" -l "$work/pg.log" \
    -o "-p $port -k $work -c listen_addresses=''" -w start >/dev/null
runuser -u postgres -- "$bindir/createdb" -h "$work" -p "$port" bench
runuser -u postgres -- "$bindir/pgbench" -q -i -s "$scale" -h "$work" -p "$port" bench >/dev/null 2>&1
db_bytes=$(runuser -u postgres -- "$bindir/psql" -Atq -h "$work" -p "$port" -d bench \
    -c "SELECT pg_database_size('bench')")

say "copying ${files_mib} MiB of real files from /usr"
python3 - "$work/files" "$files_mib" <<'EOF'
import os, shutil, sys
dst, budget = sys.argv[1], int(sys.argv[2]) << 20
done = 0
for top in ["/usr/lib", "/usr/share", "/usr/bin", "/usr/libexec", "/usr/include"]:
    for d, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            src = os.path.join(d, f)
            if not os.path.isfile(src) or os.path.islink(src):
                continue
            out = os.path.join(dst, os.path.relpath(src, "/usr"))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            try:
                shutil.copy2(src, out)
            except OSError:
                continue
            done += os.path.getsize(out)
            if done >= budget:
                sys.exit(0)
EOF
files_bytes=$(du -sb "$work/files" | cut -f1)

echo "drill passphrase" > "$work/pass"
chmod 600 "$work/pass"
cat > "$work/bulwark.toml" <<EOF
ledger = "$work/ledger.db"

[repositories.primary]
url = "$work/primary"
region = "region-a"
password_file = "$work/pass"

[repositories.offsite]
url = "$work/offsite"
region = "region-b"
replica_of = "primary"
password_file = "$work/pass"

[datasets.orders-db]
kind = "postgres"
source = "host=$work port=$port user=postgres dbname=bench"
tier = "critical"
schedule = "daily at 02:00"
restore_test = { every = "90d", checks = ["SELECT count(*) > 0 FROM pgbench_accounts"] }

[datasets.documents]
kind = "files"
paths = ["$work/files"]
tier = "critical"
schedule = "daily at 02:00"
restore_test = { every = "90d", max_bytes = "2GiB", scratch = "$work/scratch" }

[drill]
parallel = 2
EOF
mkdir -p "$work/scratch"

say "bulwark run (backup, copy off-site, restore tests)"
t0=$(date +%s.%N)
"$bulwark" run -c "$work/bulwark.toml" --init --json > "$work/run.json" 2> "$work/run.log" \
    || die "run failed: $(tail -3 "$work/run.log")"
t1=$(date +%s.%N)
say "bulwark drill (from the off-site replica alone)"
"$bulwark" drill -c "$work/bulwark.toml" --json > "$work/drill.json" 2> "$work/drill.log" \
    || die "drill failed: $(tail -3 "$work/drill.log")"
t2=$(date +%s.%N)

python3 - "$work/drill.json" "$db_bytes" "$files_bytes" "$t0" "$t1" "$t2" "$scale" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
db_bytes, files_bytes = int(sys.argv[2]), int(sys.argv[3])
t0, t1, t2 = map(float, sys.argv[4:7])
scale = sys.argv[7]
print(f"# Drill: pgbench scale {scale} ({db_bytes/1e9:.2f} GB in PostgreSQL) + {files_bytes/2**30:.2f} GiB of files\n")
print(f"`bulwark run` (backup, copy off-site, restore tests): {t1-t0:.1f} s; `bulwark drill`: {t2-t1:.1f} s as a whole process.\n")
print("| dataset | restored bytes | fetch+restore s | load s | checks s | total s | MB/s | RPO achieved |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
total = 0
for x in d["datasets"]:
    ph = x.get("phases", {})
    fetch = ph.get("fetch", 0) + ph.get("restore", 0)
    load = ph.get("load", 0)
    checks = ph.get("checks", 0) + ph.get("structure", 0)
    total += x["bytes"]
    rate = x["bytes"] / x["duration_s"] / 1e6 if x["duration_s"] else 0
    print(f"| {x['dataset']} | {x['bytes']:,} | {fetch:.1f} | {load:.1f} | {checks:.1f} | {x['duration_s']:.1f} | {rate:.0f} | {x['rpo_achieved_s']:.0f} s |")
wall = d["wall_s"]
print(f"\nRTO achieved (drill start to the last passing check): **{wall:.1f} s** against {d['rto_target_s']/3600:.0f} h; passed: {d['passed']}, {d['parallel']} at a time.")
rate = total / wall
tb = 1e12 / rate
print(f"Throughput of the whole drill: {rate/1e6:.0f} MB/s of restored data; a 1 TB platform at that rate: **{tb/3600:.1f} h** "
      f"({'within' if tb <= d['rto_target_s'] else 'over'} the RTO of {d['rto_target_s']/3600:.0f} h).")
EOF
