# The README's two commands: `make demo` and `make test`. Both install what they need.
# Run as root on Debian/Ubuntu (the local lab makes network namespaces).
VENV ?= /opt/django-lab/venv
FAB := $(VENV)/bin/fab

.PHONY: install demo test lint unit down

install:
	bash provision/host.sh $(VENV)

demo: install
	$(FAB) up
	$(FAB) demo
	$(FAB) loadtest --duration 5 --concurrency 16 --label demo

test: install lint
	$(VENV)/bin/pytest -q -ra

unit: install
	$(VENV)/bin/pytest -q -ra tests/unit

lint:
	$(VENV)/bin/ruff check .
	shellcheck -x provision/*.sh .ci/run

down:
	$(FAB) down
