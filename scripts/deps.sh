#!/usr/bin/env bash
# Installs the Debian packages the build needs, once (idempotent, no prompts).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
# webkit2gtk and xvfb: the desktop app and its end-to-end test in a real window;
# webkit2gtk-driver: WebKitWebDriver for tauri-driver; imagemagick: screenshots.
for pkg in build-essential pkg-config curl libwebkit2gtk-4.1-dev xvfb webkit2gtk-driver \
  imagemagick x11-apps; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
