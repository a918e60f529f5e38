# Run `make run` for the example receiver on SQLite, `make test` for the whole test suite,
# `make docs` for the documentation site (site/).
PY := .venv/bin/python
PORT ?= 8000

.PHONY: run test lint bench install docs

install:
	@scripts/bootstrap

run: install
	$(PY) manage.py migrate --no-input
	@DJANGO_SUPERUSER_PASSWORD=admin $(PY) manage.py createsuperuser --no-input --username admin --email admin@example.com 2>/dev/null && echo "Created the admin user: admin / admin" || echo "Admin user: admin / admin (already exists)"
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

docs: install
	.venv/bin/mkdocs build --strict
