# Two commands set up everything on a fresh machine:
#   make run    install into .venv, then run the main job on the default data
#   make test   install into .venv (with test tools), then run ruff and the test suite
# Data: $V4COMPACT_DATA if set, else ../shared/v4data when it exists, else the per-user cache
# (filled by 'v4compact data fetch').

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
OUT ?= out
ifeq ($(origin V4COMPACT_DATA), undefined)
ifneq ($(wildcard ../shared/v4data/README.md),)
export V4COMPACT_DATA := $(abspath ../shared/v4data)
endif
endif

.PHONY: install browser run test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,export,web]"
	touch $@

install: $(VENV)/.installed

# Headless Chromium for the explorer's browser tests (Debian's package; Playwright drives it).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The main job: check the data (fetching what the explorer needs when it is missing), build the
# explorer's assets (incremental: a second run only serves), and start the explorer.
SITE_OPTS ?= --seeds 3 --steps 100
HOST ?= 127.0.0.1
PORT ?= 8000
run: install
	$(BIN)/v4compact data status
	$(BIN)/v4compact data fetch responses compact-models shared-models images:190923 images:201025 images:210225
	$(BIN)/v4compact site build $(SITE_OPTS)
	$(BIN)/v4compact serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

test: lint browser
	$(BIN)/pytest -q

bench: install
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_model_load.py
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_synthesis.py --neurons 219 --steps 100
	$(PY) benchmarks/load_test.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
