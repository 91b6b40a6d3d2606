#!/usr/bin/env bash
# Installs what is needed, builds, and opens IDSE Desk. With no team gateway configured the app
# starts its embedded gateway (SQLite in its data folder), so push and pull work at once.
# IDSE_DESK_HOME=DIR keeps all of the app's own state under DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/ui.sh
cargo build --release --locked -p idse-desk -p idse-cli -p idse-gateway
exec target/release/idse-desk "$@"
