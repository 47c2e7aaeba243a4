# driftline — every target bootstraps what it needs (pnpm, packages, the local stack).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export KAFKAJS_NO_PARTITIONER_WARNING := 1

PNPM_VERSION := 10
PNPM := pnpm
# Where `make bootstrap` installs pnpm when none is on PATH: in the checkout, so no root is needed
# (`npm install -g` into Node's own prefix needs root on a system Node).
PNPM_PREFIX := $(CURDIR)/.cache/pnpm
export PATH := $(PNPM_PREFIX)/bin:$(PATH)
NODE_MIN := 20.19

.PHONY: help bootstrap build check test test-unit test-integration demo bench chaos stack-up stack-down stack-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# corepack's own pnpm download fails its signature check with this Node; npm's install works.
# A pnpm on PATH counts only when it runs and is major $(PNPM_VERSION): corepack's shim (after
# `corepack enable`) exists but fails with a stack trace, and pnpm 7 or 8 cannot read the lockfile.
# Errors only (a silent reporter hid why an install failed: a registry down said nothing).
bootstrap: ## check Node, install pnpm (when missing, into .cache/pnpm) and the workspace packages
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("driftline needs Node >= $(NODE_MIN) (package.json engines); this is " + process.version); process.exit(1); }'
	@v=$$(COREPACK_ENABLE_DOWNLOAD_PROMPT=0 pnpm --version 2>/dev/null) && [ "$${v%%.*}" = "$(PNPM_VERSION)" ] || npm install --global --prefix "$(PNPM_PREFIX)" --loglevel=error --no-fund --no-audit pnpm@$(PNPM_VERSION)
	@$(PNPM) install --frozen-lockfile --prefer-offline --loglevel=error

# One esbuild bundle of the CLI (services run through `driftline run`): services/cli/dist.
build: bootstrap ## compile the driftline command to JavaScript (then: pnpm exec driftline --help)
	@$(PNPM) -s build

check: bootstrap ## types, lint, format and dead code (knip)
	@$(PNPM) -s typecheck
	@$(PNPM) -s lint
	@$(PNPM) -s knip

test: check build ## everything: check, unit tests, integration tests on the real local stack
	@mkdir -p test-artifacts && rm -f test-artifacts/vitest.json
	@$(PNPM) -s exec vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json; \
	  status=$$?; node test/scripts/summary.mjs test-artifacts/vitest.json || status=1; exit $$status

test-unit: bootstrap ## unit tests only (no servers)
	@$(PNPM) -s exec vitest run --project unit

test-integration: bootstrap ## integration tests only (starts the local stack when none runs)
	@$(PNPM) -s exec vitest run --project 'integration*'

# SCENARIO=bad-candidate also sends a deliberately bad version into shadow (rejected on live labels).
demo: bootstrap ## the whole pipeline end to end on the local stack (SCENARIO=retrain|bad-candidate)
	@DRIFTLINE_DEMO_SCENARIO=$(or $(SCENARIO),retrain) $(PNPM) -s demo

bench: build ## benchmarks; last line is a JSON summary, also in bench/results/latest.json
	@$(PNPM) -s bench

# CHAOS_DURATION (default 2m; e.g. 10m), CHAOS_RATE, CHAOS_SEED: see test/chaos/README.md.
chaos: build ## kill, pause and restart everything under hostile traffic; last line is a JSON verdict
	@$(PNPM) -s chaos

stack-up: bootstrap ## start Kafka, the Schema Registry and Redis as local processes
	@$(PNPM) -s stack up

stack-down: bootstrap ## stop exactly the processes stack-up started
	@$(PNPM) -s stack down

stack-status: bootstrap ## show the local stack's processes and endpoints
	@$(PNPM) -s stack status

clean: stack-down ## stop the stack and remove caches of this checkout
	rm -rf .stack .cache node_modules
