# Set-up is idempotent: `make setup` creates .venv on a fresh machine and does nothing after.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every install (set-up, demo, tests, CI) comes from LOCK: exact versions with their sha256
# hashes, so a fresh clone installs today what it installed the day the lock was written.
# `make lock` rewrites it from pyproject.toml's ranges plus LOCK_IN (torch 2.14.1 and
# torchvision 0.29.1, the CUDA builds that run on CPU too and that this workplace's pip
# takes from local disk); `make test-latest` first runs the tests on the newest versions
# the ranges allow, in a separate venv, which is what to check before refreshing the lock.
LOCK := requirements-lock.txt
LOCK_IN := requirements-lock.in
PIP_TOOLS := pip-tools==7.7.0

.PHONY: setup lint test test-fast test-latest lock demo clean-demo train-tiny

setup: $(STAMP)

# $(call step,N/M what,COMMAND): one line before a set-up step, pip's own progress (packages
# collected, download bars) during it, and its wall time after it; no `pip --quiet` silence.
step = t0=$$(date +%s); echo "==> setup $(1)"; $(2) && echo "    ($(1): $$(( $$(date +%s) - t0 )) s)"

$(STAMP): pyproject.toml $(LOCK)
	@echo "==> setup: creating $(VENV) and installing the locked dependencies and this package (a few minutes the first time; later runs skip it)"
	@$(call step,1/3 virtual environment,test -x $(BIN)/python || $(PY) -m venv $(VENV))
	@$(call step,2/3 locked dependencies ($(LOCK): exact versions and hashes; torch is the bulk),$(BIN)/python -m pip install --progress-bar on --require-hashes -r $(LOCK))
	@$(call step,3/3 winoground-eval (editable; no dependency resolution),$(BIN)/python -m pip install --progress-bar on --no-deps --no-build-isolation -e .)
	@touch $(STAMP)
	@echo "==> setup done: $(BIN)/wg-eval"

# Lint and format check (configured in pyproject.toml's [tool.ruff]); `make test` runs it first.
# `$(BIN)/python -m ruff format . && $(BIN)/python -m ruff check --fix .` repairs most findings.
lint: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

# -n auto: pytest-xdist, one worker per core (each at one torch thread, tests/conftest.py).
test: setup lint
	$(BIN)/python -m pytest -q -n auto

# Every test but those marked `slow` (torchrun, Chromium, wheel builds, CLI subprocesses, the
# long matrices, guards of the shipped models, calls of 0.9 s or more): under a minute on 2
# cores, for the edit-test loop. `make test` (CI) runs them all.
test-fast: setup
	$(BIN)/python -m pytest -q -n auto -m "not slow"

# The newest versions pyproject.toml allows, today, in a venv of their own (.venv-latest):
# run it before `make lock`, so a refreshed lock is one the tests already passed on.
test-latest:
	test -x .venv-latest/bin/python || $(PY) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --upgrade --upgrade-strategy eager -r $(LOCK_IN) -e '.[dev]'
	.venv-latest/bin/python -m pip list --format=freeze > .venv-latest/versions.txt
	.venv-latest/bin/python -m pytest -q -n auto

# Rewrite the lock from pyproject.toml's ranges (the newest versions they allow today) and
# LOCK_IN, with hashes; pip-tools runs from a venv of its own (.venv-lock).
lock:
	test -x .venv-lock/bin/python || $(PY) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet $(PIP_TOOLS)
	.venv-lock/bin/pip-compile --upgrade --generate-hashes --allow-unsafe --extra dev --strip-extras \
	    --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml $(LOCK_IN)

demo: setup
	$(BIN)/python -m winoground_eval.cli.demo

clean-demo:
	rm -rf demo_out

# Retrain the two shipped tiny models (1 CPU thread, about 95 minutes in all on this kind of
# machine); writes winoground_eval/weights/. Seeded; the steps, not the clock, end each run.
train-tiny: setup
	$(BIN)/python -m training.train_tiny_diffusion --steps 2500 --minutes 75 --out winoground_eval/weights/tiny-diffusion
	$(BIN)/python -m training.train_tiny_diffusion --init winoground_eval/weights/tiny-diffusion --first-example 80000 \
	    --steps 900 --lr 2e-4 --minutes 24 --eval-every 300 --out winoground_eval/weights/tiny-diffusion
	$(BIN)/python -m training.train_tiny_clip --steps 2000 --minutes 9 --out winoground_eval/weights/tiny-clip
	$(BIN)/python -m training.choose_t_range --n 300 --grid 20
	$(BIN)/python -m training.report_scores --splits test heldout
# tiny-dit (digits): 2,000 steps (about 9 minutes on 1 thread), its grid chosen on val, the discriminative baselines
	$(BIN)/python -m training.train_tiny_dit --steps 2000 --minutes 40 --out winoground_eval/weights/tiny-dit
	$(BIN)/python -m training.choose_tiny_dit_grid --val-n 300 --grid 50
	$(BIN)/python -m training.digits_baseline
