# Two entry points: `make demo` (the main job, on the embedded file:// store) and `make test`.
# Both create .venv on first use: the demo installs only the demo extra (notebooks, JupyterLab,
# plots), the tests the dev extra (which includes it).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

NODE_COMPAT := tests/compat/node
NODE_STAMP := $(NODE_COMPAT)/node_modules/.installed

.PHONY: demo test clean compat-docs bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# pip's own progress is shown: a first install downloads for a minute or two
$(DEMO_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then \
		echo "the dev extra is installed; it includes the demo's"; \
	else \
		test -x $(PY) || $(PYTHON) -m venv $(VENV); \
		$(PY) -m pip install --upgrade pip; \
		$(PY) -m pip install --progress-bar on -e '.[demo]'; \
	fi
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m s3db_nb.demo
	@echo "open the tutorials in JupyterLab: $(VENV)/bin/jupyter lab notebooks/"

# The real s3db.js for tests/compat (live round trips). Without npm the live tests skip;
# CI sets S3DB_REQUIRE_NODE=1 so they fail instead.
$(NODE_STAMP): $(NODE_COMPAT)/package.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(NODE_COMPAT) && npm install --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found: the live s3db.js compatibility tests will be skipped"; \
	fi

# lint and format first (seconds), then the suite (the layers contract is tests/test_layers.py)
test: $(STAMP) $(NODE_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# Every benchmark of issue #17 with modest N (a few minutes), one table of ratios against their
# targets; starts and stops its own SeaweedFS, runs s3db.js from tests/compat/node. Not part of `make test`.
bench: $(STAMP) $(NODE_STAMP)
	$(PY) benchmarks/run_all.py

# Re-run the compatibility tests and regenerate docs/compat.md from their outcomes.
compat-docs: $(STAMP) $(NODE_STAMP)
	rm -f build/compat/results-*.json
	S3DB_REQUIRE_NODE=1 $(PY) -m pytest -q -p no:randomly tests/compat
	$(PY) tests/compat/render_docs.py

clean:
	rm -rf $(VENV) demo-data demo-output build dist *.egg-info
