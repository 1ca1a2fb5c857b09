"""Benchmark: the paper's Tables 3 and 4 measured side by side in one run.

``python -m internet_plus.tools.benchmark`` builds InterNet (ResNet-50 + PoseNet) and the InterNet+ variants (the
Table 1 feature extractor + PoseNet), by default every member of the backbone registry (``conf/backbone/*.yaml``,
:mod:`internet_plus.models.backbones.registry`), as :class:`~internet_plus.lit_module.HandPoseModule` and measures,
for each:

* feature-extractor parameters and MiB (float32, params × 4 B / 2^20; Table 3) and whole-model parameters;
* GFLOPs per image from ``torch.utils.flop_counter.FlopCounterMode`` (one FLOP per multiply and per add, i.e.
  2 × multiply-accumulates, as that counter counts; convolutions, transposed convolutions and matmuls only);
* inference throughput in images/s at each batch size (Table 4): eval mode under ``torch.inference_mode()``,
  ``--warmup`` untimed passes, then the median of ``--repeats`` timed passes;
* training time per iteration (Table 3): forward + InterNet's loss (``HandPoseModule.criterion``) + backward + an
  AdamW step (PyTorch's default implementation, as ``conf/optimizer`` trains) on a synthetic batch with every key
  the loss reads; warm-up and median as above;
* peak memory (:class:`~internet_plus.tools.memory.PeakMemory`): on CUDA ``torch.cuda.max_memory_allocated``; on
  the CPU the peak of live tensor storage over one extra pass, counted per operator (independent of the allocator);
* ``--optimize`` / ``--compile``: inference on the rewritten copy of :mod:`internet_plus.models.inference`
  with freed memory kept in the process (:func:`internet_plus.accel.keep_freed_memory`);
* the machine's float32 matmul rate (GFLOP/s, median of repeats), each model's FLOP-bound throughput (that rate
  divided by the model's FLOPs per image) and the achieved fraction of it.

The tables print the paper's figures (:data:`PAPER_TABLES_3_4`, measured on an RTX 2080Ti) beside ours, with the
ratios InterNet+/InterNet; ``--json`` writes everything. ``--tiny`` is a seconds-long smoke run for the tests. The
timing helpers are in :mod:`internet_plus.tools.timing`, the memory meters in :mod:`internet_plus.tools.memory`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from internet_plus import paper
from internet_plus.accel import accelerate_inference, keep_freed_memory
from internet_plus.joints import NUM_JOINTS
from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones.registry import backbone_config, backbone_names
from internet_plus.models.inference import optimize_for_inference
from internet_plus.models.summary import count_parameters, mebibytes
from internet_plus.resolvers import heatmap_size
from internet_plus.tools.memory import PeakMemory, state_tensors
from internet_plus.tools.timing import cpu_name, matmul_gflops, sync, timed_runs
from internet_plus.utils.reports import write_json_report

#: The paper's Tables 3 and 4 (``internet_plus.paper``) as the tables here read them. ``rows``: the registry
#: backbone each paper row was measured with (InterNet = ResNet-50; the ablations have none).
PAPER_TABLES_3_4: dict[str, Any] = {
    "source": "InterNet+ paper, Table 3 (parameters, size, time per iteration) and Table 4 (inference frames/s "
    f"on RHD); {paper.TABLES_3_4_DEVICE}",
    "table3": paper.TABLE3,
    "table4": paper.TABLE4,
    "rows": paper.MODEL_OF_BACKBONE,
}

#: Printed names of the backbones in the tables; any other registry member prints as its name.
LABELS = {
    "internet_plus": "InterNet+",
    "internet_plus_se": "InterNet+ (SE)",
    "internet_plus_no_ca": "InterNet+ (no CA)",
    "internet_plus_no_fca": "InterNet+ (no FCA)",
    "resnet50": "InterNet (ResNet-50)",
}

DEFAULT_BATCH_SIZES = (1, 4, 8, 16, 32)
#: ``--tiny`` keeps only the two models the paper compares (InterNet+ and InterNet).
TINY_BACKBONES = tuple(PAPER_TABLES_3_4["rows"])
#: The baseline the ratios divide by: InterNet's ResNet-50.
BASELINE = "resnet50"


# ---------------------------------------------------------------------------------------------------- models
def build_model(backbone: str, input_size: int, channels_last: bool = False) -> HandPoseModule:
    """InterNet's full model (PoseNet and codec at the paper's sizes) with the feature extractor that the backbone
    registry names ``backbone`` (``ValueError`` listing the names if it has none such)."""
    codec = {"input_size": input_size, "heatmap_size": heatmap_size(input_size, 3)}  # PoseNet's 3 deconvolutions
    return HandPoseModule(backbone=backbone_config(backbone), codec=codec, channels_last=channels_last)


def synthetic_batch(batch_size: int, input_size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch with every key ``InterNetLoss`` and ``HandPoseModule.training_step`` read: images in [0, 1],
    joints inside the crop and the depth range, everything valid, both hands present."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch_size, NUM_JOINTS, 2, generator=g) * input_size
    z = (torch.rand(batch_size, NUM_JOINTS, 1, generator=g) - 0.5) * 300.0
    batch = {
        "image": torch.rand(batch_size, 3, input_size, input_size, generator=g),
        "joints_img": torch.cat([xy, z], dim=-1),
        "joint_valid": torch.ones(batch_size, NUM_JOINTS),
        "rel_root_depth": (torch.rand(batch_size, generator=g) - 0.5) * 200.0,
        "root_valid": torch.ones(batch_size),
        "hand_type": torch.ones(batch_size, 2),
        "hand_type_valid": torch.ones(batch_size),
    }
    batch["joints_cam"] = (torch.rand(batch_size, NUM_JOINTS, 3, generator=g) - 0.5) * 200.0 + torch.tensor([0, 0, 600])
    batch["joint_annotated"] = torch.ones(batch_size, NUM_JOINTS)
    return {k: v.to(device) for k, v in batch.items()}


def count_flops(model: HandPoseModule, input_size: int, device: torch.device) -> dict[str, float]:
    """FLOPs per image (batch 1, eval mode) of the whole model and of the feature extractor."""
    image = torch.rand(1, 3, input_size, input_size, device=device)
    model.eval()
    with torch.inference_mode():
        with FlopCounterMode(display=False) as whole:
            model(image)
        with FlopCounterMode(display=False) as features:
            model.backbone(model.normalize(image))
    return {"model": float(whole.get_total_flops()), "backbone": float(features.get_total_flops())}


def default_amp_dtype(device: torch.device) -> torch.dtype:
    """The 16-bit type ``--amp`` means: float16 on CUDA, bfloat16 on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` to ``dtype`` on ``device``; ``None``: off (full precision)."""
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


# ---------------------------------------------------------------------------------------------------- measuring
def training_step_fn(
    model: HandPoseModule,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    amp: bool = False,
    amp_dtype: torch.dtype | None = None,
    losses: list[float] | None = None,
) -> Callable[[], None]:
    """One training step as ``train.py`` runs it: forward (under autocast with ``amp``, or in ``amp_dtype`` when
    given), InterNet's loss, backward (through a ``GradScaler`` for float16) and the optimiser step; the loss is
    appended to ``losses``."""
    device = batch["image"].device
    if amp_dtype is None and amp:
        amp_dtype = default_amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp_dtype):
            outputs = model(batch["image"])
        loss = model.criterion({k: v.float() for k, v in outputs.items()}, batch)["loss"]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if losses is not None:
            losses.append(float(loss.detach()))

    return step


def benchmark_backbone(
    backbone: str,
    *,
    input_size: int,
    batch_sizes: Sequence[int],
    train_batch_size: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    channels_last: bool,
    amp: bool,
    matmul_rate: float,
    optimize: bool = False,
    compile: bool = False,
    measure_inference: bool = True,
) -> dict[str, Any]:
    """All measurements of one backbone variant (see the module docstring); a JSON-ready dict.

    ``optimize``: time inference on :func:`~internet_plus.models.inference.optimize_for_inference`'s copy (BN
    folded, PoseNet's branches merged, channels-last) with ``accel=auto`` applied as ``predict.py`` does (on the
    CPU: freed memory kept for the rest of the run, PoseNet's first deconvolution as a GEMM);
    ``compile``: that copy compiled by ``torch.compile`` (the first pass of each batch size, the compilation, is an
    extra untimed warm-up; its time is reported). Training is always timed on the plain model.
    """
    torch.manual_seed(0)
    model = build_model(backbone, input_size, channels_last).to(device)
    fe_params = count_parameters(model.backbone)
    posenet_params = count_parameters(model.posenet)
    flops = count_flops(model, input_size, device)
    gflops = flops["model"] / 1e9
    bound = matmul_rate / gflops if gflops > 0 else float("nan")
    tracker = PeakMemory(device)

    inference: dict[str, dict[str, float]] = {}
    model.eval()
    infer_model: torch.nn.Module = model
    if optimize or compile:
        infer_model = optimize_for_inference(
            model, compile=compile, before_compile=partial(accelerate_inference, mode="auto")
        )
    for bs in batch_sizes if measure_inference else ():
        images = torch.rand(bs, 3, input_size, input_size, device=device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)

        def infer(images: torch.Tensor = images) -> None:
            with torch.inference_mode(), autocast(device, default_amp_dtype(device) if amp else None):
                infer_model(images)

        compile_s = None
        if compile:
            start = time.perf_counter()
            infer()
            sync(device)
            compile_s = time.perf_counter() - start
        times = timed_runs(infer, device, warmup, repeats)
        median = statistics.median(times)
        throughput = bs / median
        inference[str(bs)] = {
            "images_per_s": throughput,
            "median_s": median,
            "times_s": times,
            "flop_bound_fraction": throughput / bound,
            "peak_memory_mib": tracker.measure(infer, compiled=compile, existing=state_tensors(infer_model)),
            **({"first_pass_s": compile_s} if compile_s is not None else {}),
        }
    infer_model = model  # release the inference copy before training is measured

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # as conf/optimizer trains
    batch = synthetic_batch(train_batch_size, input_size, device)
    losses: list[float] = []
    train_step = training_step_fn(model, batch, optimizer, amp=amp, losses=losses)

    train_times = timed_runs(train_step, device, warmup, repeats)
    train_peak = tracker.measure(train_step, existing=state_tensors(model, optimizer))
    train_median = statistics.median(train_times)
    result = {
        "label": LABELS.get(backbone, backbone),
        "feature_extractor_params": fe_params,
        "feature_extractor_mib": mebibytes(fe_params),
        "posenet_params": posenet_params,
        "model_params": fe_params + posenet_params,
        "gflops_per_image": gflops,
        "feature_extractor_gflops_per_image": flops["backbone"] / 1e9,
        "flop_bound_images_per_s": bound,
        "inference": inference,
        "train": {
            "batch_size": train_batch_size,
            "time_per_iteration_s": train_median,
            "times_s": train_times,
            "images_per_s": train_batch_size / train_median,
            "peak_memory_mib": train_peak,
            "losses": losses,
        },
    }
    return result


def _ratios(results: dict[str, dict[str, Any]], batch_sizes: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Each InterNet+ variant / InterNet: throughput per batch size, training time, parameters, FLOPs."""
    if BASELINE not in results:
        return {}
    ref = results[BASELINE]
    out: dict[str, dict[str, Any]] = {}
    for name, res in results.items():
        if name == BASELINE:
            continue
        out[name] = {
            "throughput": {
                str(bs): res["inference"][str(bs)]["images_per_s"] / ref["inference"][str(bs)]["images_per_s"]
                for bs in batch_sizes
            },
            "time_per_iteration": res["train"]["time_per_iteration_s"] / ref["train"]["time_per_iteration_s"],
            "feature_extractor_params": res["feature_extractor_params"] / ref["feature_extractor_params"],
            "gflops_per_image": res["gflops_per_image"] / ref["gflops_per_image"],
        }
    return out


def paper_ratios() -> dict[str, Any]:
    """The paper's InterNet+/InterNet ratios (Table 4 throughput per batch size, Table 3 time and parameters)."""
    t3, t4 = PAPER_TABLES_3_4["table3"], PAPER_TABLES_3_4["table4"]
    return {
        "throughput": {str(bs): t4["internet_plus"][bs] / t4["internet"][bs] for bs in t4["internet"]},
        "time_per_iteration": t3["internet_plus"]["time_per_iteration_s"] / t3["internet"]["time_per_iteration_s"],
        "feature_extractor_params": t3["internet_plus"]["params_m"] / t3["internet"]["params_m"],
    }


# ---------------------------------------------------------------------------------------------------- printing
def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(headers))
    return [line(headers), rule, *(line(r) for r in rows), rule]


def format_report(report: dict[str, Any]) -> str:
    """The printed Tables 3 and 4 (ours beside the paper's), the FLOP bounds and the ratios."""
    cfg, results, ratios = report["config"], report["results"], report["ratios"]
    batch_sizes = cfg["batch_sizes"]
    t3, t4 = PAPER_TABLES_3_4["table3"], PAPER_TABLES_3_4["table4"]
    rows_of = PAPER_TABLES_3_4["rows"]
    out = [
        f"Device: {report['machine']['device_name']} ({cfg['device']}, {report['machine']['torch_threads']} torch "
        f"threads); input {cfg['input_size']}×{cfg['input_size']}; warm-up {cfg['warmup']}, median of "
        f"{cfg['repeats']}; channels-last {cfg['channels_last']}, AMP {cfg['amp']} ({cfg['amp_dtype']})",
        f"Matmul rate (float32 {cfg['matmul_size']}² @ {cfg['matmul_size']}², median): "
        f"{report['machine']['matmul_gflops']:.1f} GFLOP/s",
        f"Paper: {PAPER_TABLES_3_4['source']} — not comparable with other hardware.",
        "",
        f"Table 3 — feature extractor, model and training (batch {cfg['train_batch_size']}; AdamW; InterNet's loss)",
    ]
    rows = []
    for name, res in results.items():
        paper = t3.get(rows_of.get(name, ""), {})
        rows.append(
            [
                res["label"],
                f"{res['feature_extractor_params'] / 1e6:.2f}",
                f"{paper['params_m']:.2f}" if paper else "-",
                f"{res['feature_extractor_mib']:.2f}",
                f"{paper['size_mb']:.2f}" if paper else "-",
                f"{res['model_params'] / 1e6:.2f}",
                f"{res['gflops_per_image']:.2f}",
                f"{res['feature_extractor_gflops_per_image']:.2f}",
                f"{res['train']['time_per_iteration_s']:.3f}",
                f"{paper['time_per_iteration_s']:.2f}" if paper else "-",
                f"{res['train']['images_per_s']:.2f}",
                f"{res['train']['peak_memory_mib']:.0f}",
            ]
        )
    headers = [
        "Model",
        "FE params (M)",
        "paper",
        "FE MiB",
        "paper",
        "model params (M)",
        "GFLOPs/img",
        "FE GFLOPs",
        "s/iter",
        "paper",
        "train img/s",
        "train peak MiB",
    ]
    out += _table(headers, rows)
    out += [
        "GFLOPs: torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-accumulate), batch 1, eval mode.",
        f"Peak memory: {report['machine']['memory_method']}.",
        "",
        "Table 4 — inference images/s (eval, inference_mode), ours (paper, 2080Ti); FLOP bound = matmul rate / FLOPs",
    ]
    rows = []
    for name, res in results.items():
        paper = t4.get(rows_of.get(name, ""), {})
        cells = [res["label"]]
        for bs in batch_sizes:
            value = res["inference"][str(bs)]["images_per_s"]
            cells.append(f"{value:.2f} ({paper[bs]:.2f})" if bs in paper else f"{value:.2f}")
        cells.append(f"{res['flop_bound_images_per_s']:.2f}")
        cells.append(" ".join(f"{res['inference'][str(bs)]['flop_bound_fraction']:.0%}" for bs in batch_sizes))
        rows.append(cells)
    out += _table(["Model", *(f"batch {bs}" for bs in batch_sizes), "FLOP bound", "of bound"], rows)
    paper_rows = [
        [name, *(f"{t4[row][bs]:.2f}" for bs in DEFAULT_BATCH_SIZES)]
        for name, row in (("InterNet", "internet"), ("InterNet+", "internet_plus"))
    ]
    out += ["Paper Table 4 (2080Ti, RHD):", *_table(["", *(f"batch {bs}" for bs in DEFAULT_BATCH_SIZES)], paper_rows)]
    if ratios:
        pr = paper_ratios()
        out += ["", "Ratios InterNet+/InterNet, ours (paper)"]
        rows = []
        for name, r in ratios.items():
            cells = [LABELS.get(name, name)]
            for bs in batch_sizes:
                paper = pr["throughput"].get(str(bs))
                ours = r["throughput"][str(bs)]
                cells.append(f"{ours:.3f} ({paper:.3f})" if paper is not None else f"{ours:.3f}")
            cells.append(f"{r['time_per_iteration']:.3f} ({pr['time_per_iteration']:.3f})")
            cells.append(f"{r['feature_extractor_params']:.3f} ({pr['feature_extractor_params']:.3f})")
            cells.append(f"{r['gflops_per_image']:.3f}")
            rows.append(cells)
        headers = ["Model", *(f"img/s b{bs}" for bs in batch_sizes), "s/iter", "FE params", "GFLOPs"]
        out += _table(headers, rows)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- CLI
def _int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    valid = backbone_names()
    unknown = [n for n in names if n not in valid]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown backbone(s) {unknown}; valid (conf/backbone): {', '.join(valid)}")
    return names


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every requested backbone; the full JSON-ready report (config, machine, results, ratios, paper)."""
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.keep_freed_memory or args.optimize or args.compile:
        keep_freed_memory()
    train_batch_size = args.train_batch_size or (16 if device.type == "cuda" else 8)
    matmul_size = 512 if args.tiny else (8192 if device.type == "cuda" else 2048)
    rate = matmul_gflops(device, matmul_size, max(args.repeats, 3))
    tracker = PeakMemory(device)
    config = {
        "backbones": args.backbones,
        "batch_sizes": args.batch_sizes,
        "input_size": args.input_size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "device": str(device),
        "channels_last": args.channels_last,
        "optimize": args.optimize,
        "compile": args.compile,
        "keep_freed_memory": args.keep_freed_memory or args.optimize or args.compile,
        "inference": not args.no_inference,
        "amp": args.amp,
        "amp_dtype": str(default_amp_dtype(device)).removeprefix("torch.") if args.amp else "float32",
        "train_batch_size": train_batch_size,
        "matmul_size": matmul_size,
        "tiny": args.tiny,
        "cudnn_benchmark": device.type == "cuda",
    }
    machine = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "matmul_gflops": rate,
        "memory_method": tracker.method,
        "date": datetime.date.today().isoformat(),
    }
    results: dict[str, dict[str, Any]] = {}
    for name in args.backbones:
        results[name] = benchmark_backbone(
            name,
            input_size=args.input_size,
            batch_sizes=args.batch_sizes,
            train_batch_size=train_batch_size,
            device=device,
            repeats=args.repeats,
            warmup=args.warmup,
            channels_last=args.channels_last,
            amp=args.amp,
            matmul_rate=rate,
            optimize=args.optimize,
            compile=args.compile,
            measure_inference=not args.no_inference,
        )
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the finished model is unreferenced now
    paper = {
        "source": PAPER_TABLES_3_4["source"],
        "table3": PAPER_TABLES_3_4["table3"],
        "table4": {k: {str(bs): v for bs, v in row.items()} for k, row in PAPER_TABLES_3_4["table4"].items()},
        "ratios": paper_ratios(),
    }
    return {
        "config": config,
        "machine": machine,
        "results": results,
        "ratios": _ratios(results, args.batch_sizes),
        "paper": paper,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--tiny`` overrides the sizes with a seconds-long configuration."""
    parser = argparse.ArgumentParser(
        prog="python -m internet_plus.tools.benchmark",
        description="Parameters, FLOPs, inference throughput, training time and memory (paper Tables 3 and 4).",
    )
    parser.add_argument(
        "--backbones", type=_name_list, default=None, help="comma-separated registry names (default: all of them)"
    )
    parser.add_argument("--batch-sizes", type=_int_list, default=list(DEFAULT_BATCH_SIZES))
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--train-batch-size", type=int, default=None, help="default 8 on CPU, 16 on GPU")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument("--amp", action="store_true", help="mixed precision: bfloat16 on CPU, float16 on CUDA")
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="inference on optimize_for_inference's copy (BN folded, PoseNet branches merged, channels-last) with "
        "accel=auto as predict.py applies it (on the CPU: freed memory kept, first deconvolution as a GEMM)",
    )
    parser.add_argument("--compile", action="store_true", help="--optimize plus torch.compile (inference only)")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="keep freed memory in the process (glibc mallopt; implied by --optimize and --compile)",
    )
    parser.add_argument("--no-inference", action="store_true", help="measure training only")
    parser.add_argument("--tiny", action="store_true", help="input 64, batches 1,2, 1 repeat, no warm-up, 2 models")
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    args = parser.parse_args(argv)
    if args.backbones is None:
        args.backbones = backbone_names()
    if args.tiny:
        args.input_size, args.batch_sizes, args.repeats, args.warmup = 64, [1, 2], 1, 0
        args.backbones = [b for b in args.backbones if b in TINY_BACKBONES] or list(TINY_BACKBONES)
        args.train_batch_size = args.train_batch_size or 2
    if args.no_inference:
        args.batch_sizes = []
    if args.input_size < 32 or args.input_size % 32:
        parser.error(f"--input-size must be a positive multiple of 32, got {args.input_size}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: measure, print the tables, write the JSON if asked."""
    args = parse_args(argv)
    report = run_benchmark(args)
    print(format_report(report))
    if write_json_report(args.json, report) is not None:
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
