"""GPU readiness in one command: the mixed-precision and DDP training paths exercised, the paper's Tables 3 and 4
measured on the GPU, and whether the input pipeline keeps the GPU fed.

    python -m internet_plus.tools.gpu_check [--out DIR] [--budget-s 600] [--sections a,b] [--dry-run]
        [--compile-cache DIR]   # torch.compile's caches carried to the next run (compile_cache.py)
    make gpu-check [OUT=DIR] [ARGS="--sections inference,data_wait"]

Sections, in the order below unless ``--sections`` names a subset in another order (each one's time is recorded; a
section that would start after ``--budget-s`` is recorded as skipped, never silently dropped):

1. ``training_matrix`` — every backbone of the registry (``conf/backbone/*.yaml``) × ``32-true`` / ``16-mixed`` /
   ``bf16-mixed`` (and channels-last on for InterNet+ and InterNet under ``16-mixed``): 30 optimiser steps of the
   real ``Trainer.fit`` path (``HandPoseModule`` with AdamW in its fused implementation, the synthetic
   ``SyntheticDataModule`` at 256 px, augmentation off, so that the loss of a fixed set must fall). Checks: every
   loss finite; the mean of the last five losses below the mean of the first five; under ``16-mixed`` the
   ``GradScaler`` skips at most ``MAX_SKIPPED_STEPS`` steps and fewer than ``MAX_SKIP_RUN`` in a row (no overflow
   loop). cuDNN's autotuning (``benchmark``) is off in these correctness runs, as in ``ddp``: it would time every
   convolution of each of the 17 (network, precision) pairs anew. Each run records its first step and its whole
   ``Trainer.fit`` time, so the report shows where the section's time goes.
2. ``loss_parity`` — the lean heatmap loss (``lean_heatmap_mse``, custom backward) against the dense one
   (``dense_heatmap_mse``) on heatmaps produced under float16 and bfloat16 autocast: value and gradient within
   ``LOSS_RTOL`` (both evaluate in float32 from the same 16-bit heatmaps, so only summation order differs).
3. ``ddp`` — in a child process: ``strategy=ddp`` on one device with ``sync_batchnorm`` (every ``BatchNorm`` must
   have become ``SyncBatchNorm``), the DataModule's per-process batch and evaluation sharding, fit + test with
   finite metrics (cuDNN's autotuning off); then ``train.py trainer=ddp`` itself (``trainer.devices=1`` on a
   one-GPU machine, the real 2 on a machine with two or more GPUs) with ``metrics.json`` checked. Both processes
   only check correctness, and most of their time is Python starting and the process group forming: when every
   section before ``ddp`` times nothing (``training_matrix``, ``loss_parity``: the default order), they start in the
   background as the check starts and the section collects them at its turn (``ddp.py``); its recorded time is then
   the wait, the processes' own times are ``child_seconds`` and ``train_py_seconds``.
4. ``inference`` — per backbone, eager inference at batch 1, 8, 32 in float32 (cuDNN's TF32 as PyTorch defaults),
   float16 and bfloat16 autocast; ``optimize_for_inference`` against eager (same precision); ``torch.compile`` of
   that copy for InterNet+ and InterNet (``inference.compiled_plan``: the largest batch in float16 and bfloat16, and
   with CUDA graphs the smallest and the largest batch in float16). Parity is the
   relative L2 error of the heatmaps, root depth and hand logits within ``PARITY_RTOL[precision]``; the untrained
   models' BatchNorm statistics are first calibrated on the input (``calibrate_batchnorm``), since in eval mode with
   the initial statistics InterNet+'s features vanish and float16 would compare zeros.
5. ``training_speed`` — Table 3: per backbone, parameters, MiB, s/iteration at the paper's batch (16 per GPU) for
   each precision (warm-up, median), ``torch.cuda.max_memory_allocated`` over a step.
6. ``compiled_training`` — InterNet+ and InterNet at the paper's batch under ``16-mixed``: the training step eager,
   channels-last, and compiled as ``train.py compile.enabled=true`` compiles it (Inductor; on a GPU also with CUDA
   graphs, ``compile.mode=reduce-overhead``): s/iteration, the first step's time, peak
   memory, and the same network's s/iteration in ``train.py``'s loop (``Trainer.fit``, ``lightning_loop.py``); every
   variant's first loss must equal eager's from the same weights. Ratios per variant and for each model at its
   fastest.
7. ``profile`` — ``torch.profiler`` over a few eager training steps of InterNet+ and InterNet: GPU kernels per step,
   the GPU's busy time and its share of the step's wall time (launch-bound or compute-bound), the top operations;
   and InterNet+'s eval forward pass part by part at the smallest and largest inference batch in float16
   (``components.py``: each inverted residual block's stages, coordinate attention, FcaNet, Meta-ACON-C, PoseNet; the
   device time, share, kernels and longest kernels of each); and the same pass with its coordinate attention written
   other ways, equal in exact arithmetic (``attention_variants.py``: its 1×1 convolutions as matrix products, the
   model in channels-last) and without it (the floor): eval images/s and the training step's time at the paper's
   batch, with output and first-loss parity against the as-built module.
8. ``data_wait`` — 200 training steps of InterNet+ under ``16-mixed`` with the real DataModules (RHD-format PNGs from
   the synthetic generator, InterHand2.6M-format JPEGs), augmentation on, at ``num_workers=auto`` and at one worker
   per core but one; the data wait is the time the training loop waits between steps (the GPU synchronised at each
   step's end) over the whole time, steps after the first ten. Also each format's per-core pipeline rate, and at auto
   workers the device paths: ``data.warp_on=device`` (both formats) and ``data.decode_on=device`` (the JPEG format),
   whose samples/s the report puts beside the worker path's. The data-wait goal is judged on the worker path.

The InterNet+/InterNet ratios are put beside the paper's (Table 4 throughput 0.875 at batch 1 and 1.152 at batch 32;
Table 3 0.58 vs 0.61 s/iteration) and the goals (≥ 1.35 inference at batch 32, ≥ 1.3 training, data wait ≤ 5 %).
The training goal is judged on ratios with both models under the same settings (a precision, a compiled variant);
each model at its fastest is reported beside it.
Outputs: ``gpu_check.json`` (everything) and ``gpu_check.md`` (the tables) in ``--out``, by default
``experiments/performance/gpu_<device>/``; an existing report there is never overwritten (a new name is used).

On a machine without CUDA the command says so and runs ``--dry-run``: every section on the CPU at tiny sizes
(64 px, 2 backbones, a few steps; ``16-mixed`` and Inductor are skipped, the compiled training step is traced by
Dynamo alone (backend ``eager``)), so that its own logic is checked
(CI runs it through the tests). It exits 0 when every check passed, 1 otherwise; the dry run produces no GPU figures.
"""

from __future__ import annotations

from internet_plus.tools.gpu_check.cli import machine_info, main, parse_args
from internet_plus.tools.gpu_check.compiled_training import compiled_training, training_ratios
from internet_plus.tools.gpu_check.data_wait import data_wait
from internet_plus.tools.gpu_check.ddp import DdpProcesses, ddp_child, ddp_section, in_background
from internet_plus.tools.gpu_check.helpers import (
    StepRecorder,
    SyncBatchNormProbe,
    device_slug,
    free_path,
    loss_trend,
    make_module,
    make_trainer,
    max_consecutive,
    output_errors,
    quiet_lightning,
    relative_error,
    skipped_steps,
    synthetic_datamodule,
)
from internet_plus.tools.gpu_check.inference import inference_section
from internet_plus.tools.gpu_check.profile import profile_section
from internet_plus.tools.gpu_check.report_md import goals, markdown
from internet_plus.tools.gpu_check.settings import (
    AUTOCAST,
    GOALS,
    LOSS_RTOL,
    MAX_SKIP_RUN,
    MAX_SKIPPED_STEPS,
    PAPER_MODELS,
    PARITY_RTOL,
    PRECISIONS,
    ROOT,
    SECTIONS,
    Budget,
    Report,
    Settings,
)
from internet_plus.tools.gpu_check.training import loss_parity, training_matrix
from internet_plus.tools.gpu_check.training_speed import training_speed

__all__ = [
    "AUTOCAST",
    "Budget",
    "DdpProcesses",
    "GOALS",
    "LOSS_RTOL",
    "MAX_SKIPPED_STEPS",
    "MAX_SKIP_RUN",
    "PAPER_MODELS",
    "PARITY_RTOL",
    "PRECISIONS",
    "ROOT",
    "Report",
    "SECTIONS",
    "Settings",
    "StepRecorder",
    "SyncBatchNormProbe",
    "compiled_training",
    "data_wait",
    "ddp_child",
    "ddp_section",
    "device_slug",
    "free_path",
    "goals",
    "in_background",
    "inference_section",
    "loss_parity",
    "loss_trend",
    "machine_info",
    "main",
    "make_module",
    "make_trainer",
    "markdown",
    "max_consecutive",
    "output_errors",
    "parse_args",
    "profile_section",
    "quiet_lightning",
    "relative_error",
    "skipped_steps",
    "synthetic_datamodule",
    "training_matrix",
    "training_ratios",
    "training_speed",
]
