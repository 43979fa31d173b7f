#!/usr/bin/env bash
# Load test on loopback: the production run (scripts/run_prod.sh) with TWO gunicorn instances,
# RQ workers and the scheduler, a 1,000,000-task data set, and locust (headless, bounded in
# time) mixing client API intake, client portal reads, specialist get-next/submit and lead
# board views. Prints throughput, p50/p95/p99, errors, worker RSS and the slowest queries.
#
# Environment (all optional):
#   LOAD_DATABASE_URL  PostgreSQL database for the run (default: throughline_load on loopback,
#                      created and seeded when missing)
#   LOAD_REDIS_URL     default redis://127.0.0.1:6379/0
#   LOAD_TASKS         tasks the data set must hold (default 1000000; seeded up to it)
#   LOAD_USERS         concurrent locust users (default 50); LOAD_DURATION (default 60s)
#   LOAD_PORTS         the two web instances (default "8101 8102"); WEB_CONCURRENCY per
#                      instance (default 3); RQ_WORKERS (default 2)
#   LOAD_OUT           where logs and CSVs go (default instance/loadtest/<UTC timestamp>)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
scripts/services.sh --pg
[ -x .venv/bin/locust ] || .venv/bin/python -m pip install -q -e '.[load]'

db_url=${LOAD_DATABASE_URL:-postgresql://throughline:throughline@127.0.0.1:5432/throughline_load}
redis_url=${LOAD_REDIS_URL:-redis://127.0.0.1:6379/0}
tasks=${LOAD_TASKS:-1000000}
users=${LOAD_USERS:-50}
duration=${LOAD_DURATION:-60s}
ports=${LOAD_PORTS:-8101 8102}
out=${LOAD_OUT:-instance/loadtest/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
py=.venv/bin/python
export FLASK_APP=wsgi DATABASE_URL=$db_url REDIS_URL=$redis_url

# --- the database: create, migrate, seed up to LOAD_TASKS, statistics -----------------------
db_name=${db_url##*/}
admin_url=${db_url%/*}/postgres
if ! psql "$admin_url" -tAc "select 1 from pg_database where datname='$db_name'" | grep -q 1; then
  echo "load-test: creating database $db_name"
  psql "$admin_url" -v ON_ERROR_STOP=1 -c "create database \"$db_name\""
fi
.venv/bin/flask db upgrade
have=$(psql "$db_url" -tAc "select count(*) from tasks")
if [ "$have" -lt "$tasks" ]; then
  echo "load-test: seeding $((tasks - have)) tasks (COPY; several minutes for a million)"
  .venv/bin/flask seed-scale --tasks $((tasks - have)) | tee "$out/seed.log"
  psql "$db_url" -c "vacuum (analyze) tasks, audit_events, qa_reviews, escalations"
fi

# --- who signs in: tokens for ten clients, users from the seeded set -----------------------
$py - "$out" <<'PY'
import sys
from pathlib import Path

from sqlalchemy import select

from provider_app import create_app
from provider_app.accounts import issue_token
from provider_app.extensions import db
from provider_app.models import Client, User, UserRole
from provider_app.vocab import Role

out = Path(sys.argv[1])
app = create_app()
with app.app_context():
    clients = db.session.scalars(
        select(Client).where(Client.code.like("SC%")).order_by(Client.code).limit(10)).all()
    tokens = [issue_token(c, name="load test")[0] for c in clients]
    db.session.commit()

    def emails(role, extra=None):
        stmt = select(User.email).join(UserRole).where(UserRole.role == role)
        if extra is not None:
            stmt = stmt.where(extra)
        return db.session.scalars(stmt.order_by(User.email).limit(60)).all()

    env = {
        "TL_TOKENS": tokens,
        "TL_CLIENT_USERS": emails(Role.CLIENT_USER, User.email.like("user@sc%")),
        "TL_SPECIALISTS": emails(Role.SPECIALIST, User.email.like("scale.%")),
        "TL_LEADS": emails(Role.TEAM_LEAD, User.email.like("scale.%")),
    }
lines = [f"export {k}={','.join(v)}" for k, v in env.items()]
(out / "users.env").write_text("\n".join(lines) + "\n")
PY
# shellcheck disable=SC1091
source "$out/users.env"
export TL_HOSTS
TL_HOSTS=$(for p in $ports; do printf 'http://127.0.0.1:%s,' "$p"; done | sed 's/,$//')

# --- pg_stat_statements, when the server preloads it ----------------------------------------
pgss=0
if psql "$db_url" -tAc "show shared_preload_libraries" | grep -q pg_stat_statements; then
  psql "$db_url" -qc "create extension if not exists pg_stat_statements" \
    && psql "$db_url" -qtAc "select pg_stat_statements_reset()" >/dev/null && pgss=1
fi
[ "$pgss" = 1 ] || echo "load-test: pg_stat_statements is not in shared_preload_libraries;" \
  "using the app's slow-query log instead (docs/DEPLOYMENT.md says how to enable it)"

# --- the production run: two web instances, workers, one scheduler --------------------------
# Plain HTTP on loopback: Secure cookies would never be sent back, so this run keeps the
# development cookie flags; everything else is the production configuration. Sign-in limits
# and MFA are relaxed because 50 simulated people sign in from one address without phones.
export THROUGHLINE_ENV=development LOG_FORMAT=json SLOW_QUERY_MS=${SLOW_QUERY_MS:-50}
export SECRET_KEY=${SECRET_KEY:-$($py -c 'import secrets; print(secrets.token_hex(32))')}
export MFA_REQUIRED_FOR_PROVIDER=0 LOGIN_RATE_LIMIT="10000 per minute"
export TOKEN_RATE_LIMIT="100000 per minute"
export WEB_PORTS=$ports WEB_CONCURRENCY=${WEB_CONCURRENCY:-3} RQ_WORKERS=${RQ_WORKERS:-2}
export LOG_DIR=$out/logs
setsid scripts/run_prod.sh >"$out/run_prod.log" 2>&1 &
run_pid=$!
sampler_pid=
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
  kill -TERM "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for p in $ports; do
  for _ in $(seq 240); do
    curl -fs "http://127.0.0.1:$p/readyz" >/dev/null && break
    kill -0 "$run_pid" 2>/dev/null || { cat "$out/run_prod.log"; exit 1; }
    sleep 0.5
  done
  curl -fs "http://127.0.0.1:$p/readyz" >/dev/null || { echo "load-test: :$p not ready"; exit 1; }
done
echo "load-test: ready on $TL_HOSTS; $users users for $duration"

# Resident memory of every web worker and RQ worker (and job horse) of this run, every 2 s.
$py - "$run_pid" >"$out/rss.log" <<'PY' &
import sys
import time

import psutil

root = psutil.Process(int(sys.argv[1]))
while root.is_running():
    for proc in root.children(recursive=True):
        try:
            cmd, parent = " ".join(proc.cmdline()), " ".join(proc.parent().cmdline())
            kb = proc.memory_info().rss // 1024
        except (psutil.Error, AttributeError):
            continue
        if "gunicorn" in cmd and "gunicorn" in parent:
            print("web", kb, flush=True)
        elif "rq worker" in cmd:
            print("rq", kb, flush=True)
    time.sleep(2)
PY
sampler_pid=$!

set +e
.venv/bin/locust -f benchmarks/locustfile.py --headless -u "$users" -r 10 -t "$duration" \
  --host "${TL_HOSTS%%,*}" --csv "$out/locust" --only-summary --stop-timeout 10 \
  2>&1 | tee "$out/locust.log"
set -e
kill "$sampler_pid" 2>/dev/null; sampler_pid=

# --- the report ------------------------------------------------------------------------------
{
  echo "== load test $(date -u +%Y-%m-%dT%H:%MZ): $users users, $duration, web $ports" \
       "(WEB_CONCURRENCY=$WEB_CONCURRENCY each), $RQ_WORKERS RQ workers, $(nproc) cores"
  echo "tasks in the database: $(psql "$db_url" -tAc 'select count(*) from tasks')"
  sed -n '/== load test summary ==/,$p' "$out/locust.log"
  $py - "$out" <<'PY'
import json
import sys
from collections import defaultdict
from pathlib import Path

out = Path(sys.argv[1])
rss = defaultdict(list)
for line in (out / "rss.log").read_text().split("\n"):
    kind, _, kb = line.partition(" ")
    if kb.strip().isdigit():
        rss[kind].append(int(kb) / 1024)
for kind, label in (("web", "web worker"), ("rq", "RQ worker")):
    if rss[kind]:
        print(f"{label} RSS: max {max(rss[kind]):.0f} MB, "
              f"median {sorted(rss[kind])[len(rss[kind]) // 2]:.0f} MB")
slow = defaultdict(list)
for log in (out / "logs").glob("web-*.log"):
    for line in log.read_text(errors="replace").splitlines():
        if '"throughline.slow_query"' in line:
            record = json.loads(line)
            slow[record["statement"][:300]].append(record["duration_ms"])
print(f"statements slower than the slow-query threshold: {sum(map(len, slow.values()))}")
for statement, times in sorted(slow.items(), key=lambda kv: -sum(kv[1]))[:8]:
    print(f"  {len(times):5} x, max {max(times):7.1f} ms, total {sum(times):8.0f} ms: "
          f"{statement[:160]}")
PY
  if [ "$pgss" = 1 ]; then
    echo "pg_stat_statements, top 10 by total time:"
    psql "$db_url" -c "select calls, round(total_exec_time::numeric, 1) as total_ms,
      round(mean_exec_time::numeric, 2) as mean_ms, left(regexp_replace(query, '\s+', ' ', 'g'),
      140) as query from pg_stat_statements order by total_exec_time desc limit 10"
  fi
} | tee "$out/report.txt"
echo "load-test: logs, CSVs and report in $out"
