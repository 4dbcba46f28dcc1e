# Set-up and entry points. `make demo` and `make test` create .venv on first use and
# install the exact versions of the committed lock file (hashes checked), then mlstrat
# itself without dependencies: every machine tests the same environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements-lock.txt
EXTRAS := dev,dask,tune,live,search,track
PIP_VERSION := 26.3
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml Makefile | sha256sum | cut -c1-12)
PYTEST := python -m pytest -q -p no:cacheprovider -p no:randomly -n 2 --dist loadfile

.PHONY: demo test test-fast test-shuffled test-latest lock browser lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)

$(STAMP): $(LOCK) pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Regenerates the lock from pyproject.toml's lower bounds: the newest versions they
# allow today, for Linux and Python 3.10-3.12, every extra, with hashes. Commit the
# result after `make test` passes on it.
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)-lock/bin/uv pip compile pyproject.toml --all-extras --universal \
	  --python-version 3.10 --generate-hashes --custom-compile-command "make lock" \
	  --quiet -o $(LOCK)

demo: $(STAMP)
	$(BIN)/mlstrat run configs/demo.yaml --out reports/demo

# Two pytest workers (each test file stays on one worker, so module fixtures are
# built once): 7 to 10 minutes on two cores instead of 14.
test: $(STAMP) browser
	$(BIN)/$(PYTEST) tests

# The inner loop: every test but those marked slow (whole runs, Keras training,
# end-to-end scripts); under 3 minutes on two cores. `make test` runs them all.
test-fast: $(STAMP)
	$(BIN)/$(PYTEST) -m "not slow" tests

# The whole suite in a shuffled order (pytest-randomly: files, classes and tests
# reordered, random seeds reset before each test). The seed is printed first;
# `make test-shuffled SHUFFLE_SEED=N` repeats that order.
ifndef SHUFFLE_SEED
SHUFFLE_SEED := $(shell $(PYTHON) -c 'import random; print(random.randrange(10**6))')
endif
test-shuffled: $(STAMP) browser
	@echo "shuffled order: SHUFFLE_SEED=$(SHUFFLE_SEED)"
	$(BIN)/python -m pytest -q -p no:cacheprovider -p randomly --randomly-seed=$(SHUFFLE_SEED) \
	  -n 2 --dist loadfile tests

# Drift check, not part of `make test`: the newest versions pyproject.toml allows, in
# a separate environment, against the fast suite. docs/testing.md says how to read it.
test-latest:
	rm -rf $(VENV)-latest
	$(PYTHON) -m venv $(VENV)-latest
	$(VENV)-latest/bin/pip install --quiet --upgrade pip
	$(VENV)-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[$(EXTRAS)]'
	$(VENV)-latest/bin/python -m mlstrat.lockfile $(LOCK)
	$(VENV)-latest/bin/$(PYTEST) -m "not slow" tests

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
	rm -rf $(VENV) $(VENV)-lock $(VENV)-latest build *.egg-info
