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

run: install
	$(BIN)/v4compact data status
	$(BIN)/v4compact plot session 190923 --out $(OUT)/session_190923.png

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

test: lint browser
	$(BIN)/pytest -q

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
