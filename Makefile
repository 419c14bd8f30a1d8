# Everything a fresh machine needs, from python3 and make alone.
#   make demo   run the main job: the example import DAG end to end against the embedded emulator
#   make test   run the test suite (what CI runs)
#   make lint   ruff and mypy
#   make test-fast   the tests not marked slow (about a minute): the quick loop while editing
#   make wheel-check build the wheel, install it into a fresh virtualenv, check Airflow registers it
#   make chaos  the fault suite: 1,400 job lifecycles under faults, an emulator kill -9, trigger restarts
#   make mutate mutation testing (cosmic-ray) in a copy under /tmp, about 50 min: docs/mutation.md
#   make bench  10,000 waits in one triggerer loop and the emulator's throughput, about 25 min
#               (QUICK=1: a smoke run): docs/benchmarks.md

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast wheel-check lint chaos mutate bench clean

install: $(STAMP)

# Re-installs when the pinned set or the package metadata changes.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip install --quiet --python $(PY) --constraints constraints.txt -e ".[emulator,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest tests

# Skips the tests marked slow (Airflow stacks, whole DAG runs, emulator processes): tests/conftest.py.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" tests

# The publishing check (scripts/check_wheel.py): what pip users get registers with Airflow.
wheel-check: $(STAMP)
	$(PY) scripts/check_wheel.py

chaos: $(STAMP)
	$(PY) scripts/chaos.py

# Not part of make test: the figures need a quiet machine (scripts/bench.py ends with a bench: line).
bench: $(STAMP)
	$(PY) scripts/bench.py $(if $(QUICK),--quick)

# make mutate MODULES=hooks,status (default: all of docs/mutation.md) SAMPLE=all (default: 16 a module) JOBS=2
MODULES ?=
SAMPLE ?=
JOBS ?= 2
mutate: $(STAMP)
	$(PY) scripts/mutate.py run --jobs $(JOBS) $(if $(MODULES),--modules $(MODULES)) $(if $(SAMPLE),--sample $(SAMPLE))

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV)
