#!/usr/bin/env bash
# Installs the web UI's npm packages (the versions of package-lock.json) and builds it into
# ui/dist, which the app embeds at compile time.
set -euo pipefail
cd "$(dirname "$0")/../ui"
# `npm install`, not `npm ci`: npm 11 writes lock files without the other platforms' optional
# packages (@tauri-apps/cli-*), and `npm ci` then refuses them. With the lock present, install
# takes exactly the locked versions.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build
