#!/usr/bin/env bash
# The whole test suite: lint, then every test on SQLite and again on PostgreSQL,
# against a real Redis. Installs and starts whatever is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
scripts/services.sh --pg

.venv/bin/ruff check .

pg_url=${PG_TEST_DATABASE_URL:-postgresql://throughline:throughline@127.0.0.1:5432/throughline_test}
echo "== tests on SQLite =="
TEST_DATABASE_URL= .venv/bin/pytest "$@"
echo "== tests on PostgreSQL =="
TEST_DATABASE_URL=$pg_url .venv/bin/pytest "$@"
