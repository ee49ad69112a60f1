# One virtual environment in .venv, torch installed first so that no CUDA build is pulled on a CPU
# machine. GPU users: make TORCH_INDEX=https://download.pytorch.org/whl/cu124 venv
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv run test lint quickstart report clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" -e ".[test]"
	touch $(STAMP)

run: venv
	$(VENV)/bin/bsnn-bench run studies/full_factorial.yaml --workers 2
	$(VENV)/bin/bsnn-bench report

quickstart: venv
	$(VENV)/bin/bsnn-bench run studies/quickstart.yaml
	$(VENV)/bin/bsnn-bench report --study quickstart

report: venv
	$(VENV)/bin/bsnn-bench report

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check harness tricks models tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache reports/*/ results.sqlite
