# Two entry points for a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: book test clean reproduce

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

book: $(VENV)/.installed  ## build the website with the cpu profile (reuses finished runs in runs/)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: $(VENV)/.installed  ## unit tests, phenomenon tests and every chapter at the smoke profile
	$(PY) -m pytest

reproduce: $(VENV)/.installed  ## retrain every stored cpu run from scratch; reproduce/reproduce.md compares
	$(PY) -m ldrkit reproduce --profile cpu --out reproduce

clean:
	rm -rf _build
