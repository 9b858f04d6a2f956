# tengen: `make demo` runs site.yml on the sandbox VM; `make test` runs every test tier.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
export PATH := $(abspath $(VENV))/bin:$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# The slow tiers, each scenario once per run.
MOLECULE_SCENARIOS ?= base docker_engine sqlite_backup default
PYTEST ?= pytest

.PHONY: bootstrap bootstrap-test demo sandbox sandbox-destroy site smoke deploy status logs lint unit molecule aws e2e test clean

bootstrap:
	@scripts/bootstrap

bootstrap-test:
	@scripts/bootstrap --test

## The first README command: a sandbox VM, then the whole site.yml on it.
demo: bootstrap sandbox site smoke

sandbox:
	ansible-playbook playbooks/sandbox.yml

sandbox-destroy:
	ansible-playbook playbooks/sandbox.yml -e state=absent

site:
	ansible-playbook site.yml

## The sandbox's URL and a one-line check through HTTPS, /api and /ws.
smoke:
	@echo "tengen is up: https://localhost:8443 (root CA: .sandbox/caddy-root.crt)"
	@python3 scripts/smoke https://localhost:8443 .sandbox/caddy-root.crt

## A release of the current files/ (or -e game_stack_backend_image=... via ARGS), health-gated.
deploy:
	ansible-playbook playbooks/deploy.yml $(ARGS)

## The game VM at a glance, each problem on its own line (PROBLEM ...); changes nothing.
status:
	ansible-playbook playbooks/status.yml $(ARGS)

## The stack's logs on the game VM: make logs SERVICE=backend SINCE=10m FOLLOW=1 [TAIL=200] [HOST=...]
logs:
	@scripts/logs $(if $(SERVICE),--service '$(SERVICE)') $(if $(SINCE),--since '$(SINCE)') \
		$(if $(TAIL),--tail '$(TAIL)') $(if $(HOST),--host '$(HOST)') $(if $(INVENTORY),-i '$(INVENTORY)') \
		$(if $(filter 1 yes true,$(FOLLOW)),--follow)

## The second README command: every tier, fastest first.
test: bootstrap-test lint unit aws molecule e2e

lint:
	yamllint -s .
	ruff check .
	ruff format --check .
	ansible-lint

unit:
	$(PYTEST) -m "not docker and not e2e and not aws" tests

aws:
	$(PYTEST) -m aws tests

molecule:
	@for s in $(MOLECULE_SCENARIOS); do echo "== molecule test -s $$s"; molecule test -s $$s; done

e2e:
	$(PYTEST) -m "docker or e2e" tests

clean: sandbox-destroy
	rm -rf .sandbox
