#!/usr/bin/env bash
# What the browser tests need, installed only when missing (quick when present):
#   - Debian's Chromium at /usr/bin/chromium (apt; a browser is never downloaded otherwise),
#   - Playwright for Python in .venv (its wheel bundles the driver; no `playwright install`),
#   - axe-core from the npm registry in .cache/npm (injected into pages by the tests).
# Run after scripts/bootstrap.sh (it needs .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_DIR=.cache/npm
AXE_JS=$AXE_DIR/node_modules/axe-core/axe.min.js

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v npm >/dev/null 2>&1 || packages+=(npm)
fc-list 2>/dev/null | grep -qi dejavu || packages+=(fonts-dejavu-core)

if [ ${#packages[@]} -gt 0 ]; then
  echo "browser_deps: installing ${packages[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

if ! .venv/bin/python -c 'import playwright.sync_api' 2>/dev/null; then
  echo "browser_deps: installing playwright"
  .venv/bin/python -m pip install -q 'playwright>=1.45,<2'
fi

if [ ! -f "$AXE_JS" ]; then
  echo "browser_deps: installing axe-core"
  mkdir -p "$AXE_DIR"
  npm install --prefix "$AXE_DIR" --no-audit --no-fund --silent 'axe-core@4'
fi
echo "browser_deps: ready"
