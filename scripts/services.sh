#!/usr/bin/env bash
# Start local Redis (and PostgreSQL with --pg) when they are not already running.
# With --pg it also makes the test role and database (throughline/throughline).
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  echo "services: starting redis on 127.0.0.1:6379"
  mkdir -p /tmp/throughline-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/throughline-redis --logfile /tmp/throughline-redis/redis.log
  for _ in $(seq 50); do port_open 6379 && break; sleep 0.1; done
fi

[ "${1:-}" = "--pg" ] || exit 0

if ! port_open 5432; then
  echo "services: starting postgresql"
  if command -v pg_ctlcluster >/dev/null; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  else
    service postgresql start
  fi
  for _ in $(seq 100); do port_open 5432 && break; sleep 0.1; done
fi

as_superuser() {
  if psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -tAc "$1"
  elif [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- psql -d postgres -v ON_ERROR_STOP=1 -tAc "$1"
  else
    sudo -u postgres psql -d postgres -v ON_ERROR_STOP=1 -tAc "$1"
  fi
}

if [ "$(as_superuser "select 1 from pg_roles where rolname='throughline'")" != "1" ]; then
  as_superuser "create role throughline login password 'throughline' createdb"
fi
# The test database belongs to the test role; one left by another owner is recreated.
owner=$(as_superuser "select pg_get_userbyid(datdba) from pg_database where datname='throughline_test'")
if [ "$owner" != "throughline" ]; then
  [ -n "$owner" ] && as_superuser "drop database throughline_test with (force)"
  as_superuser "create database throughline_test owner throughline"
fi
