#!/usr/bin/env bash
# The production topology as plain processes (what Procfile, systemd and compose.yaml run):
#   1. flask db upgrade                    (the one-shot "migrate" step; refuses SQLite)
#   2. gunicorn, one instance per port in WEB_PORTS, WEB_CONCURRENCY workers each
#   3. RQ_WORKERS RQ workers on the queues high, default, low
#   4. exactly one periodic-job scheduler (a Redis leader lock: provider_app/scheduler_leader.py)
# Configuration comes from the environment: DATABASE_URL (PostgreSQL, required), REDIS_URL,
# SECRET_KEY (required in production), WEB_PORTS (default 8000), WEB_CONCURRENCY, RQ_WORKERS
# (default 2), LOG_DIR (default: everything on this terminal). Ctrl-C or SIGTERM stops all of
# it; if any process dies the others are stopped too, so a supervisor can restart the set.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "run-prod: $*" >&2; exit 2; }

database_url=${DATABASE_URL:-}
case "$database_url" in
  "") fail "DATABASE_URL is not set. The production run needs PostgreSQL, e.g.
  DATABASE_URL=postgresql://throughline@127.0.0.1:5432/throughline SECRET_KEY=... make run-prod" ;;
  sqlite*) fail "DATABASE_URL points at SQLite ($database_url). SQLite is for one developer;
  several web workers, RQ workers and machines need PostgreSQL (postgresql://user@host:5432/db)." ;;
  postgres://*|postgresql://*|postgresql+psycopg://*) ;;
  *) fail "DATABASE_URL must be a postgresql:// URL, got: ${database_url%%:*}://..." ;;
esac

export THROUGHLINE_ENV=${THROUGHLINE_ENV:-production}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export FLASK_APP=wsgi
web_ports=${WEB_PORTS:-${PORT:-8000}}
rq_workers=${RQ_WORKERS:-2}
log_dir=${LOG_DIR:-}
venv=${VENV:-.venv}
[ -x "$venv/bin/gunicorn" ] || fail "$venv/bin/gunicorn not found: run scripts/bootstrap.sh first"
[[ "$rq_workers" =~ ^[0-9]+$ ]] && [ "$rq_workers" -ge 1 ] || fail "RQ_WORKERS must be >= 1"

echo "run-prod: migrating the database (flask db upgrade)"
"$venv/bin/flask" db upgrade

pids=()
start() {  # start NAME COMMAND...: in the background, logging to LOG_DIR/NAME.log if set
  local name=$1; shift
  if [ -n "$log_dir" ]; then
    mkdir -p "$log_dir"
    "$@" >>"$log_dir/$name.log" 2>&1 &
  else
    "$@" &
  fi
  pids+=($!)
  echo "run-prod: started $name (pid $!)"
}

stop_all() {
  trap - INT TERM EXIT
  echo "run-prod: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

for port in $web_ports; do
  start "web-$port" env PORT="$port" "$venv/bin/gunicorn" -c gunicorn.conf.py wsgi:app
done
for n in $(seq 1 "$rq_workers"); do
  start "worker-$n" "$venv/bin/rq" worker -c provider_app.rq_config -w provider_app.worker.Worker \
    --with-scheduler --name "$(hostname)-worker-$n-$$" high default low
done
start scheduler "$venv/bin/python" -m provider_app.scheduler_leader

echo "run-prod: web on port(s) $web_ports, $rq_workers RQ worker(s), 1 scheduler; Ctrl-C stops"
set +e
wait -n
status=$?
echo "run-prod: a process exited (status $status); stopping the others" >&2
exit "$status"
