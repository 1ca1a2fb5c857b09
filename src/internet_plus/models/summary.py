"""Model summaries: output shape and parameters per layer, laid out like the paper's Table 1 and Table 3.

``python -m internet_plus.models.summary --backbone internet_plus --input-size 256`` prints Table 1 with the output
shape and parameter count of every row, the total, and the size in MiB as the paper's Table 3 counts it
(parameters × 4 bytes / 2^20). ``--posenet`` adds InterNet's PoseNet head and the whole model's total. The
backbones are the members of the registry, ``conf/backbone/*.yaml`` (:mod:`internet_plus.models.backbones.registry`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn


class SummaryRow(NamedTuple):
    """One summarised module: its name, its output shape without the batch axis (None if it did not run or did
    not return a tensor) and its parameter count (its submodules included)."""

    name: str
    output_shape: tuple[int, ...] | None
    params: int


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (buffers such as BN statistics or FcaNet's DCT filters excluded)."""
    return sum(p.numel() for p in module.parameters())


def mebibytes(params: int) -> float:
    """Parameter size in MiB at 4 bytes per parameter (the paper's Table 3 "Parameters Size (MB)")."""
    return params * 4 / 2**20


def _output_shape(output: Any) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape[1:])
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return tuple(output[0].shape[1:])
    return None


def summarize(
    module: nn.Module,
    input_shape: Sequence[int],
    modules: Iterable[tuple[str, nn.Module]] | None = None,
) -> list[SummaryRow]:
    """Run one sample of shape ``input_shape`` (no batch axis) through ``module`` and record, with forward hooks,
    the output shape and parameter count of each of ``modules`` (default: the top-level children).

    The pass runs in eval mode without gradients (the module's mode is restored). Rows follow the order in which the
    modules first ran; modules that did not run come last with ``output_shape=None``.
    """
    targets = list(module.named_children() if modules is None else modules)
    shapes: dict[int, tuple[int, ...] | None] = {}
    order: list[int] = []

    def hook_for(index: int):
        def hook(_mod: nn.Module, _inp: Any, output: Any) -> None:
            if index not in shapes:
                order.append(index)
            shapes[index] = _output_shape(output)

        return hook

    handles = [mod.register_forward_hook(hook_for(i)) for i, (_, mod) in enumerate(targets)]
    was_training = module.training
    first_param = next(module.parameters(), None)
    device = first_param.device if first_param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    sample = torch.rand(1, *input_shape, generator=generator).to(device)
    try:
        module.eval()
        with torch.no_grad():
            module(sample)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    indices = order + [i for i in range(len(targets)) if i not in shapes]
    return [SummaryRow(targets[i][0], shapes.get(i), count_parameters(targets[i][1])) for i in indices]


def format_shape(shape: Sequence[int] | None) -> str:
    """``(16, 128, 128)`` -> ``"16 × 128 × 128"`` (Table 1's notation); None -> ``"-"``."""
    return "-" if shape is None else " × ".join(str(s) for s in shape)


def _format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))

    rule = "-" * len(line(headers))
    return [line(headers), rule, *(line(r) for r in rows), rule]


def _totals(params: int, what: str) -> str:
    return f"{what}: {params:,} parameters ({params / 1e6:.2f} M), {mebibytes(params):.2f} MiB (params × 4 B / 2^20)"


def backbone_table(backbone: nn.Module, input_size: int = 256) -> str:
    """Table 1 of the paper for ``backbone`` at a ``input_size``² input: one line per row with kernel, attention,
    activation, output shape and parameters, then the totals.

    Uses the backbone's ``named_rows()``/``table_rows()`` when it has them (InterNet+); any other backbone
    (ResNet-50) is listed by its top-level children.
    """
    input_shape = (3, input_size, input_size)
    if hasattr(backbone, "named_rows"):
        specs = {row.name: row for row in backbone.table_rows()}
        summary = summarize(backbone, input_shape, [(name, mod) for _, name, mod in backbone.named_rows()])
        lines_in = []
        for row in summary:
            spec = specs[row.name]
            kernel = "-" if spec.kernel is None else f"{spec.kernel} × {spec.kernel}"
            shape = format_shape(row.output_shape)
            lines_in.append([str(spec.id), row.name, kernel, spec.attention, spec.activation, shape, f"{row.params:,}"])
        headers = ["id", "Name", "Kernel", "Attention", "Activation", "Dimensionality", "Params"]
        input_line = ["-", "Input", "-", "-", "-", format_shape(input_shape), "-"]
        right = [True, False, False, False, False, False, True]
        title = f"{type(backbone).__name__} (paper Table 1), input {format_shape(input_shape)}"
    else:
        summary = summarize(backbone, input_shape)
        lines_in = [
            [str(i), row.name, format_shape(row.output_shape), f"{row.params:,}"] for i, row in enumerate(summary, 1)
        ]
        headers = ["id", "Name", "Dimensionality", "Params"]
        input_line = ["-", "Input", format_shape(input_shape), "-"]
        right = [True, False, False, True]
        title = f"{type(backbone).__name__}, input {format_shape(input_shape)}"
    table = _format_table(headers, [input_line, *lines_in], right)
    return "\n".join([title, *table, _totals(count_parameters(backbone), "Total")])


def module_table(module: nn.Module, input_shape: Sequence[int]) -> str:
    """Top-level children of ``module`` (e.g. PoseNet's two heatmap branches and two MLPs) with output shapes and
    parameters for one input of ``input_shape`` (no batch axis), then the module's total."""
    summary = summarize(module, input_shape)
    children = dict(module.named_children())
    rows = [
        [row.name, type(children[row.name]).__name__, format_shape(row.output_shape), f"{row.params:,}"]
        for row in summary
    ]
    table = _format_table(["Name", "Type", "Output", "Params"], rows, [False, False, False, True])
    title = f"{type(module).__name__}, input {format_shape(input_shape)}"
    return "\n".join([title, *table, _totals(count_parameters(module), "Total")])


def model_summary(model: nn.Module, input_size: int = 256) -> str:
    """Summary of a whole pose model at an ``input_size``² input: the backbone's Table 1, PoseNet's children and the
    combined total (used by ``train.py summary=true``).

    ``model`` has ``backbone`` and ``posenet`` attributes (``HandPoseModule``); any other module is summarised by its
    top-level children with a 3×input_size×input_size input.
    """
    backbone, posenet = getattr(model, "backbone", None), getattr(model, "posenet", None)
    if not isinstance(backbone, nn.Module) or not isinstance(posenet, nn.Module):
        return module_table(model, (3, input_size, input_size))
    features = summarize(backbone, (3, input_size, input_size), [("features", backbone)])[0].output_shape
    assert features is not None
    total = count_parameters(backbone) + count_parameters(posenet)
    return "\n\n".join(
        [
            backbone_table(backbone, input_size),
            module_table(posenet, features),
            _totals(total, "Backbone + PoseNet"),
        ]
    )


def build_named_backbone(name: str) -> nn.Module:
    """A backbone by its registry name (``conf/backbone/<name>.yaml``); ``ValueError`` listing the names if unknown."""
    from internet_plus.models.backbones import build_backbone
    from internet_plus.models.backbones.registry import backbone_config

    return build_backbone(backbone_config(name))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print a backbone's Table 1 summary (and optionally PoseNet's)."""
    from internet_plus.models.backbones.registry import backbone_names

    parser = argparse.ArgumentParser(
        prog="python -m internet_plus.models.summary",
        description="Per-layer output shapes and parameter counts (paper Tables 1 and 3).",
    )
    parser.add_argument("--backbone", choices=backbone_names(), default="internet_plus")
    parser.add_argument("--input-size", type=int, default=256, help="side of the square input image (default 256)")
    parser.add_argument("--posenet", action="store_true", help="also summarise InterNet's PoseNet head")
    args = parser.parse_args(argv)
    if args.input_size < 32:
        parser.error(f"--input-size must be at least 32, got {args.input_size}")

    backbone = build_named_backbone(args.backbone)
    if args.posenet:
        from internet_plus.models.posenet import PoseNet

        model = nn.Module()
        model.backbone = backbone
        model.posenet = PoseNet(in_channels=int(backbone.out_channels))
        print(model_summary(model, args.input_size))
    else:
        print(backbone_table(backbone, args.input_size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
