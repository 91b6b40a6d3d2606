#!/usr/bin/env bash
# Runs every test on a fresh Debian/Ubuntu machine with Rust: installs what the tests need
# (Debian packages and a local PostgreSQL), then formatting, lints, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
# A real MCP client that is not ours, for the `idse mcp` test.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'mcp==2.3.0'
IDSE_TEST_POSTGRES_URL=$(bash scripts/postgres.sh | tail -n1)
export IDSE_TEST_POSTGRES_URL
# The Postgres half of every contract test is mandatory here (see idse_store::testing).
export CI="${CI:-true}"

echo "== cargo fmt"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
