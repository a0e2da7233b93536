# Everything a new machine needs, from a clean clone (Debian, Python 3.11, pip).
#   make demo   build kiro-repo into a signed repository under .debrepo/ and prove apt accepts it
#   make test   run the whole test suite (installs the Debian tools it drives)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint format bench lambda-package clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_VERSION ?= 1.0.0

demo: venv
	@if $(BIN)/debrepo show kiro-repo $(DEMO_VERSION) >/dev/null 2>&1; then \
		$(BIN)/debrepo rebuild && $(BIN)/debrepo verify; \
	else \
		scripts/build-kiro-repo.sh --version $(DEMO_VERSION); \
	fi
	scripts/apt-check.sh

test: venv
	scripts/install-test-deps.sh
	$(BIN)/python -m pytest --cov=debrepo --cov-report=term

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: venv
	$(BIN)/python bench/run.py

lambda-package: venv
	scripts/build-lambda.sh build/debrepo-lambda.zip

clean:
	rm -rf $(VENV) .debrepo build .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
