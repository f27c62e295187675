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

.PHONY: setup book test clean

$(STAMP): requirements.txt pyproject.toml
	@echo "Setting up $(VENV) (torch: $(TORCH_SPEC))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q -r requirements.txt 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q -e . 2>&1 | $(QUIET_PIP)
	touch $@

setup: $(STAMP)

book: setup
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "The book is at file://$(abspath _build/html/index.html)"

test: setup
	LINATTN_PROFILE=ci $(BIN)/python -m pytest --nbval-lax --nbval-current-env tests book

clean:
	rm -rf _build .cache
