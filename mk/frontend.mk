# Web UI (frontend/): a MetaMask / EIP-1193 dApp (TypeScript, Vite, viem) built from the ABIs
# `ape compile` writes to .build/__local__.json. Its unit tests run under vitest; its end-to-end
# tests drive Debian's headless Chromium (playwright-core) against a real anvil and deployment,
# and skip with a message only where Chromium cannot be installed.
#
#   make test-frontend                               unit + browser tests (screenshots land in
#                                                    test-artifacts/frontend/)
#   make ui NETWORK=gnosis-chiado                    serve the built UI with every file in
#                                                    deployments/ (a picker) and open that one
#   make ui DEPLOYMENT=deployments/anvil.json        serve the built UI for that one deployment

FRONTEND := frontend
CHROMIUM ?= /usr/bin/chromium
UI_PORT ?= 5173

.PHONY: frontend-install frontend-build chromium test-frontend ui

frontend-install: $(STAMPS)/frontend-npm

$(STAMPS)/frontend-npm: $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	@mkdir -p $(STAMPS)
	@echo "==> installing the web UI's npm dependencies (vite, viem, vitest, playwright-core)"
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's chromium (playwright's own browser download cannot work offline). Installed when we
# are root and apt works; otherwise the browser tests skip and say why.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing Debian chromium for the browser tests (apt-get)"; \
	  apt-get install -y -q chromium >/dev/null 2>&1 \
	    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	    || echo "!! could not install chromium with apt-get: the browser tests will be skipped"; \
	else \
	  echo "!! no chromium at $(CHROMIUM) and not root: the browser tests will be skipped (apt-get install chromium)"; \
	fi

# ABIs -> src/generated/contracts.ts, type-check, bundle into frontend/dist/, and the copy an
# installed package serves (pollen/webui/, package data).
frontend-build: setup frontend-install compile
	cd $(FRONTEND) && npm run --silent build
	@$(PY) -c 'import pollen.ui as u; u.export()'

# the Python suites serve the UI too (pollen ui, the packaged copy)
test-python: frontend-build

test-frontend: setup frontend-build chromium
	cd $(FRONTEND) && npx tsc --noEmit -p tsconfig.e2e.json 2>&1 | $(call tag,web UI)
	cd $(FRONTEND) && npx vitest run 2>&1 | $(call tag,web UI)
	cd $(FRONTEND) && CHROMIUM_PATH=$(CHROMIUM) npx vitest run --config e2e/vitest.config.ts 2>&1 | $(call tag,web UI)

TEST_TARGETS += test-frontend

# The picker lists every deployments/*.json whenever there are some, DEPLOYMENT= or not.
DEPLOYMENTS ?= deployments

ui: frontend-build
	@test -n "$(NETWORK)$(DEPLOYMENT)" || { echo "usage: make ui NETWORK=<name> (a file in $(DEPLOYMENTS)/: anvil, gnosis-chiado, gnosis, filecoin-calibration, filecoin, demo) or make ui DEPLOYMENT=deployments/<name>.json [UI_PORT=$(UI_PORT)]"; exit 2; }
	node $(FRONTEND)/scripts/serve.mjs $(if $(DEPLOYMENT),--deployment $(DEPLOYMENT)) \
	  $(if $(NETWORK)$(wildcard $(DEPLOYMENTS)/*.json),--deployments $(DEPLOYMENTS)) $(if $(NETWORK),--network $(NETWORK)) --port $(UI_PORT) \
	  --health-cmd '["$(PY)", "-m", "pollen.cli", "health"]'
