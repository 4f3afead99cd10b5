# One command per job. `make demo` runs the whole DAG on the embedded default; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench-teacher bench-train bench-loop stack-up stack-down deploy clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "vqa-distill needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/vqa-distill demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench-teacher: install
	$(PY) bench/teacher.py

bench-train: install
	$(PY) bench/train.py

bench-loop: install
	$(PY) bench/loop.py

STACK_ARGS ?= --offline-teacher --gpu-worker cpu

stack-up: install
	$(VENV)/bin/vqa-distill stack up $(STACK_ARGS)

stack-down:
	-$(VENV)/bin/vqa-distill stack down

deploy: install
	$(VENV)/bin/vqa-distill deploy

clean: stack-down
	rm -rf data/runs data/models .stack
