# The two commands a newcomer needs:
#   make up     install emberlake into .venv and start the whole system (Ctrl-C stops it)
#   make test   install everything the tests need and run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# Debian packages the test suite uses: a headless browser for the web page, bubblewrap for the
# agent shell sandbox, PostgreSQL for the shared-catalog tests.
SYSTEM_PACKAGES = chromium bubblewrap postgresql

.PHONY: up test install system-deps bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/emberlake up

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check emberlake ingest lake queryd agents tests benchmarks

clean:
	rm -rf $(VENV) emberlake-data
