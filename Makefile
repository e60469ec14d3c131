# The two commands: `make reproduce-table1` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  = $(VENV)/.installed-$(DEVICE)
ARGS   ?=

# JAX's persistent compilation cache, outside the repository.
export JAX_COMPILATION_CACHE_DIR ?= $(HOME)/.cache/cmrl_jax/jax-cache
# Which JAX to install: cpu (default), cuda (NVIDIA GPUs, CUDA 12) or tpu (TPU VMs);
# remembered in .venv/.device, so later targets keep the accelerator install.
# Runs use whatever backend JAX finds (CPU only where there is no accelerator);
# `JAX_PLATFORMS=cpu make ...` forces the CPU. `make test` stays on the CPU unless
# CMRL_TEST_ACCELERATOR=1 (tests/conftest.py).
DEVICE ?= $(or $(shell cat $(VENV)/.device 2>/dev/null),cpu)
# The dev install carries the optional extras that have tests (output sinks, XLand), so that
# `make test` (and CI) runs those tests instead of skipping them.
TEST_EXTRAS := tensorboard,wandb,xland
ifeq ($(DEVICE),cpu)
EXTRAS := dev,$(TEST_EXTRAS)
else ifneq ($(filter $(DEVICE),cuda tpu),)
EXTRAS := dev,$(TEST_EXTRAS),$(DEVICE)
else
$(error DEVICE must be cpu, cuda or tpu, got '$(DEVICE)')
endif

.PHONY: install reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 test test-slow lint bench bench-xland bench-peer device-check clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@echo $(DEVICE) > $(VENV)/.device
	@touch $(STAMP)

reproduce-table1: $(STAMP)
	$(BIN)/python -m experiments.table1 $(ARGS)

reproduce-table2: $(STAMP)
	$(BIN)/python -m experiments.table2 $(ARGS)

reproduce-table3: $(STAMP)
	$(BIN)/python -m experiments.table3 $(ARGS)

reproduce-table4: $(STAMP)
	$(BIN)/python -m experiments.table4 $(ARGS)

# `make test`: everything but the few end-to-end runs of a minute or more (under 10
# minutes on 2 cores); `make test-slow`: those (kills and signals on a table, two
# processes killed and resumed, the device script at smoke size, the multi-device
# layouts and the four-device resume). CI (.ci/run) runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.throughput $(ARGS)
	$(BIN)/python -m benchmarks.table_cost all --repeats 3

# XLand-MiniGrid: our RL2 and CMRL's env steps/s against environments per device;
# ARGS="--peer ../xland-minigrid" runs xland-minigrid's own RL2 trainer beside them.
bench-xland: $(STAMP)
	$(BIN)/python -m benchmarks.xland_throughput $(ARGS)

# The PyTorch peer of Table 1's RL2 / ERL2 update (eager and torch.compile) against ours,
# one process, same pinned cores; installs the optional `peer` extra (torch, CPU wheel).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
bench-peer: $(STAMP)
	@$(BIN)/python -c 'import torch' 2>/dev/null || \
		$(BIN)/python -m pip install --quiet --extra-index-url $(TORCH_INDEX) -e '.[$(EXTRAS),peer]'
	$(BIN)/python -m benchmarks.torch_peer $(ARGS)

# On a GPU / TPU VM (at most ~8 minutes): results/device_check/device_report.{json,md}.
# `make device-check ARGS=--smoke` runs it at tiny sizes on any backend.
device-check: $(STAMP)
	$(BIN)/python -m benchmarks.device_check $(ARGS)

clean-venv:
	rm -rf $(VENV)
