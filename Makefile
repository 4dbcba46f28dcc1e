# Set-up and entry points. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)

.PHONY: demo test test-fast browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,dask,tune,live,search,track]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mlstrat run configs/demo.yaml --out reports/demo

# Two pytest workers (each test file stays on one worker, so module fixtures are
# built once): 7 to 10 minutes on two cores instead of 14.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile tests

# The inner loop: every test but those marked slow (whole runs, Keras training,
# end-to-end scripts); under 3 minutes on two cores. `make test` runs them all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not slow" tests

# Headless Chromium renders the HTML report in the tests; where it cannot be
# installed (no root, no apt), those tests skip with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 \
	      || echo "note: chromium could not be installed; browser tests will be skipped"; \
	  else echo "note: chromium not available (needs root and apt-get); browser tests will be skipped"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) build *.egg-info
