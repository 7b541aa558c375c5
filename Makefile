# cutover: the two commands are `make demo` (the main job on the local sandbox)
# and `make test` (every test and static check). Both set themselves up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup haproxy demo demo-k8s test lint sanity unit integration clean

$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 (3.11) is required"; exit 1; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# ansible.cfg finds this checkout as the collection cutover.bluegreen through this link.
LINK := .tmp/collections-link/ansible_collections/cutover/bluegreen
$(LINK):
	mkdir -p $(dir $(LINK))
	ln -sfn ../../../.. $(LINK)

# The sandbox's load balancer is HAProxy: Debian's package, installed when it is missing.
haproxy:
	@if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || [ -n "$$CUTOVER_HAPROXY" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "HAProxy 2.4+ is required (the sandbox's load balancer): install it with your package manager, e.g. brew install haproxy"; \
		exit 1; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	echo "installing haproxy (the sandbox's load balancer) with apt-get"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy

setup: $(STAMP) $(LINK) haproxy

demo: setup
	$(PY) -m sandbox demo

# The same release, rollback and teardown on the Kubernetes sandbox (-e platform=kubernetes).
demo-k8s: setup
	$(PY) -m sandbox demo --kubernetes

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	tests/lint/run
	tests/release/run

sanity: setup
	tests/sanity/run

unit: setup
	$(PY) -m pytest tests/unit

integration: setup
	$(PY) -m pytest tests/integration

# The test files run side by side (most wait on health checks, metric periods and leases, not on the CPU);
# one worker runs a whole file, so a file's tests share its sandbox.
TEST_WORKERS ?= 3

test: setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory sanity
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	-$(PY) -m sandbox stop
	rm -rf .tmp .sandbox .pytest_cache .ruff_cache
