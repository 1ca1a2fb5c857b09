"""``torch.compile`` of the network for training, opt-in: the root node ``compile`` of ``train.yaml``.

    python train.py trainer=gpu compile.enabled=true                          # Inductor, fused kernels
    python train.py trainer=gpu compile.enabled=true compile.mode=reduce-overhead   # plus CUDA graphs

Why it exists: on a large GPU the eager training step of InterNet+ is most likely bound by the number of operations, not
by its FLOPs (inferred from the timings below; the GPU check's ``profile`` section measures it). Eager PyTorch
dispatches and launches one kernel per operation, and InterNet+ (paper §4, Table 1) is made of many small ones: inverted
residual blocks with depthwise convolutions, hard-swish, coordinate attention (two pooled directions, a shared
convolution, two sigmoids, two products) and the FcaNet DCT channel attention. On an NVIDIA H200, InterNet+'s eager step
at batch 16 took as long as InterNet's (27–33 ms) with 71 % of its FLOPs (16.9 against 23.8 GFLOPs per image; feature
extractors 3.75 against 10.68), and at batch 1 twice as long (``experiments/performance/gpu_nvidia_h200/``). Inductor
fuses the element-wise chains into fewer kernels, and ``mode=reduce-overhead`` records the step's kernels once in CUDA
graphs and replays them, which removes the launch cost altogether; ``make gpu-check`` measures both against eager for
InterNet+ and InterNet (section ``compiled_training``).

What is compiled: the feature extractor and PoseNet (a graph each), in place with :meth:`torch.nn.Module.compile`; the
input normalisation before them is one or two operations and stays eager. Parameters, buffers, state-dict keys and
checkpoints are those of the eager model, so a checkpoint of a compiled run loads anywhere, and resuming works with
compilation on or off. InterNet's loss, the optimiser step and everything Lightning does around the step stay eager
(also under DDP, where Lightning calls the steps through the LightningModule's ``__call__``: that is why the
LightningModule itself is not compiled). The paper's model classes are untouched: :class:`CompileNetwork` applies the
compilation from outside, when training starts; ``eval.py`` and ``predict.py`` run eager (for inference,
:func:`internet_plus.models.inference.optimize_for_inference` takes ``compile=True``).

Under ``trainer=ddp`` the batch norms are synchronised (``SyncBatchNorm``), whose collective calls ``torch.compile``
does not trace (an open PyTorch limitation): the graph breaks at each of them, so the network compiles as many small
graphs, ``compile.fullgraph=true`` is refused at the start, and a warning says so otherwise.

Costs: the first step of each new input shape (training, then the evaluation passes in eval mode) compiles, tens of
seconds; under ``reduce-overhead`` each shape also records a CUDA graph and keeps its memory. ``reduce-overhead``
does nothing more than ``default`` on a CPU (CUDA graphs are CUDA's). The CPU speed goals do not use this: on the
CPU, ``accel`` (:mod:`internet_plus.accel`) is the opt-in path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CUDAAccelerator

log = logging.getLogger(__name__)

#: ``torch.compile``'s modes (``None`` is its default).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileConfigError(ValueError):
    """A ``compile`` node that ``torch.compile`` cannot take, named before any work."""


def compile_options(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The keyword arguments of ``torch.compile`` for a ``compile`` node, or ``None`` when it is off (``enabled:
    false``, or no node). The node's keys: ``enabled``, ``mode`` (one of :data:`COMPILE_MODES`), ``backend`` (a
    name ``torch._dynamo.list_backends`` knows: ``inductor``, or ``aot_eager`` to check the tracing without code
    generation), ``dynamic`` (``false``: one specialised graph per input shape) and ``fullgraph``.

    Raises:
        CompileConfigError: an unknown key, mode or backend, or a value of the wrong type, each named.
    """
    if node is None:
        return None
    node = dict(node)
    known = {"enabled", "mode", "backend", "dynamic", "fullgraph"}
    unknown = sorted(set(node) - known)
    if unknown:
        raise CompileConfigError(f"compile: unknown key(s) {unknown}; known: {sorted(known)}")
    for key in ("enabled", "fullgraph"):
        if not isinstance(node.get(key, False), bool):
            raise CompileConfigError(f"compile.{key}={node[key]!r} is not true or false")
    if node.get("dynamic") is not None and not isinstance(node["dynamic"], bool):
        raise CompileConfigError(f"compile.dynamic={node['dynamic']!r} is not true, false or null")
    mode = node.get("mode") or "default"
    if mode not in COMPILE_MODES:
        raise CompileConfigError(
            f"compile.mode={mode!r} is not a torch.compile mode; valid: {', '.join(COMPILE_MODES)}"
        )
    backend = node.get("backend") or "inductor"
    backends = torch._dynamo.list_backends(exclude_tags=())
    if backend not in backends:
        raise CompileConfigError(f"compile.backend={backend!r} is not a torch.compile backend; valid: {backends}")
    if not node.get("enabled", False):
        return None
    options: dict[str, Any] = {
        "backend": backend,
        "dynamic": node.get("dynamic"),
        "fullgraph": node.get("fullgraph", False),
    }
    if mode != "default":
        options["mode"] = mode
    return options


def compile_network(model: torch.nn.Module, options: Mapping[str, Any]) -> torch.nn.Module:
    """Compile the network of ``model`` (a :class:`~internet_plus.lit_module.HandPoseModule`) in place: its feature
    extractor and PoseNet, each with :meth:`torch.nn.Module.compile` and ``torch.compile``'s keyword arguments
    ``options``. Returns ``model``, whose parameters and state-dict keys are unchanged.

    Not the LightningModule's own ``__call__``: under DDP, Lightning runs ``training_step``, ``validation_step`` and
    ``test_step`` through the module's ``__call__`` (its forward redirection), so compiling that would compile the
    loss, the metrics and the logging too."""
    for part in (model.backbone, model.posenet):
        part.compile(**dict(options))
    return model


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether :func:`compile_network` was applied to ``model``."""
    return all(getattr(part, "_compiled_call_impl", None) is not None for part in (model.backbone, model.posenet))


def uses_cuda_graphs(options: Mapping[str, Any]) -> bool:
    """Whether ``torch.compile``'s ``options`` record CUDA graphs (on CUDA devices): modes ``reduce-overhead`` and
    ``max-autotune``. Each training step then starts with ``torch.compiler.cudagraph_mark_step_begin()``."""
    return options.get("mode") in ("reduce-overhead", "max-autotune")


class CompileNetwork(pl.Callback):
    """Compile the LightningModule's network when training starts, if the ``compile`` node says so (nothing
    otherwise): after Lightning has moved the module to its device and, under DDP, converted its batch norms, and
    after the ``on_fit_start`` hooks (the model summary's example forward pass runs under a dispatch mode that
    Dynamo cannot trace). The sanity-check validation before it runs eager. Compilation itself is lazy: the first
    training step traces and compiles."""

    def __init__(self, node: Mapping[str, Any] | None = None) -> None:
        self.options = compile_options(node)  # a bad node fails here, before the trainer is built

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self.options is None or is_compiled(pl_module):
            return
        synced = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in pl_module.modules())
        if synced and self.options.get("fullgraph"):
            raise CompileConfigError(
                f"compile.fullgraph=true, but the network has {synced} synchronised batch norms "
                "(trainer.sync_batchnorm=true, as in trainer=ddp): torch.compile cannot trace their collective calls "
                "and breaks the graph at each. Set compile.fullgraph=false, or trainer.sync_batchnorm=false"
            )
        if synced:
            log.warning(
                "compile: the graph breaks at each of the %d synchronised batch norms (torch.compile does not trace "
                "their collective calls), so the network compiles as many small graphs; measure before relying on it",
                synced,
            )
        if uses_cuda_graphs(self.options) and not isinstance(trainer.accelerator, CUDAAccelerator):
            log.warning(
                "compile.mode=%s records CUDA graphs on CUDA devices only: here it compiles without",
                self.options["mode"],
            )
        compile_network(pl_module, self.options)
        log.info("network compiled with torch.compile (%s)", ", ".join(f"{k}={v}" for k, v in self.options.items()))

    def on_train_batch_start(  # noqa: D102
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.options is not None and uses_cuda_graphs(self.options):
            torch.compiler.cudagraph_mark_step_begin()  # a new step: the previous step's graph outputs may be reused


__all__ = [
    "COMPILE_MODES",
    "CompileConfigError",
    "CompileNetwork",
    "compile_network",
    "compile_options",
    "is_compiled",
    "uses_cuda_graphs",
]
