# Spira: two commands set everything up on a fresh clone.
#   make demo   create .venv, install, seed demo data, serve on http://127.0.0.1:8000
#   make test   create .venv if needed, install, run ruff, lint-imports (layering), mypy and pytest
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export SPIRA_VAR_DIR ?= var

.PHONY: install demo test lint typecheck pytest label-studio bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing Spira and its dependencies into $(VENV) (PyTorch takes a few minutes the first time)"
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/spira demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy core vision assessment profiles api annotation training cli bench

label-studio:
	@bash scripts/label_studio.sh

pytest: install
	$(BIN)/pytest -ra

test: lint typecheck label-studio pytest

bench: install
	$(BIN)/python bench/vision.py --write
	$(BIN)/python bench/faces.py --write
	$(BIN)/python bench/assessment.py --write
	$(BIN)/python bench/assessment_oracle.py --write
	$(BIN)/python bench/profiles.py --write
	$(BIN)/python bench/api_load.py --write
	$(BIN)/python bench/ray_vs_local.py --write
	$(BIN)/python bench/capacity.py --write
	$(BIN)/python bench/validity.py --write
	$(BIN)/python bench/cli.py --write

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
