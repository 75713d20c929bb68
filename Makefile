# Slipway: the two commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev-$(shell sha256sum requirements-dev.lock | cut -c1-16)
# `make demo` installs only what the demo runs (the app plus the demo extra: full MLflow
# and scikit-learn), not the test tools; until requirements-demo.lock exists it falls
# back to the dev lock. The dev lock is a superset, so a .venv made by `make test` serves
# the demo as it is.
DEMO_LOCK := $(if $(wildcard requirements-demo.lock),requirements-demo.lock,requirements-dev.lock)
DEMO_STAMP := $(VENV)/.installed-demo-$(shell sha256sum $(DEMO_LOCK) | cut -c1-16)

.PHONY: demo manage test lint bench lock clean install install-demo

$(STAMP): requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	@rm -f $(VENV)/.installed-dev-*
	@touch $@

$(DEMO_STAMP): $(DEMO_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -e $(STAMP) ]; then :; else \
		$(BIN)/python -m pip install --quiet --upgrade "pip>=24" && \
		$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEMO_LOCK); fi
	@rm -f $(VENV)/.installed-demo-*
	@touch $@

install: $(STAMP)
install-demo: $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m apps.demo

# A management command on the demo's state: make manage ARGS="audit_verify"
manage: $(DEMO_STAMP)
	$(BIN)/python -m apps.demo manage $(ARGS)

# The suite runs on PYTEST_WORKERS processes (pytest-xdist, a database each), then the
# hardening tests (real workers, crash points, service restarts) run alone (exit 5, "none
# selected", is fine there).
PYTEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# Regenerate the lock files after changing dependencies in pyproject.toml. The dev lock
# is resolved first; the runtime and demo locks start from a copy of it, so pip-compile
# keeps its pins and they never hold a version the tests did not run.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra demo --extra dev -o requirements-dev.lock pyproject.toml
	cp requirements-dev.lock requirements-demo.lock
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra demo -o requirements-demo.lock pyproject.toml
	cp requirements-dev.lock requirements.lock
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		-o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
