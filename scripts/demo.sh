#!/usr/bin/env bash
# The main job on the embedded default (examples/bulwark.toml): a local primary repository, a
# local "off-site" replica in another (pretend) region, a sample SQLite database and a sample
# file tree. `bulwark run` backs each dataset up, copies it off-site, applies retention and runs
# a restore test, recording everything in the SQLite ledger; `bulwark status` then shows every
# commitment `met`, and `bulwark ledger verify` checks the evidence chain.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bulwark
bulwark=target/release/bulwark
$bulwark policy check -c examples/bulwark.toml
$bulwark run --init -c examples/bulwark.toml
$bulwark status -c examples/bulwark.toml
$bulwark ledger verify -c examples/bulwark.toml
