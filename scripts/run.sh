#!/usr/bin/env bash
# Installs what is needed, builds, and runs IDSE Desk's gateway with its embedded default
# (SQLite in the user's data folder) on http://127.0.0.1:8000. Extra arguments go to the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --locked -p idse-gateway
exec target/release/idse-gateway "$@"
