# Set-up is idempotent: `make setup` creates .venv on a fresh machine and does nothing after.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch 2.14.1 + torchvision 0.29.1: the CUDA builds (they run on CPU too) that this
# workplace's pip takes from local disk; elsewhere pip downloads them.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup test demo clean-demo train-tiny

setup: $(STAMP)

# $(call step,N/M what,COMMAND): one line before a set-up step, pip's own progress (packages
# collected, download bars) during it, and its wall time after it; no `pip --quiet` silence.
step = t0=$$(date +%s); echo "==> setup $(1)"; $(2) && echo "    ($(1): $$(( $$(date +%s) - t0 )) s)"

$(STAMP): pyproject.toml
	@echo "==> setup: creating $(VENV) and installing torch and this package (a few minutes the first time; later runs skip it)"
	@$(call step,1/4 virtual environment,test -x $(BIN)/python || $(PY) -m venv $(VENV))
	@$(call step,2/4 pip and setuptools,$(BIN)/python -m pip install --upgrade --progress-bar on pip 'setuptools>=77')
	@$(call step,3/4 $(TORCH),$(BIN)/python -m pip install --progress-bar on $(TORCH))
	@$(call step,4/4 winoground-eval (editable) and its dependencies,$(BIN)/python -m pip install --progress-bar on -e '.[dev]')
	@touch $(STAMP)
	@echo "==> setup done: $(BIN)/wg-eval"

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python -m winoground_eval.demo

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
