#!/usr/bin/env bash
# Run Throughline with demo data: migrate, seed, a worker, the scheduler and the web app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/services.sh

export FLASK_APP=wsgi
flask=.venv/bin/flask
$flask db upgrade
$flask seed-demo

mkdir -p instance/logs
.venv/bin/rq worker --with-scheduler --url "${REDIS_URL:-redis://127.0.0.1:6379/0}" \
  high default low >instance/logs/worker.log 2>&1 &
worker=$!
.venv/bin/rq cron --url "${REDIS_URL:-redis://127.0.0.1:6379/0}" provider_app.schedule \
  >instance/logs/scheduler.log 2>&1 &
scheduler=$!
trap 'kill $worker $scheduler 2>/dev/null || true' EXIT INT TERM

port=${PORT:-5000}
echo
echo "Throughline is running at http://127.0.0.1:$port  (Ctrl-C stops it)"
echo "Sign in with any login printed above; worker and scheduler logs are in instance/logs/."
.venv/bin/gunicorn --bind "127.0.0.1:$port" --workers 2 --access-logfile - wsgi:app
