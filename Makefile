# sharecast: `make demo` runs the whole pipeline on a small generated world; `make test` the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
LAKE   ?= lake
OUT    ?= out
SEED   ?= 7
RECORDS ?= 200000

.PHONY: venv demo test test-slow test-cluster lint bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m jobs.demo --lake $(LAKE) --out $(OUT) --share-records $(RECORDS) --seed $(SEED)

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

test-cluster: venv
	$(PY) -m pytest -q -m cluster

lint: venv
	$(PY) -m ruff check .

clean:
	rm -rf $(LAKE) $(OUT) spark-warehouse metastore_db derby.log .pytest_cache
