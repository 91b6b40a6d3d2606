#!/usr/bin/env bash
# Runs every test on a fresh Debian/Ubuntu machine with Rust and Node: installs what the tests
# need (Debian packages, a local PostgreSQL, npm packages, tauri-driver, two PyPI clients), then
# formatting, lints, the Rust suite, the UI unit tests, the app end to end in a real window under
# Xvfb, and the .deb installer build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
# Real clients that are not ours: the MCP SDK for `idse mcp` and /mcp, Selenium for WebDriver.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  'mcp==2.3.0' 'selenium==4.51.0'
if ! command -v tauri-driver >/dev/null 2>&1; then
  cargo install tauri-driver --locked --version 2.1.0
fi
bash scripts/ui.sh
IDSE_TEST_POSTGRES_URL=$(bash scripts/postgres.sh | tail -n1)
IDSE_TEST_POSTGRES_SOCKET_URL=$(bash scripts/postgres.sh --socket | tail -n1)
export IDSE_TEST_POSTGRES_URL IDSE_TEST_POSTGRES_SOCKET_URL
# The Postgres half of every contract test is mandatory here (see idse_store::testing).
export CI="${CI:-true}"

echo "== cargo fmt"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== ui unit tests"
(cd ui && npx tsc --noEmit && npx vitest run)
echo "== app end to end (WebDriver, Xvfb)"
cargo build --locked -p idse-desk -p idse-cli
xvfb-run -a -s "-screen 0 1440x900x24" \
  python3 tests/e2e/dashboard.py target/debug/idse-desk target/debug/idse target/e2e-shots
echo "== document and merge views end to end (WebDriver, Xvfb)"
xvfb-run -a -s "-screen 0 1440x900x24" \
  python3 tests/e2e/merge.py target/debug/idse-desk target/debug/idse target/e2e-shots
# A debug-profile bundle: it reuses the build above (a cold release build costs ~10 min here);
# `tauri build --bundles deb` without --debug makes the release .deb the same way.
echo "== installer (.deb)"
ui/node_modules/.bin/tauri build --debug --bundles deb
ls target/debug/bundle/deb/*.deb
