# Two entry points for a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: book test test-slow clean reproduce reproduce-all notebooks

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

book: $(VENV)/.installed notebooks  ## build the website with the cpu profile (reuses finished runs in runs/)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# Colab opens .ipynb files: every chapter book/NAME.md has a generated book/NAME.ipynb (no outputs), committed
# beside it, which the Colab button of its page opens. Run after editing a chapter; tests/test_colab.py checks.
CHAPTERS := $(shell grep -l '^kernelspec:' $(patsubst %,%.md,$(shell sed -n 's/^ *- file: //p' _toc.yml)))
notebooks: $(CHAPTERS:.md=.ipynb)

book/%.ipynb: book/%.md | $(VENV)/.installed
	$(VENV)/bin/jupytext --to ipynb --update --output $@ $<  # --update keeps the cell ids: small diffs

test: $(VENV)/.installed  ## unit tests, phenomenon tests, and nbmake on every chapter notebook at the smoke profile
	$(PY) -m pytest -n 2 --dist worksteal --durations=25  # two workers, one per core, an idle one takes tests queued on the other; beside them nbmake executes copies of book/*.ipynb and the site is built from them (tests/smoke_book.py)

test-slow: $(VENV)/.installed  ## the image first-act retraining tests that `make test` leaves out (about 30 min)
	$(PY) -m pytest -n 2 --dist worksteal -m slow --durations=5

reproduce: $(VENV)/.installed  ## retrain the headline cpu runs on two workers (~1.6 h); reproduce/reproduce.md compares
	$(PY) -m ldrkit reproduce --headline --workers 2 --profile cpu --out reproduce

reproduce-all: $(VENV)/.installed  ## retrain every stored cpu run on two workers (~7.4 h)
	$(PY) -m ldrkit reproduce --workers 2 --profile cpu --out reproduce

clean:
	rm -rf _build
