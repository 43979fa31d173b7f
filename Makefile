# The two commands a new user needs: `make run` and `make test`.
.PHONY: run test install worker scheduler lint migrate run-prod load-test

run:            ## run the app with demo data on http://127.0.0.1:5000
	scripts/run.sh

test:           ## lint, then the whole suite on SQLite and on PostgreSQL with real Redis
	scripts/test.sh

install:        ## system packages and the Python venv only
	scripts/bootstrap.sh

worker:         ## one RQ worker for all queues (with the delayed-job scheduler)
	.venv/bin/rq worker --with-scheduler --url "$${REDIS_URL:-redis://127.0.0.1:6379/0}" high default low

scheduler:      ## the periodic-job scheduler: run exactly one
	.venv/bin/rq cron --url "$${REDIS_URL:-redis://127.0.0.1:6379/0}" provider_app.schedule

lint:
	.venv/bin/ruff check .

migrate:        ## apply migrations to DATABASE_URL (default SQLite under instance/)
	.venv/bin/flask --app wsgi db upgrade

run-prod:       ## production topology: migrate, gunicorn, RQ workers, one scheduler (needs DATABASE_URL)
	scripts/bootstrap.sh
	scripts/run_prod.sh

load-test:      ## locust against two gunicorn instances on 1,000,000 tasks (docs/PERFORMANCE.md)
	scripts/load_test.sh
