# Two entry points: `make demo` (the main job, on the embedded file:// store) and `make test`.
# Both create .venv and install the project with its dev extra on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m s3db_nb.demo

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-data build dist *.egg-info
