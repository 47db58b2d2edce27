# nats-opa-callout — every entry point a developer, policy author or CI needs.
# `make test` is what .ci/run calls; `make run` is the one-command demo.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS_BIN := $(CURDIR)/.tools/bin
export PATH := $(TOOLS_BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export NATS_SERVER_BIN ?= $(TOOLS_BIN)/nats-server
export NATS_SERVER_210_BIN ?= $(TOOLS_BIN)/nats-server-2.10
export OPA_BIN ?= $(TOOLS_BIN)/opa

# The policy pipeline works on any policy directory: make policy POLICY_DIR=mine
POLICY_DIR ?= policies
# The directory's own capabilities.json, else this repository's (the builtins the service's wasm engine supports).
CAPABILITIES ?= $(firstword $(wildcard $(POLICY_DIR)/capabilities.json) policies/capabilities.json)
ENTRYPOINT ?= nats/authz/decision
# Where policy-test and policy-build write coverage.json and bundle.tar.gz.
POLICY_OUT ?= build
# Decision-log mask rule, for services with policy.mask_entrypoint: the example's (policies/authz/mask.rego) by
# default for policies/, none for other directories; set it to build one, empty to leave it out.
MASK_ENTRYPOINT ?= $(if $(filter policies policies/,$(POLICY_DIR)),nats/authz/mask,)
# The policy's own files (capabilities apply to these); *_test.rego files may use any builtin.
POLICY_SOURCES = $$(find $(POLICY_DIR) -name '*.rego' ! -name '*_test.rego' ! -path '*/.*' | LC_ALL=C sort)
NODE_TEST := node --import tsx --test --test-concurrency=1 --test-reporter=spec

.PHONY: help tools deps build typecheck lint fmt test test-unit test-integration test-reliability \
        test-topology policy-fmt policy-check policy-test policy-build policy capabilities docs run bench clean browser pack-check

help: ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

tools: ## build/pin nats-server (latest + 2.10) and opa into the user cache, link into .tools/bin
	@bash scripts/tools.sh

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json ## install npm dependencies (npm ci)

build: deps ## compile TypeScript to dist/
	npx tsc -p tsconfig.build.json

typecheck: deps ## tsc --noEmit over src, test, bench
	npx tsc -p tsconfig.json --noEmit

lint: deps ## eslint + prettier check
	npx eslint .
	npx prettier --check .

fmt: deps ## format TypeScript and Rego
	npx prettier --write .
	$(OPA_BIN) fmt -w $(POLICY_DIR)

## ---- policy author loop ----
policy-fmt: tools ## opa fmt --fail (no file would change)
	$(OPA_BIN) fmt --list --fail $(POLICY_DIR)

policy-check: tools ## opa check --strict: the policy against the capabilities, tests with any builtin
	$(OPA_BIN) check --strict --capabilities $(CAPABILITIES) $(POLICY_SOURCES)
	$(OPA_BIN) check --strict $(POLICY_DIR)

policy-test: tools ## opa test with a 90% coverage gate
	@mkdir -p $(POLICY_OUT)
	$(OPA_BIN) test --coverage --threshold 90 $(POLICY_DIR) > $(POLICY_OUT)/coverage.json || { \
	  node -e 'const c=require("$(abspath $(POLICY_OUT))/coverage.json");console.error("coverage "+c.coverage+"%");for(const[f,v]of Object.entries(c.files||{}))if((v.coverage??100)<100)console.error(" "+f+" "+v.coverage+"% uncovered lines: "+JSON.stringify((v.not_covered||[]).map(r=>r.start.row)))' ; \
	  $(OPA_BIN) test $(POLICY_DIR); exit 1; }
	@node -e 'console.log("opa test: coverage "+require("$(abspath $(POLICY_OUT))/coverage.json").coverage.toFixed(1)+"%")'

policy-build: tools ## bundle.tar.gz (wasm) of POLICY_DIR (default policies/) into POLICY_OUT (default build/)
	@mkdir -p $(POLICY_OUT)
	$(OPA_BIN) build -t wasm -e $(ENTRYPOINT) $(if $(MASK_ENTRYPOINT),-e $(MASK_ENTRYPOINT)) --capabilities $(CAPABILITIES) --ignore cases --ignore '*_test.rego' --ignore testdata --ignore capabilities.json \
	  -r "$$(cd $(POLICY_DIR) && find . -type f \( -name '*.rego' -o -name data.json -o -name data.yaml -o -name data.yml \) ! -name '*_test.rego' ! -path '*/.*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)" \
	  -o $(POLICY_OUT)/bundle.tar.gz $(POLICY_DIR)

policy: policy-fmt policy-check policy-test policy-build ## the whole policy pipeline

capabilities: deps tools ## regenerate policies/capabilities.json from the pinned opa (--check in tests)
	node --import tsx scripts/capabilities.ts

docs: deps ## regenerate docs/configuration.md from the config schema (CONFIG_FIELDS)
	node --import tsx scripts/gen-config-docs.ts

## ---- tests ----
test-unit: deps tools ## in-process unit and property tests (real opa for compiled fixtures)
	@mkdir -p build
	$(NODE_TEST) $$(find test/unit test/property -name '*.test.ts' | sort)

test-integration: deps tools build browser ## against real nats-server (latest and 2.10), Chromium, npm pack
	$(NODE_TEST) $$(find test/integration -name '*.test.ts' | sort)

test-reliability: deps tools build ## reliability suite (RELIABILITY_SCALE=full for the full size)
	$(NODE_TEST) $$(find test/reliability -name '*.test.ts' 2>/dev/null | sort)

test-topology: deps tools ## clusters, gateways, leaf nodes from init's configs (TOPOLOGY_SCALE=full for the full size)
	$(NODE_TEST) $$(find test/topology -name '*.test.ts' 2>/dev/null | sort)

test: deps tools ## everything CI runs: lint, typecheck, policy pipeline, unit, integration, reduced reliability and topology
	@mkdir -p build
	$(MAKE) --no-print-directory lint typecheck policy test-unit test-integration test-reliability test-topology

browser: ## headless Chromium for the browser test: apt-get install chromium when missing and root (else a skip)
	@bash scripts/browser.sh

pack-check: deps build ## npm pack, install the tarball into a temp prefix, run its CLI and scaffold a policy
	$(NODE_TEST) test/integration/pack.test.ts

## ---- run / bench ----
run: deps tools build ## local nats-server + the service + example policies
	node scripts/run.mjs

bench: deps tools build ## benchmarks; writes docs/benchmarks.md
	node --import tsx bench/run.ts

clean:
	rm -rf dist build coverage
