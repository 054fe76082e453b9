#!/usr/bin/env bash
# PostgreSQL physical backups: Bulwark side by side with pgBackRest on the same cluster.
#
#   bench/pgbackrest.sh [--scale N] [--runs N] [--backlog N] [--bulwark PATH] [--tools LIST] [--keep]
#
#   --scale N     pgbench scale of the cluster (default 100: about 1.5 GB)
#   --runs N      how many times to run every tool (default 2); the order rotates
#   --backlog N   WAL segments queued before archiving is let through (default 64)
#   --bulwark P   the Bulwark binary (default target/release/bulwark, built if missing)
#   --tools LIST  of bulwark, bulwark-stream, pgbackrest-gz, pgbackrest-zst (default all four);
#                 bulwark reads the data directory itself (it runs on the database host),
#                 bulwark-stream takes the same backups through pg_basebackup
#   --keep        keep bench/work/pgbackrest afterwards
#
# Per tool and run, on a fresh copy of the same pgbench cluster (made once by `pgbench -i`,
# cached in bench/work/pgbackrest/template-SCALE), with archiving through the tool
# (pgBackRest: archive-push with archive-async=y; Bulwark: wal-push with wal_async = true):
#   1. full backup (pgBackRest --type=full; Bulwark backup --physical), both with a fast
#      checkpoint, encrypted (pgBackRest repo1-cipher-type=aes-256-cbc) and compressed (pgBackRest
#      gz, its default, or zst; Bulwark zstd, its default);
#   2. ~2% of the rows change (UPDATE of every 50th account, every page touched), then the
#      second-day backup (pgBackRest --type=incr; Bulwark another base backup, deduplicated);
#   3. the repository's size (du, WAL included);
#   4. restore to the end of the archive, until the restored cluster has replayed and promoted
#      (pgBackRest restore, then the server started until it leaves recovery, then stopped;
#      Bulwark restore --postgres-datadir does all of it), in two parts: laying down the data
#      directory (pgBackRest: its restore command; Bulwark: the report's fetch phase, which
#      leaves out the process's start and key derivation, ~0.2 s, counted in the replay part) and
#      the rest, where PostgreSQL replays the WAL (the same WAL for every tool);
#   5. archiving throughput: with archive_command failing, N segments pile up (pgbench writes);
#      then the tool's archive_command is put back while a write-heavy pgbench (-c 4) goes on,
#      and the time until the backlog is archived gives segments per second.
# Every step runs as the `postgres` account. Output: a Markdown table on stdout; raw numbers in
# bench/work/pgbackrest/results.tsv; each command's output in bench/work/pgbackrest/logs.
# The machine should be quiet: the load average is printed before each run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
scale=100 runs=2 backlog=64 bulwark="" tools="bulwark,bulwark-stream,pgbackrest-gz,pgbackrest-zst" keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --scale) scale=$2; shift ;;
        --runs) runs=$2; shift ;;
        --backlog) backlog=$2; shift ;;
        --bulwark) bulwark=$2; shift ;;
        --tools) tools=$2; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "pgbackrest.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "== $(date +%H:%M:%S) $*" >&2; }
die() { echo "pgbackrest.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the clusters run as postgres)"
command -v pgbackrest >/dev/null || die "pgbackrest missing (apt-get install pgbackrest)"
bindir=$(pg_config --bindir)
if [ -z "$bulwark" ]; then
    bulwark=$root/target/release/bulwark
    if [ ! -x "$bulwark" ]; then
        say "cargo build --release -p bulwark"
        (cd "$root" && cargo build --release -p bulwark)
    fi
fi
work=$root/bench/work/pgbackrest
mkdir -p "$work/logs"
chown postgres: "$work" "$work/logs"
chmod 755 "$root/bench/work" "$work"
log=$work/logs/bench.log
as_pg() { runuser -u postgres -- "$@"; }
port=55432
sock=$work/sock
mkdir -p "$sock" && chown postgres: "$sock"
psql_() { as_pg "$bindir/psql" -X -q -At -h "$sock" -p "$port" -d postgres -c "$1"; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
pg_start() { as_pg "$bindir/pg_ctl" -D "$1" -l "$work/logs/server.log" -o "-p $port -k $sock" -w -t 3600 start >>"$log" 2>&1; }
pg_stop() { as_pg "$bindir/pg_ctl" -D "$1" -m fast -w -t 600 stop >>"$log" 2>&1 || true; }

# ---- the template cluster
template=$work/template-$scale
if [ ! -f "$template/.ready" ]; then
    say "pgbench -i -s $scale (once)"
    rm -rf "$template"
    as_pg "$bindir/initdb" -D "$template" -U postgres -A trust --data-checksums >>"$log"
    cat >>"$template/postgresql.conf" <<EOF
listen_addresses = ''
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
wal_level = replica
max_wal_senders = 4
archive_mode = on
archive_command = '/bin/false'
EOF
    pg_start "$template"
    as_pg "$bindir/pgbench" -i -q -s "$scale" -h "$sock" -p "$port" postgres >>"$log" 2>&1
    psql_ "CHECKPOINT"
    pg_stop "$template"
    rm -f "$template"/pg_wal/archive_status/*.ready
    touch "$template/.ready"
fi

results=$work/results.tsv
echo -e "run\ttool\tfull_s\tsecond_s\trepo_bytes\trestore_s\tsegments\tarchive_s\tsegments_per_s\tfiles_s\treplay_s" >"$results"

# Configure tool $1 for cluster $2: prints the archive_command.
setup_tool() {
    local tool=$1 data=$2
    rm -rf "$work/repo" "$work/spool" "$work/pgbr"
    mkdir -p "$work/pgbr" && chown postgres: "$work/pgbr"
    case $tool in
        bulwark*)
            as_pg "$bulwark" init -r "$work/repo" --new-key-file "$work/pgbr/key" >>"$log"
            cat >"$work/pgbr/bulwark.toml" <<EOF
[repositories.primary]
url = "$work/repo"
key_file = "$work/pgbr/key"

[datasets.db]
kind = "postgres"
method = "physical"
source = "host=$sock port=$port user=postgres dbname=postgres"
schedule = "daily at 02:00"
wal_async = true
wal_spool = "$work/spool"
EOF
            chown postgres: "$work/pgbr/bulwark.toml"
            echo "$bulwark wal-push -c $work/pgbr/bulwark.toml --dataset db %p"
            ;;
        pgbackrest-*)
            local compress=${tool#pgbackrest-}
            cat >"$work/pgbr/pgbackrest.conf" <<EOF
[global]
repo1-path=$work/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
compress-type=$compress
start-fast=y
archive-async=y
spool-path=$work/spool
log-path=$work/pgbr
lock-path=$work/pgbr
log-level-console=warn

[bench]
pg1-path=$data
pg1-port=$port
pg1-socket-path=$sock
EOF
            chown postgres: "$work/pgbr/pgbackrest.conf"
            mkdir -p "$work/repo" "$work/spool" && chown postgres: "$work/repo" "$work/spool"
            echo "pgbackrest --config=$work/pgbr/pgbackrest.conf --stanza=bench archive-push %p"
            ;;
    esac
}

backup() {
    local tool=$1 kind=$2
    case $tool in
        bulwark*)
            local read=auto
            [ "$tool" = bulwark-stream ] && read=pg_basebackup
            as_pg "$bulwark" -r "$work/repo" --key-file "$work/pgbr/key" backup --physical --base-backup "$read" \
                --postgres "host=$sock port=$port user=postgres dbname=postgres" --dataset db >>"$log" 2>&1 ;;
        pgbackrest-*) as_pg pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench backup --type="$kind" >>"$log" 2>&1 ;;
    esac
}

set_archive_command() {
    psql_ "ALTER SYSTEM SET archive_command = '$1'" && psql_ "SELECT pg_reload_conf()" >/dev/null
}

restored=$work/restored
# Restores with tool $1 and sets files_s, the time the data directory took to lay down.
restore() {
    local tool=$1 t
    rm -rf "$restored"
    mkdir -p "$restored" && chown postgres: "$restored" && chmod 700 "$restored"
    case $tool in
        bulwark*)
            as_pg "$bulwark" -r "$work/repo" --key-file "$work/pgbr/key" restore latest --dataset db \
                --postgres-datadir "$restored/data" --json >"$work/restore.json" 2>>"$log"
            cat "$work/restore.json" >>"$log"
            files_s=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["phases"]["fetch"])' \
                "$work/restore.json") ;;
        pgbackrest-*)
            t=$(now)
            as_pg pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench restore \
                --pg1-path="$restored/data" >>"$log" 2>&1
            files_s=$(elapsed "$t")
            cat >>"$restored/data/postgresql.auto.conf" <<EOF
archive_mode = off
EOF
            pg_start "$restored/data"
            until [ "$(psql_ "SELECT pg_is_in_recovery()")" = f ]; do sleep 0.05; done
            pg_stop "$restored/data" ;;
    esac
}

ready_count() { ls "$1/pg_wal/archive_status/" | grep -c '\.ready$' || true; }

IFS=, read -r -a tool_list <<<"$tools"
n=${#tool_list[@]}
for run in $(seq 1 "$runs"); do
    say "run $run: load $(cut -d' ' -f1-3 /proc/loadavg)"
    for i in $(seq 0 $((n - 1))); do
        tool=${tool_list[$(((i + run - 1) % n))]}
        say "run $run: $tool"
        data=$work/pg
        pg_stop "$data" 2>/dev/null || true
        rm -rf "$data"
        cp -a "$template" "$data"
        command=$(setup_tool "$tool" "$data")
        cat >>"$data/postgresql.auto.conf" <<EOF
archive_command = '$command'
EOF
        pg_start "$data"
        if [[ $tool == pgbackrest-* ]]; then
            as_pg pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench stanza-create >>"$log" 2>&1
        fi
        t=$(now); backup "$tool" full; full=$(elapsed "$t")
        psql_ "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 50 = 0" >/dev/null
        psql_ "CHECKPOINT"
        t=$(now); backup "$tool" incr; second=$(elapsed "$t")
        psql_ "SELECT pg_switch_wal()" >/dev/null
        sleep 2
        size=$(du -sb "$work/repo" | cut -f1)
        # Archiving: a backlog, then the tool drains it under a write-heavy pgbench.
        set_archive_command /bin/false
        while [ "$(ready_count "$data")" -lt "$backlog" ]; do
            as_pg "$bindir/pgbench" -n -c 4 -t 2000 -h "$sock" -p "$port" postgres >>"$log" 2>&1
        done
        last=$(psql_ "SELECT pg_walfile_name(pg_current_wal_lsn())")
        psql_ "SELECT pg_switch_wal()" >/dev/null
        segments=$(ready_count "$data")
        as_pg "$bindir/pgbench" -n -c 4 -T 3600 -h "$sock" -p "$port" postgres >>"$log" 2>&1 &
        writer=$!
        t=$(now)
        set_archive_command "$command"
        until [[ "$(psql_ "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver" )" > "$last" ]] || \
              [ "$(psql_ "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" = "$last" ]; do sleep 0.05; done
        archive_s=$(elapsed "$t")
        kill "$writer" 2>/dev/null || true
        wait "$writer" 2>/dev/null || true
        # The restore replays the WAL archived up to now.
        psql_ "SELECT pg_switch_wal()" >/dev/null
        sleep 3
        pg_stop "$data"
        t=$(now); restore "$tool"; restore_s=$(elapsed "$t")
        replay_s=$(echo "$restore_s - $files_s" | bc)
        rate=$(echo "scale=1; $segments / $archive_s" | bc)
        echo -e "$run\t$tool\t$full\t$second\t$size\t$restore_s\t$segments\t$archive_s\t$rate\t$files_s\t$replay_s" >>"$results"
        say "$tool: full ${full}s, second ${second}s, repository $size bytes, restore ${restore_s}s (data directory ${files_s}s), $segments segments in ${archive_s}s = $rate/s"
        rm -rf "$restored"
    done
done

# ---- report: the median of the runs per tool, and Bulwark against each pgBackRest.
python3 - "$results" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tools = []
for r in rows:
    if r["tool"] not in tools:
        tools.append(r["tool"])
med = {t: {k: statistics.median(float(r[k]) for r in rows if r["tool"] == t)
           for k in ["full_s", "second_s", "repo_bytes", "restore_s", "segments_per_s", "files_s", "replay_s"]}
       for t in tools}
print("| tool | full backup s | second-day backup s | repository MB | restore s | of which data directory s | of which replay s | archiving segments/s |")
print("|---|---|---|---|---|---|---|---|")
for t in tools:
    m = med[t]
    print(f"| {t} | {m['full_s']:.1f} | {m['second_s']:.1f} | {m['repo_bytes'] / 1e6:.0f} | {m['restore_s']:.1f} "
          f"| {m['files_s']:.1f} | {m['replay_s']:.1f} | {m['segments_per_s']:.1f} |")
if "bulwark" in med:
    b = med["bulwark"]
    for t in tools:
        if t == "bulwark":
            continue
        p = med[t]
        print(f"\nBulwark ÷ {t}: full {b['full_s'] / p['full_s']:.2f}×, second {b['second_s'] / p['second_s']:.2f}×, "
              f"repository {b['repo_bytes'] / p['repo_bytes']:.2f}×, restore {b['restore_s'] / p['restore_s']:.2f}×, "
              f"archiving {b['segments_per_s'] / p['segments_per_s']:.2f}× (targets: ≤ 0.7, ≤ 0.7, ≤ 1, ≤ 0.7, ≥ 1); "
              f"data directory {b['files_s'] / p['files_s']:.2f}×, replay {b['replay_s'] / p['replay_s']:.2f}×")
print(f"\n{len(rows)} measurements, medians per tool; raw numbers in {sys.argv[1]}")
EOF
if [ "$keep" = 0 ]; then rm -rf "$work/pg" "$work/repo" "$work/spool" "$work/pgbr" "$work/restore.json"; fi
