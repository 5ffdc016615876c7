# servebench: `make run` (the main job) and `make test` (the suite) do all the set-up themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.servebench-installed
# torch==2.13.0 is a CPU build on this machine kind; an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup run test test-unit test-integration bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(VENV)/bin/servebench run

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/export_time.py
	$(PY) benchmarks/loadgen_vs_perf_analyzer.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .cache model_repo/*/ runs reports
