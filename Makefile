# Two commands set up everything on a fresh machine:
#   make run    install into .venv, then run the main job on the default data
#   make test   install into .venv (with test tools), then run ruff and the test suite
# Data: $V4COMPACT_DATA if set, else ../shared/v4data when it exists, else the per-user cache
# (filled by 'v4compact data fetch').
# PyTorch: pip picks the build for this machine (on Linux with PyPI that is the CUDA build,
# several GB); TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
OUT ?= out
TORCH_INDEX ?=
ifeq ($(origin V4COMPACT_DATA), undefined)
ifneq ($(wildcard ../shared/v4data/README.md),)
export V4COMPACT_DATA := $(abspath ../shared/v4data)
endif
endif

.PHONY: install vendor browser run test lint bench clean

# The static site's JavaScript runtime (TensorFlow.js, pinned in frontend/package-lock.json)
# from the npm registry, copied into the package (src/v4compact/web/static/vendor/, not in git);
# a wheel built after it ships those files, so its users need no Node.js.
VENDOR := src/v4compact/web/static/vendor/versions.json
$(VENDOR): frontend/package.json frontend/package-lock.json frontend/build.mjs
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

vendor: $(VENDOR)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[test,export,web,nwb]"
	touch $@

install: $(VENV)/.installed $(VENDOR)

# Headless Chromium for the explorer's browser tests (Debian's package; Playwright drives it).
# apt-get fails at once while another apt or dpkg holds its lock: wait for it (up to 10 min).
APT_LOCK_WAIT_S ?= 600
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  apt() { waited=0; \
	    until out=$$($$SUDO env DEBIAN_FRONTEND=noninteractive apt-get \
	        -o DPkg::Lock::Timeout=$(APT_LOCK_WAIT_S) "$$@" 2>&1); do \
	      case "$$out" in *"Could not get lock"*|*"Unable to lock"*) ;; \
	        *) echo "$$out" >&2; return 1;; esac; \
	      if [ $$waited -ge $(APT_LOCK_WAIT_S) ]; then echo "$$out" >&2; return 1; fi; \
	      [ $$waited -gt 0 ] || echo "waiting for another apt/dpkg to finish..."; \
	      sleep 5; waited=$$((waited + 5)); \
	    done; }; \
	  apt update -qq && apt install -y -qq chromium; }

# The main job: check the data (fetching what the explorer needs when it is missing) and start
# the explorer. It answers at once and computes the neuron pages that are not built yet in the
# background (a visited neuron first); 'v4compact site build' precomputes them offline.
# SERVE_OPTS: e.g. --no-build, --site-steps 100 --site-seeds 3 (the defaults), --cache-dir DIR.
SERVE_OPTS ?=
HOST ?= 127.0.0.1
PORT ?= 8000
# 'data status' exits 1 on corrupt files; the fetch that follows replaces them.
run: install
	-$(BIN)/v4compact data status
	$(BIN)/v4compact data fetch responses compact-models shared-models images:190923 images:201025 images:210225
	$(BIN)/v4compact serve --host $(HOST) --port $(PORT) $(SERVE_OPTS)

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
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache frontend/node_modules src/v4compact/web/static/vendor
