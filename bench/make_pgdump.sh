#!/usr/bin/env bash
# Build corpus (b): two plain-SQL dumps of one PostgreSQL database, a day apart.
#
#   make_pgdump.sh OUTDIR SCALE
#
# Starts a throwaway cluster (initdb/pg_ctl from `pg_config --bindir`) in a temp dir, on a free
# port, listening on a Unix socket only, run as the `postgres` user (postgres refuses root).
# Loads a shop-like schema with varied text (seeded, so the content is the same every time),
# dumps it to OUTDIR/day1.sql, updates ~2% of the rows of every table (five runs of consecutive
# ids, "hot ranges", spread evenly over the table; PostgreSQL moves updated rows to the table's end),
# deletes 0.2% of the events, appends 0.5% new ones, dumps OUTDIR/day2.sql, and removes the
# cluster. (Updating every 50th row instead leaves no ~1 MiB chunk unchanged: every tool then
# stores day2 in full, which measures nothing about deduplication.)
# SCALE is the number of customers in thousands: about 1.6 MB of dump per unit.
set -euo pipefail

out=$1
scale=$2
bindir=$(pg_config --bindir)
pguser=postgres
id "$pguser" >/dev/null 2>&1 || { echo "make_pgdump: no '$pguser' user (install postgresql)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/bench-pg.XXXXXX)
chown "$pguser": "$tmp"
chmod 700 "$tmp"
as_pg() { runuser -u "$pguser" -- "$@"; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    as_pg "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

as_pg "$bindir/initdb" -D "$tmp/data" -A trust -U postgres --no-sync -E UTF8 --locale=C >"$tmp/initdb.log" 2>&1 \
    || { cat "$tmp/initdb.log" >&2; exit 1; }
as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w \
    -o "-p $port -k $tmp -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_parallel_workers_per_gather=0" \
    start >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }

psql_() { as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$tmp" -p "$port" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE shop"

# A fixed vocabulary; sentences are seeded random picks from it.
words="the of and to in is for on that with as by at from this be are was an or it not have which
order customer shipment delivered returned invoice payment pending refund warehouse parcel
address street avenue road lane north south east west city village harbour station garden
quick slow broken fine excellent poor average late early damaged complete partial missing
blue red green black white silver golden small large medium heavy light fragile sturdy
monday tuesday wednesday thursday friday saturday sunday january march june september
please thanks request contact support ticket issue resolved escalated callback email phone
coffee tea paper printer cable laptop monitor keyboard chair desk lamp bottle book shoe
alpha beta gamma delta kappa sigma omega vector matrix tensor kernel socket thread buffer
happy angry calm curious tired eager gentle brave clever honest proud quiet rapid steady"
read -r -a wordlist <<<"$(tr '\n' ' ' <<<"$words")"
nwords=${#wordlist[@]}
words=$(IFS=,; echo "${wordlist[*]}")

echo "make_pgdump: loading (scale $scale) on port $port"
psql_ -d shop >/dev/null <<SQL
SELECT setseed(0.4242);
CREATE FUNCTION sentence(n int) RETURNS text LANGUAGE sql VOLATILE AS \$\$
  SELECT string_agg(('{$words}'::text[])[1 + floor(random() * $nwords)::int], ' ')
  FROM generate_series(1, n)
\$\$;

CREATE TABLE customers (
  id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, city text, phone text,
  created_at timestamptz NOT NULL, notes text);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, status text NOT NULL,
  amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, shipping_address text, comment text);
CREATE TABLE events (
  id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, kind text NOT NULL,
  at timestamptz NOT NULL, payload jsonb);

INSERT INTO customers
SELECT i,
       initcap(sentence(2)),
       'user' || i || '.' || substr(md5(i::text), 1, 6) || '@example.' || (ARRAY['com','org','net','io'])[1 + i % 4],
       initcap(sentence(1)),
       '+1-' || lpad((floor(random() * 1e9))::bigint::text, 10, '0'),
       timestamptz '2020-01-01' + random() * interval '1500 days',
       CASE WHEN i % 3 = 0 THEN sentence(8 + i % 25) END
FROM generate_series(1, $scale * 1000) i;

INSERT INTO orders
SELECT i,
       1 + floor(random() * $scale * 1000)::int,
       (ARRAY['new','paid','shipped','delivered','returned','cancelled'])[1 + floor(random() * 6)::int],
       round((random() * 500)::numeric, 2),
       timestamptz '2021-01-01' + random() * interval '1200 days',
       floor(random() * 9000 + 1)::int || ' ' || initcap(sentence(2)) || ' Street, ' || initcap(sentence(1)),
       sentence(3 + floor(random() * 20)::int)
FROM generate_series(1, $scale * 4000) i;

INSERT INTO events
SELECT i,
       1 + floor(random() * $scale * 4000)::bigint,
       (ARRAY['created','viewed','paid','packed','shipped','delivered','complaint'])[1 + floor(random() * 7)::int],
       timestamptz '2021-01-01' + random() * interval '1200 days',
       jsonb_build_object('agent', 'agent-' || floor(random() * 300)::int,
                          'score', floor(random() * 100)::int,
                          'note', sentence(2 + floor(random() * 10)::int))
FROM generate_series(1, $scale * 6000) i;
DROP FUNCTION sentence(int);
SQL

# Newer pg_dump writes a random \restrict key; pin it so the dumps are byte-for-byte repeatable.
restrict=
if "$bindir/pg_dump" --help | grep -- --restrict-key >/dev/null; then restrict=--restrict-key=bulwarkbench; fi
pg_dump_() { as_pg "$bindir/pg_dump" -h "$tmp" -p "$port" -U postgres -d shop $restrict; }
pg_dump_ >"$out/day1.sql.tmp"

echo "make_pgdump: changing ~2% of rows"
psql_ -d shop >/dev/null <<SQL
SELECT setseed(0.1717);
-- Hot ranges: each table cut into 250 runs of consecutive ids, every 50th updated (5 runs, 2%).
UPDATE customers SET notes = coalesce(notes, '') || ' updated ' || md5(id::text), phone = '+1-5550000000'
 WHERE (id::bigint * 250 / ($scale * 1000 + 1)) % 50 = 17;
UPDATE orders SET status = 'delivered', comment = comment || ' (delivered on time)'
 WHERE (id * 250 / ($scale * 4000 + 1)) % 50 = 23;
UPDATE events SET payload = jsonb_set(payload, '{score}', to_jsonb(floor(random() * 100)::int))
 WHERE (id * 250 / ($scale * 6000 + 1)) % 50 = 31;
DELETE FROM events WHERE id * 500 / ($scale * 6000 + 1) = 123;
INSERT INTO events
SELECT $scale * 6000 + i, 1 + (i * 7919) % ($scale * 4000), 'complaint',
       timestamptz '2024-05-01' + i * interval '1 second',
       jsonb_build_object('agent', 'agent-7', 'score', 1, 'note', 'late parcel ' || i)
FROM generate_series(1, $scale * 30) i;
SQL

pg_dump_ >"$out/day2.sql.tmp"
mv "$out/day1.sql.tmp" "$out/day1.sql"
mv "$out/day2.sql.tmp" "$out/day2.sql"
ls -l "$out"/day1.sql "$out"/day2.sql
