# Two commands: `make run` starts the whole portal against the Kraken sandbox; `make test` runs
# every check. Both install what is missing first (venv, hash-pinned dependencies, migrations).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || echo python3.12)
VENV := .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-$(shell sha256sum requirements/lock.txt | cut -c1-16)

.PHONY: install run test lint typecheck importlint pytest bench migrate demo clean lock

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 12), "Python 3.12 is required (see .python-version)"' \
		|| { echo "Install Python 3.12 (e.g. 'pyenv install 3.12') and try again."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): $(PY) requirements/lock.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements/lock.txt
	rm -f $(VENV)/.deps-* && touch $(DEPS_STAMP)

install: $(DEPS_STAMP)

run: install
	$(PY) scripts/run.py

test: install lint typecheck importlint pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy .

# The layer contract in pyproject.toml ([tool.importlinter]): a wrong arrow between apps fails.
importlint: install
	$(VENV)/bin/lint-imports --no-logo

pytest: install
	$(PY) scripts/ensure_services.py
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install
	$(PY) scripts/ensure_services.py
	$(PY) bench/run_all.py

# Regenerate the lock after editing requirements/*.in (a developer tool, not part of run/test).
lock:
	$(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip compile --python-version 3.12 \
		--generate-hashes --no-header --quiet requirements/dev.in -o requirements/lock.txt

clean:
	rm -rf $(VENV) var/static .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
