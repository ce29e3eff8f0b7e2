# The two commands of the README: `make demo` (the main job) and `make test` (what CI runs).
# Both set up a fresh machine first (scripts/setup.sh is idempotent and fast when warm).
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit e2e clean-clusters

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/heatsched demo

test: setup lint
	.venv/bin/pytest -q $(PYTEST_ARGS) tests e2e

# ruff over everything, mypy --strict over the package ([tool.ruff] and [tool.mypy] in pyproject.toml)
lint:
	.venv/bin/ruff check operator tests e2e benchmarks
	.venv/bin/mypy

unit:
	.venv/bin/pytest -q tests

e2e:
	.venv/bin/pytest -q e2e

clean-clusters:
	.venv/bin/heatsched cluster down --all
