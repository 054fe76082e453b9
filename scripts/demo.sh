#!/usr/bin/env bash
# The main job on the embedded default: back up a sample tree into a local repository, then
# restore it and verify every byte against the snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bulwark
bulwark=target/release/bulwark
work=${BULWARK_DEMO_DIR:-target/demo}
rm -rf "$work" && mkdir -p "$work"
export BULWARK_REPO="$work/repo" BULWARK_PASSWORD=${BULWARK_PASSWORD:-demo-passphrase}
$bulwark init
$bulwark backup crates README.md --tag demo
$bulwark backup crates README.md --tag demo # incremental: nothing changed
$bulwark snapshots
$bulwark restore latest --target "$work/restore" --verify
$bulwark check --read-data
