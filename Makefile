# The two commands of the README: `make demo` (the main job) and `make test` (what CI runs).
# Both set up a fresh machine first (scripts/setup.sh is idempotent and fast when warm).
PYTEST_ARGS ?=

.PHONY: setup demo test unit e2e clean-clusters

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/heatsched demo

test: setup
	.venv/bin/pytest -q $(PYTEST_ARGS) tests e2e

unit:
	.venv/bin/pytest -q tests

e2e:
	.venv/bin/pytest -q e2e

clean-clusters:
	.venv/bin/heatsched cluster down --all
