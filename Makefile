# InterNet+ experiment suite. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.14.1 / torchvision 0.29.1 are the releases this project is developed and tested with.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# MediaPipe Hands for predict.py boxes=auto: installed without its declared dependencies (one cv2, see pyproject.toml)
MEDIAPIPE_PIN := mediapipe==0.10.14
STAMP := $(VENV)/.install-stamp

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the package (editable) with its dev and detect extras; a no-op when up to date

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet --no-deps $(MEDIAPIPE_PIN)
	$(BIN)/python -m pip install --quiet -e ".[dev,detect]"
	touch $(STAMP)

# One pytest-xdist worker per logical core; each worker's tests share the cores' threads (tests/conftest.py).
PYTEST_PARALLEL := -n logical --dist worksteal

test: install ## Run the whole test suite on the CPU (what CI runs), one worker per core
	WANDB_MODE=disabled $(BIN)/python -m pytest $(PYTEST_PARALLEL)

test-fast: install ## Run the tests not marked slow
	WANDB_MODE=disabled $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow and not gpu"

test-gpu: install ## Run the CUDA-only tests (AMP steps, the loss backward, the inference copy, the device warp and JPEG decoding, compiled training on CUDA); on a GPU machine
	WANDB_MODE=disabled $(BIN)/python -m pytest -m gpu

gpu-check: install ## GPU readiness: AMP/DDP training paths, Tables 3-4, compiled training, a profile, data wait (OUT=<dir>, ARGS="--sections a,b"); a CPU dry run without CUDA
	WANDB_MODE=disabled $(BIN)/python -m internet_plus.tools.gpu_check $(if $(OUT),--out $(OUT)) $(ARGS)

train: install ## Quickstart: InterNet+ on the synthetic data set, CPU, < 10 min; prints the metrics table
	$(BIN)/python train.py experiment=quickstart

summary: install ## Print InterNet+'s Table 1 with output shapes and parameters (BACKBONE=resnet50 for InterNet)
	$(BIN)/python -m internet_plus.models.summary --backbone $(or $(BACKBONE),internet_plus)

preview: install ## Write a grid of augmented training samples with their skeletons (DATASET=synthetic, ARGS="num=32 seed=1")
	$(BIN)/python -m internet_plus.data.preview dataset=$(or $(DATASET),synthetic) $(ARGS)

results: install ## Collect runs into results.md/.csv + PCK and convergence plots (RUNS="<run or sweep dir> ...", OUT=<dir>, TABLE=2|5|6|7|all)
	@test -n "$(RUNS)" || { echo 'usage: make results RUNS=logs/ablation/multiruns/<date> [OUT=<folder>] [TABLE=2|5|6|7|all]'; exit 2; }
	$(BIN)/python -m internet_plus.tasks.collect $(RUNS) $(if $(OUT),--out $(OUT)) --paper-table $(or $(TABLE),all)

predict: install ## Predict on an image, folder, video or camera (CKPT=<checkpoint> INPUT=<path|0>, ARGS="boxes=auto|whole_image|<json> out=<dir>")
	@test -n "$(CKPT)" -a -n "$(INPUT)" || { echo "usage: make predict CKPT=<checkpoint> INPUT=<image|folder|video|camera index> [ARGS=...]"; exit 2; }
	$(BIN)/python predict.py ckpt_path=$(CKPT) input=$(INPUT) $(ARGS)

compare: install ## MediaPipe Hands vs a checkpoint on labelled photos (INPUT=<folder>, default the real samples, or DATASET=rhd|stb|interhand DATA_ROOT=<dir>; CKPT=<checkpoint> OUT=<dir> ARGS="--boxes mediapipe --limit 200")
	$(BIN)/python -m internet_plus.compare $(if $(DATASET),--dataset $(DATASET) --root $(DATA_ROOT),--input $(or $(INPUT),tests/fixtures/real_samples)) $(if $(CKPT),--ckpt $(CKPT)) $(if $(OUT),--out $(OUT)) $(ARGS)

export-onnx: install ## Export a checkpoint to ONNX with its decoding, checked with onnxruntime (CKPT=<checkpoint>, OUT=model.onnx)
	@test -n "$(CKPT)" || { echo "usage: make export-onnx CKPT=<checkpoint> [OUT=model.onnx]"; exit 2; }
	$(BIN)/python export.py ckpt_path=$(CKPT) out=$(or $(OUT),model.onnx)

benchmark: install ## Tables 3 and 4 side by side: params, GFLOPs, images/s, s/iter, memory (ARGS="--backbones internet_plus,resnet50 --json out.json")
	$(BIN)/python -m internet_plus.tools.benchmark $(ARGS)

perf: install ## The performance targets: compiled inference, training, loss memory, input pipeline, paired ratios (OUT=<dir>)
	$(BIN)/python -m internet_plus.tools.benchmark --backbones internet_plus,resnet50 --batch-sizes 1,8,32 --repeats 3 --compile $(if $(OUT),--json $(OUT)/inference.json)
	$(BIN)/python -m internet_plus.tools.benchmark --no-inference --keep-freed-memory --repeats 3 --warmup 1 $(if $(OUT),--json $(OUT)/training.json)
	$(BIN)/python -m internet_plus.tools.loss_memory --batch-size 16 $(if $(OUT),--json $(OUT)/loss_memory.json)
	$(BIN)/python -m internet_plus.tools.pipeline_bench --samples 300 $(if $(OUT),--json $(OUT)/pipeline.json)
	$(BIN)/python -m internet_plus.tools.paired_ratios $(if $(OUT),--json $(OUT)/paired_ratios.json)

lint: install ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove caches and build files (keeps .venv, data/ and logs/: your runs are never deleted)
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

clean-venv: ## Remove the virtual environment
	rm -rf $(VENV)

.PHONY: help install test test-fast test-gpu gpu-check train summary preview results predict compare export-onnx benchmark perf lint format clean clean-venv
