# The two commands a user needs: `make run` (the tour) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check --quiet

.PHONY: run quick test bench clean

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
	touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
