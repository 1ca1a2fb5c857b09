"""``compile.*``: torch.compile of the network for training (``internet_plus.compile``).

The numerics are checked with the ``aot_eager`` backend (Dynamo and AOTAutograd without code generation: about 17 s
for InterNet+ on two cores), the runs through ``train.py`` with ``eager`` (Dynamo's tracing alone, about 7 s): the
tracing is what they check. Inductor's CPU code generation for the training graph takes over three minutes here. The
Inductor and CUDA-graph versions run in ``tests/test_gpu.py`` and in ``make gpu-check`` on a GPU.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_config, tiny_train_overrides
from fakes.batch import training_batch
from torch._dynamo.utils import counters

from internet_plus.checkpoints import load_model
from internet_plus.compile import (
    CompileConfigError,
    CompileNetwork,
    compile_network,
    compile_options,
    is_compiled,
)
from internet_plus.tasks import train as train_task
from internet_plus.tools.benchmark import build_model


def test_the_default_node_compiles_nothing_and_each_mode_maps_to_torch_compile() -> None:
    node = {"enabled": False, "mode": "default", "backend": "inductor", "dynamic": False, "fullgraph": False}
    assert compile_options(node) is None and compile_options(None) is None
    assert compile_options({**node, "enabled": True}) == {"backend": "inductor", "dynamic": False, "fullgraph": False}
    overhead = compile_options({**node, "enabled": True, "mode": "reduce-overhead"})
    assert overhead is not None and overhead["mode"] == "reduce-overhead"
    assert CompileNetwork(node).options is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"mode": "fastest"}, "compile.mode='fastest'"),
        ({"backend": "turbo"}, "compile.backend='turbo'"),
        ({"enabled": "yes"}, "compile.enabled='yes'"),
        ({"dynamic": 3}, "compile.dynamic=3"),
        ({"fulgraph": True}, "unknown key(s) ['fulgraph']"),
    ],
)
def test_a_wrong_node_is_refused_by_name_even_when_compilation_is_off(change: dict, named: str) -> None:
    node = {"enabled": False, "mode": "default", "backend": "inductor", **change}
    with pytest.raises(CompileConfigError, match=re.escape(named)):
        CompileNetwork(node)


def test_the_compiled_network_traces_whole_and_trains_exactly_as_eager() -> None:
    """One graph each for the feature extractor and PoseNet (``fullgraph=True`` fails on any graph break);
    the state-dict keys stay those of the eager model; with ``aot_eager`` the loss and every gradient of a training
    step equal eager's."""
    torch.manual_seed(0)
    eager = build_model("internet_plus", 64).train()
    compiled = build_model("internet_plus", 64).train()
    compiled.load_state_dict(eager.state_dict())
    keys = list(compiled.state_dict())
    compile_network(compiled, {"backend": "aot_eager", "fullgraph": True, "dynamic": False})
    assert is_compiled(compiled) and not is_compiled(eager)
    assert list(compiled.state_dict()) == keys

    batch = training_batch(2, 64, torch.device("cpu"))
    losses = []
    for model in (eager, compiled):
        outputs = model(batch["image"])
        loss = model.criterion({k: v.float() for k, v in outputs.items()}, batch)["loss"]
        loss.backward()
        losses.append(loss.detach())
    assert torch.equal(losses[0], losses[1])
    for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        assert torch.allclose(p_eager.grad, p_compiled.grad, rtol=1e-5, atol=1e-7), name
    # the batch norms' running statistics are updated through the compiled graph as in eager mode
    for (name, b_eager), b_compiled in zip(eager.named_buffers(), compiled.buffers(), strict=True):
        assert torch.allclose(b_eager.float(), b_compiled.float(), rtol=1e-5, atol=1e-7), name


def test_train_py_with_compile_enabled_trains_the_compiled_network_and_saves_plain_checkpoints(
    synthetic_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    overrides = tiny_train_overrides(
        synthetic_root,
        tmp_path,
        "compile.enabled=true",
        "compile.backend=eager",  # Dynamo alone: the tracing is what is checked here
        "compile.fullgraph=true",
        "trainer.max_epochs=1",
        "data.limit_train_samples=8",
        "logger=none",
    )
    cfg = compose_config("train", overrides, run_dir)
    graphs_before = counters["stats"]["unique_graphs"]
    results = train_task.run(cfg)
    assert counters["stats"]["unique_graphs"] > graphs_before  # the fit ran the compiled network
    assert results["test/epe_mm"] == results["test/epe_mm"]  # finite metrics after the compiled fit
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    eager = load_model(ckpt)  # a checkpoint of a compiled run loads into the eager model, key for key
    assert not is_compiled(eager)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert set(saved) == set(eager.state_dict())
    assert not any("_orig_mod" in k for k in saved)


@pytest.mark.slow
def test_compiled_training_under_ddp_compiles_the_network_only(synthetic_root: Path, tmp_path: Path) -> None:
    """Two processes (``trainer=ddp_cpu``, gloo) with ``compile.fullgraph=true``: Lightning's DDP calls the steps
    through the LightningModule's ``__call__``, so compiling that module would trace the loss, the metrics and the
    logging, and break its graph there (fullgraph makes that an error). Only the feature extractor and PoseNet are
    compiled, and the run ends with finite metrics."""
    run_dir = tmp_path / "ddp_run"
    args = [
        str(ROOT / "train.py"),
        *tiny_train_overrides(synthetic_root, tmp_path, "debug=limit"),
        "trainer=ddp_cpu",
        "compile.enabled=true",
        "compile.backend=eager",  # Dynamo alone: the tracing is what is checked here
        "compile.fullgraph=true",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "network compiled with torch.compile" in proc.stdout + proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert math.isfinite(metrics["test/epe_mm"])


def test_synchronised_batch_norm_is_refused_with_fullgraph_and_warned_about_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``trainer=ddp`` converts the batch norms to ``SyncBatchNorm``, at which torch.compile breaks the graph."""
    model = build_model("internet_plus", 64)
    model.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.backbone)
    trainer = types.SimpleNamespace(accelerator=None)
    node = {"enabled": True, "mode": "default", "backend": "aot_eager", "dynamic": False}
    with pytest.raises(CompileConfigError, match=r"fullgraph=true, but the network has \d+ synchronised batch norms"):
        CompileNetwork({**node, "fullgraph": True}).on_train_start(trainer, model)
    assert not is_compiled(model)
    CompileNetwork({**node, "fullgraph": False}).on_train_start(trainer, model)
    assert is_compiled(model) and "the graph breaks at each of the" in caplog.text
