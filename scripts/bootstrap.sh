#!/usr/bin/env bash
# Install what a fresh Debian/Ubuntu machine lacks, then the Python venv.
# Idempotent: on a machine that has everything it only checks.
#   scripts/bootstrap.sh          app needs (Python venv, Redis, WeasyPrint libraries)
#   scripts/bootstrap.sh --test   also PostgreSQL for the test suite
set -euo pipefail
cd "$(dirname "$0")/.."

want_pg=0
[ "${1:-}" = "--test" ] && want_pg=1

packages=()
have() { command -v "$1" >/dev/null 2>&1; }
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }

have python3 || packages+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
have redis-server || packages+=(redis-server)
# WeasyPrint renders PDFs with Pango/HarfBuzz and needs at least one font.
have_lib libpango-1.0.so.0 || packages+=(libpango-1.0-0)
have_lib libpangoft2-1.0.so.0 || packages+=(libpangoft2-1.0-0)
have_lib libharfbuzz-subset.so.0 || packages+=(libharfbuzz-subset0)
fc-list 2>/dev/null | grep -qi dejavu || packages+=(fonts-dejavu-core)
if [ "$want_pg" = 1 ]; then
  have pg_ctlcluster || have pg_ctl || packages+=(postgresql)
fi

if [ ${#packages[@]} -gt 0 ]; then
  echo "bootstrap: installing ${packages[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Throughline needs Python 3.11+, found {sys.version.split()[0]}")
PY

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "bootstrap: ready"
