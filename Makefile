# Set-up is idempotent: `make setup` creates .venv on a fresh machine and does nothing after.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch 2.14.1 + torchvision 0.29.1: the CUDA builds (they run on CPU too) that this
# workplace's pip takes from local disk; elsewhere pip downloads them.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup test demo clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python -m winoground_eval.demo

clean-demo:
	rm -rf demo_out
