# The two commands a fresh machine needs: `make demo` and `make test`. Everything installs into .venv;
# the test servers (Kafka, Kubernetes, containerd, helm) and the images are fetched or built into $(ALGORUN_TESTBIN).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
export ALGORUN_TESTBIN ?= $(HOME)/.cache/algorun/testbin

.PHONY: demo test test-unit test-browser testbin image cluster bench lint crds lock clean console-assets chromium

# The virtualenv is (re)built when the lock file changes. uv is bootstrapped with pip, then installs the lock.
# Bytecode is compiled at install (site-packages, then algorun's own modules): every component is a process of its
# own, and where PYTHONDONTWRITEBYTECODE is set (CI here) each one compiled every module it imports from source
# again, about a second of CPU per process start. A module edited later is recompiled in memory, never misread.
$(VENV)/.runtime-stamp: requirements/runtime.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "algorun needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install -q --compile-bytecode --python $(PY) -r requirements/runtime.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	$(PY) -m compileall -q src/algorun
	@touch $@

$(VENV)/.dev-stamp: $(VENV)/.runtime-stamp requirements/dev.lock
	$(UV) pip install -q --compile-bytecode --python $(PY) -r requirements/dev.lock
	@touch $@

# The text-transform example end to end on the embedded log: an HTTP, an executable and a python-function algo,
# fanned out into an event hook whose webhook is a local receiver (see examples/text-transform/demo.py).
demo: $(VENV)/.runtime-stamp
	$(PY) examples/text-transform/demo.py

test: $(VENV)/.dev-stamp testbin console-assets chromium lint
	$(PY) -m pytest tests

# Unit tests only: no servers, no builds.
test-unit: $(VENV)/.dev-stamp
	$(PY) -m pytest tests/unit

# The web console's browser tests alone (tests/browser): the front end rebuilt, Chromium installed.
test-browser: $(VENV)/.dev-stamp console-assets chromium
	$(PY) -m pytest tests/browser

# The console's front end (frontend/: TypeScript, laid out by dagre, bundled by esbuild) built into the Python
# package (src/algorun/console/static), where it is also committed: `pip install` and `make demo` need no Node.js.
# The build is deterministic, so rebuilding a clean checkout changes nothing.
frontend/node_modules/.package-lock.json: frontend/package-lock.json frontend/package.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

console-assets: frontend/node_modules/.package-lock.json
	cd frontend && npm run --silent build

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser of its own).
# Root installs it with apt-get when it is missing.
chromium:
	@command -v chromium >/dev/null || { \
	  test "$$(id -u)" = 0 || { echo "chromium is missing: run \`sudo apt-get install chromium\`" >&2; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

testbin: $(VENV)/.dev-stamp
	$(PY) -m tests.support.testbin build

# algorun's image and the examples' image, built with buildah (no Docker daemon, no registry) on a base
# bootstrapped from Debian packages; written as docker-archive tarballs (docker load, ctr images import, kind
# load image-archive take them). Root, on Debian: missing packages are installed with apt-get.
image: $(VENV)/.dev-stamp
	$(PY) -m tests.support.testbin build node-packages base-image image examples-image
	@echo "images: $(ALGORUN_TESTBIN)/images/algorun.tar (algorun/algorun), $(ALGORUN_TESTBIN)/images/examples.tar (algorun/examples)"

# A single-node Kubernetes on this machine (root): the images loaded, a Kafka broker with Strimzi's stand-in,
# the chart installed. Prints KUBECONFIG; Ctrl-C stops it and removes everything it created.
cluster: $(VENV)/.dev-stamp
	$(PY) -m tests.support.cluster

# Each benchmark runs as a module from the repository root (benchmarks/operator.py must not shadow the
# standard library's `operator`, which a script's own directory on sys.path would do). Modules named _* are
# the benchmarks' shared helpers, not benchmarks.
# Each prints its figures and a `target:` line per figure that has a target (benchmarks/_targets.py); those lines
# are collected in a file and printed again at the end, with the modules that failed and the run's duration.
bench: $(VENV)/.dev-stamp testbin
	@targets=$$(mktemp); failed=""; started=$$(date +%s); \
	for b in benchmarks/[!_]*.py; do m=$$(basename $$b .py); echo "== $$m"; \
		BENCH_TARGETS=$$targets $(PY) -m benchmarks.$$m || failed="$$failed $$m"; done; \
	$(PY) -m benchmarks._targets $$targets; rm -f $$targets; \
	echo "make bench took $$(( $$(date +%s) - started )) s"; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

lint: $(VENV)/.dev-stamp
	$(VENV)/bin/ruff check src tests benchmarks tools images examples
	$(VENV)/bin/ruff format --check src tests benchmarks tools images examples
	$(VENV)/bin/mypy src

# Regenerate the committed CRDs from the api models, and the chart's copy (tests fail when either is stale).
crds: $(VENV)/.runtime-stamp
	$(PY) -m algorun.cli.main crds --output-dir deploy/crds
	$(PY) -m algorun.cli.main crds --output-dir charts/pipeline-operator/crds

# Re-resolve the lock files from pyproject.toml.
lock: $(VENV)/.runtime-stamp
	$(UV) pip compile pyproject.toml --python-version 3.11 --no-header -q -o requirements/runtime.lock
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -q -o requirements/dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
