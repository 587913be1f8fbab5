# Fireside developer tasks. `make run` and `make test` work on a fresh clone: they create the
# virtual environment, build the kernels and fetch the starter models (once, into .cache/models).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export FIRESIDE_MODELS ?= $(CURDIR)/.cache/models
KERNEL_SOURCES := $(wildcard cython_kernels/*.pyx cython_kernels/*.pxd cython_kernels/*.c cython_kernels/*.h)
PROMPT ?= Once upon a time, in a small village by the sea,

.PHONY: install models run test clean

$(VENV)/.installed: pyproject.toml setup.py $(KERNEL_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

$(FIRESIDE_MODELS)/.fetched: $(VENV)/.installed engine/starter_models.py
	$(PY) -m engine fetch-starter --all
	touch $@

models: $(FIRESIDE_MODELS)/.fetched

run: install models
	$(PY) -m engine run -p "$(PROMPT)" -n 96

test: install models
	$(PY) -m pytest -q

clean:
	rm -rf build $(VENV) *.egg-info cython_kernels/*.so cython_kernels/forward.c cython_kernels/quants.c
