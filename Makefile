# Two commands for a fresh machine:  make run   (set up, index seeds/, start the app on http://127.0.0.1:7860)
#                                    make test  (set up what the tests need, lint, run the tests)
# Every step is idempotent: a second run finds the stamps and the prepared models and does no heavy work.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PIP    := $(BIN)/pip install -q -c constraints.txt
# llama-cpp-python compiles from source (about 5 minutes on 2 cores); pip caches the wheel afterwards.
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test setup setup-dev models models-test chromium index lint format bench clean

run: setup models index
	$(PY) app.py

test: setup-dev models-test chromium lint
	$(PY) -m pytest -q

setup: $(VENV)/.runtime-installed

setup-dev: setup $(VENV)/.dev-installed

# torch first and alone: its CPU build lies on local disk, and any later package that asks for "torch" then
# finds it satisfied instead of pulling a multi-GB CUDA build.
$(VENV)/.runtime-installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) pip
	$(PIP) torch
	$(PIP) -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# The tests also cover the optional scale-out extras (the Milvus engine, Ray indexing); `make run` needs neither.
$(VENV)/.dev-installed: requirements-dev.txt requirements-milvus.txt requirements-ray.txt $(VENV)/.runtime-installed
	$(PIP) -r requirements-dev.txt -r requirements-milvus.txt -r requirements-ray.txt
	touch $@

# make run prepares the default answer model ("quality", 1.1 GB); make test what the tests use: the tiny "test"
# model for most, and "fast" and "quality" for the tests that check the real models' behaviour (about 30 s more).
models: setup
	$(PY) -m rag models embedding quality

models-test: setup
	$(PY) -m rag models embedding test fast quality

# The browser tests drive the system Chromium (Playwright's own browser download needs the network).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else echo "The browser tests need Chromium (skipped without it): sudo apt-get install -y chromium"; fi; }

index: setup
	$(PY) -m rag index

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup-dev
	$(PIP) -r requirements-bench.txt
	$(PY) bench/retrieval.py

clean:
	rm -rf $(VENV) index/gen-* index/CURRENT index/.tmp-* .pytest_cache .ruff_cache
