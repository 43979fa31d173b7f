#!/usr/bin/env bash
# The whole test suite: lint and security checks, then every test on SQLite (with the
# browser journeys) and again on PostgreSQL, against a real Redis. Installs and starts
# whatever is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
scripts/services.sh --pg
scripts/browser_deps.sh

.venv/bin/ruff check .
scripts/security_checks.sh

pg_url=${PG_TEST_DATABASE_URL:-postgresql://throughline:throughline@127.0.0.1:5432/throughline_test}
echo "== tests on SQLite (and the browser journeys) =="
TEST_DATABASE_URL= .venv/bin/pytest "$@"
echo "== tests on PostgreSQL =="
TEST_DATABASE_URL=$pg_url .venv/bin/pytest -m "not browser" "$@"
