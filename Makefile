# Two commands: `make book` builds the HTML, `make test` runs every test. Both set up .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

# CI and this project's machines carry a CPU build of torch 2.13.0 on disk (see DEVELOPERS.md):
# use it there; everywhere else readers get whatever torch their platform gives.
CPU_TORCH_WHEEL := $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl)
TORCH_SPEC ?= $(if $(CPU_TORCH_WHEEL),torch==2.13.0,torch>=2.1)
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }
STAMP := $(VENV)/.installed

.PHONY: setup book test clean web-assets browser-deps book-offline student

$(STAMP): requirements.txt pyproject.toml
	@echo "Setting up $(VENV) (torch: $(TORCH_SPEC))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q -r requirements.txt 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q -e . 2>&1 | $(QUIET_PIP)
	touch $@

setup: $(STAMP)

book: setup
	LINATTN_RECORD_RUNTIMES=1 $(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "The book is at file://$(abspath _build/html/index.html)"

test: setup browser-deps
	LINATTN_PROFILE=ci $(BIN)/python -m pytest --nbval-lax --nbval-current-env tests book

# The browser tests and the offline edition need Debian's Chromium and the npm builds of MathJax,
# require.js and the ipywidgets HTML manager pinned in _config.yml (into .cache/web-assets).
# Missing Debian packages are installed as root or with password-less sudo; otherwise a note says
# so and the browser tests skip (they fail instead where CI is set).
apt_install = { if [ "$$(id -u)" = 0 ]; then as_root=""; elif sudo -n true 2>/dev/null; then as_root="sudo -n"; \
	else echo "NOTE: $(1) is missing; installing it needs root: sudo apt-get install $(1)"; false; fi && \
	echo "Installing $(1) with apt-get" && $$as_root apt-get update -qq && \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; }

web-assets: setup
	@command -v npm >/dev/null || $(call apt_install,npm) || true
	@if command -v npm >/dev/null; then $(BIN)/python scripts/web_assets.py install; \
	else echo "NOTE: no npm, so no browser assets: the browser tests and make book-offline cannot run"; fi

browser-deps: web-assets
	@[ -n "$$LINATTN_CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	$(call apt_install,chromium) || echo "NOTE: no Chromium: the browser tests will skip (and fail where CI is set)"

# The book for a room without internet: MathJax and the widget manager bundled, no CDN.
book-offline: book web-assets
	$(BIN)/python scripts/web_assets.py offline _build/html _build/html-offline

# Every notebook without its solutions, for workshop participants.
student: setup
	$(BIN)/python scripts/student_edition.py book student

clean:
	rm -rf _build .cache student screenshots
