"""InterNet's feature extractor: torchvision's ResNet-50 without average pooling and fc (InterNet+ paper §3.1).

Output: B×2048×(H/32)×(W/32); 23,508,032 parameters (the paper's Table 3: 23.51 M, 89.68 MiB).

InterNet starts from torchvision's ImageNet weights, ``IMAGENET1K_V1`` (the classic ``resnet50-0676ba61.pth``;
internet §1), and so does ``pretrained: true``. Nothing is downloaded at run time: the weights are looked up in

1. torchvision's cache, ``$TORCH_HOME/hub/checkpoints/resnet50-0676ba61.pth`` (where torchvision itself puts them),
   checked against the SHA-256 prefix in the file name, as ``torch.hub`` does with ``check_hash=True``;
2. ``weights_path``, any local ResNet-50 state dict (a torchvision file, or one saved with ``state_dict()``).

When neither holds them, :class:`PretrainedWeightsError` names the exact file, where to put it and how to check it.
Inside :func:`initial_weights_replaced` (a resumed run, whose checkpoint's weights replace them at once) they are not
read at all, so a run can resume on a machine that lacks the file; its configuration still says where it started.
Every key of the backbone must load (the ``fc`` classifier is dropped); anything missing, unexpected or of another
shape is refused with the names of the offending keys.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

__all__ = [
    "IMAGENET_WEIGHTS",
    "PretrainedWeightsError",
    "ResNet50Backbone",
    "imagenet_weights_file",
    "initial_weights_replaced",
]

#: The weights InterNet starts from (torchvision's ``IMAGENET1K_V1``).
IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V1


_INITIAL_WEIGHTS_REPLACED: ContextVar[bool] = ContextVar("initial_weights_replaced", default=False)


@contextlib.contextmanager
def initial_weights_replaced() -> Iterator[None]:
    """Backbones built inside skip reading their initial weights (``pretrained``, ``weights_path``): the caller
    replaces every weight right after, from a checkpoint (``train.py resume=...``)."""
    token = _INITIAL_WEIGHTS_REPLACED.set(True)
    try:
        yield
    finally:
        _INITIAL_WEIGHTS_REPLACED.reset(token)


class PretrainedWeightsError(RuntimeError):
    """ImageNet weights were requested but cannot be obtained, or a weights file is not a ResNet-50's."""


def imagenet_weights_file() -> Path:
    """Where torchvision keeps ``IMAGENET1K_V1``: ``<torch.hub.get_dir()>/checkpoints/<file name of its URL>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_WEIGHTS.url).name


def _expected_sha256_prefix(file: Path) -> str:
    """The hash prefix in a torchvision file name (``resnet50-0676ba61.pth`` -> ``0676ba61``), as torch.hub reads it."""
    return file.stem.rsplit("-", 1)[-1]


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _missing_weights_message(expected: Path) -> str:
    return (
        "model.backbone.pretrained=true: torchvision's ImageNet ResNet-50 weights (IMAGENET1K_V1, InterNet's "
        f"initialisation) are not in torchvision's cache: expected the file {expected}. On a machine with internet "
        f'access, download {IMAGENET_WEIGHTS.url} (or run `python -c "import torchvision; '
        'torchvision.models.ResNet50_Weights.IMAGENET1K_V1.get_state_dict()"`, which stores it there) and copy it to '
        f"{expected.parent}/ (set TORCH_HOME to use another cache folder). Check it with `sha256sum {expected.name}`: "
        f"the digest must start with {_expected_sha256_prefix(expected)}. Or give any ResNet-50 state dict with "
        "model.backbone.weights_path=/path/to/file.pth, or train from scratch with model.backbone.pretrained=false."
    )


class ResNet50Backbone(nn.Module):
    """ResNet-50 stem + layer1-4 (InterNet's ``BackboneNet``).

    Args:
        pretrained: start from torchvision's ImageNet ``IMAGENET1K_V1`` weights, looked up in torchvision's cache and
            then in ``weights_path`` (module docstring); False: random initialisation (torchvision's).
        weights_path: a local ResNet-50 state dict; used when ``pretrained`` is false too (then it is the only source).
    """

    out_channels = 2048

    def __init__(self, pretrained: bool = False, weights_path: str | None = None) -> None:
        super().__init__()
        net = resnet50(weights=None)
        if (pretrained or weights_path) and not _INITIAL_WEIGHTS_REPLACED.get():
            self._load_into(net, self._find_weights(bool(pretrained), weights_path))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    @staticmethod
    def _find_weights(pretrained: bool, weights_path: str | None) -> Path:
        if pretrained:
            cached = imagenet_weights_file()
            if cached.is_file():
                digest = _sha256(cached)
                if not digest.startswith(_expected_sha256_prefix(cached)):
                    raise PretrainedWeightsError(
                        f"{cached}: SHA-256 {digest[:16]}… does not start with {_expected_sha256_prefix(cached)} (the "
                        "prefix in torchvision's file name): the download is incomplete or the file is another one. "
                        f"Delete it and download {IMAGENET_WEIGHTS.url} again"
                    )
                return cached
            if not weights_path:
                raise PretrainedWeightsError(_missing_weights_message(cached))
        file = Path(str(weights_path)).expanduser()
        if not file.is_file():
            raise PretrainedWeightsError(f"model.backbone.weights_path={weights_path}: no such file")
        return file

    @staticmethod
    def _load_into(net: nn.Module, file: Path) -> None:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged zip, a pickle with code, a text file...: all mean "not a state dict"
            raise PretrainedWeightsError(f"{file}: not a PyTorch state dict ({type(err).__name__}: {err})") from err
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise PretrainedWeightsError(f"{file}: not a state dict (a mapping of parameter names to tensors)")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys())
        reshaped = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
        if missing or unexpected or reshaped:
            raise PretrainedWeightsError(
                f"{file} is not a torchvision ResNet-50 state dict: {len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(reshaped)} of another shape "
                f"(e.g. {reshaped[:3]})"
            )
        net.load_state_dict(state, strict=False)  # strict apart from fc, checked above

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
