# Makefile — entry points for developers and CI. Every target that needs the virtualenv first
# runs scripts/setup.sh, which installs the Debian packages and .venv only when missing
# (a no-op run takes well under 2 s).

.PHONY: venv demo test lint bench clean

VENV := .venv
PY := $(VENV)/bin/python
# Only lint directories that exist (git does not keep empty ones).
LINT_PATHS := $(wildcard src tests bench)

venv:
	@bash scripts/setup.sh

demo: venv
	$(PY) -m isthmus.demo

# Lint, the import layers (import-linter, contracts in .importlinter), type check (mypy over
# src/, configured in pyproject.toml) and the whole test suite;
# all always run, and the target fails if any fails.
# pytest's exit code 5 (no tests collected) counts as a failure. As root, setup also installs
# the real OpenStack test site's packages, and the tests that need PostgreSQL or that site
# fail (instead of skipping) when they cannot have it.
# Setup also makes .venv-ansible (Ansible for tests/consumers, 1.5 to 3 min the first time; not
# for `make demo`), and the Ansible test fails instead of skipping without it.
ROOT_USER := $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)
test:
	@bash scripts/setup.sh --ansible $(if $(filter 1,$(ROOT_USER)),--openstack)
	@lint=0; $(VENV)/bin/ruff check $(LINT_PATHS) || lint=$$?; \
	layers=0; $(VENV)/bin/lint-imports || layers=$$?; \
	types=0; $(VENV)/bin/mypy src || types=$$?; \
	tests=0; ISTHMUS_REQUIRE_POSTGRES=$(ROOT_USER) ISTHMUS_REQUIRE_OPENSTACK=$(ROOT_USER) \
		ISTHMUS_REQUIRE_ANSIBLE=1 \
		$(VENV)/bin/pytest -q -ra --durations=15 || tests=$$?; \
	if [ $$lint -ne 0 ]; then echo "make test: ruff check failed (exit $$lint)" >&2; fi; \
	if [ $$layers -ne 0 ]; then echo "make test: lint-imports failed (exit $$layers)" >&2; fi; \
	if [ $$types -ne 0 ]; then echo "make test: mypy failed (exit $$types)" >&2; fi; \
	if [ $$tests -ne 0 ]; then echo "make test: pytest failed (exit $$tests)" >&2; fi; \
	[ $$lint -eq 0 ] && [ $$layers -eq 0 ] && [ $$types -eq 0 ] && [ $$tests -eq 0 ]

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/lint-imports

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .venv-ansible .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
