"""Write the tour notebooks (``python notebooks/build_notebooks.py``): no outputs, no execution counts.

The notebooks are generated from the cell sources below so that they stay reviewable as plain Python; edit them
here and re-run this script (``tests/test_notebooks.py`` executes the result and checks that it is stripped).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

ROOT = Path.cwd().resolve().parent  # the notebooks run from notebooks/
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")
REAL_SAMPLES = ROOT / "tests" / "fixtures" / "real_samples"  # real RHD and InterHand2.6M files
torch.set_num_threads(2)


def show(image, title="", size=4):
    \"\"\"Plot one H×W×3 uint8 image.\"\"\"
    plt.figure(figsize=(size, size))
    plt.imshow(image)
    plt.title(title)
    plt.axis("off")
    plt.show()"""

DATA_TOUR = [
    new_markdown_cell(
        "# 01 · Data tour\n\n"
        "The embedded synthetic data set (procedural hands written in RHD's exact on-disk format), the crops the "
        "network sees with InterNet's augmentation, and a real RHD sample. Everything comes from the package; this "
        "notebook only plots."
    ),
    new_code_cell(SETUP),
    new_markdown_cell(
        "## A tiny synthetic set\n\n`generate_rhd_dataset` writes `training/` and `evaluation/` with `color/`, "
        "`mask/`, `depth/` and `anno_*.pickle`, exactly like RHD_published_v2."
    ),
    new_code_cell(
        """\
from internet_plus.data.synthetic import generate_rhd_dataset, render_sample

root = generate_rhd_dataset(Path(tempfile.mkdtemp()) / "rhd", num_train=16, num_eval=8, seed=0)
print(root)
print(sorted(p.name for p in (root / "training").iterdir()))"""
    ),
    new_markdown_cell(
        "`render_sample` is what the generator writes for one index: colour, segmentation mask, depth and the "
        "annotation (RHD's native joint order)."
    ),
    new_code_cell(
        """\
color, mask, depth, annotation = render_sample(seed=0, split="training", index=0, two_hand_fraction=0.3)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.5))
for ax, (img, title) in zip(axes, [(color, "colour"), (mask, "mask ids"), (depth, "depth (m)")]):
    ax.imshow(img)
    ax.set_title(title)
    ax.axis("off")
plt.show()
{k: v.shape for k, v in annotation.items()}"""
    ),
    new_markdown_cell(
        "## Raw images with their 2-D keypoints\n\n`read_rhd_split` gives the records in the project's joint order "
        "(right hand 0-20, left 21-41); `draw_skeleton` draws the dominant hand's 21 joints."
    ),
    new_code_cell(
        """\
from internet_plus.data.images import read_rgb
from internet_plus.data.rhd import read_rhd_split
from internet_plus.joints import NUM_JOINTS, hand_slice
from internet_plus.visualize import draw_skeleton, make_grid, to_uint8_image

records = read_rhd_split(root, "training")
tiles = []
for record in records[:8]:
    valid = np.zeros(NUM_JOINTS)
    valid[hand_slice(record.hand)] = 1.0
    tiles.append(draw_skeleton(read_rgb(record.image_path), record.uv, valid))
show(make_grid(tiles, cols=4), "raw synthetic images (right hand red, left blue)", size=9)"""
    ),
    new_markdown_cell(
        "## Crops with augmentation\n\n`RHDDataset(..., augment=True)` draws InterNet's augmentation (scale, "
        "rotation, shift, colour) per sample and epoch: `dataset[(epoch, i)]` is reproducible."
    ),
    new_code_cell(
        """\
from internet_plus.data.rhd import RHDDataset

train = RHDDataset(root, "training", input_size=128, augment=True, seed=0)
print(train)
sample = train[(0, 0)]
print({k: tuple(v.shape) for k, v in sample.items()})
tiles = [
    draw_skeleton(to_uint8_image(s["image"]), s["joints_img"], s["joint_valid"])
    for s in (train[(epoch, 0)] for epoch in range(8))
]
show(make_grid(tiles, cols=4), "sample 0, epochs 0-7", size=8)"""
    ),
    new_markdown_cell(
        "The data module does the same for a whole run (`dataset=synthetic`); `render_preview` is what "
        "`python -m internet_plus.data.preview` writes."
    ),
    new_code_cell(
        """\
from internet_plus.data.preview import render_preview
from internet_plus.data.synthetic.datamodule import SyntheticDataModule

datamodule = SyntheticDataModule(
    root=str(root), num_train=16, num_eval=8, input_size=128, batch_size=4, num_workers=0,
    pin_memory=False, persistent_workers=False,
)
show(render_preview(datamodule, num=8, cols=4, split="train", seed=0), "training crops (augmented)", size=8)
show(render_preview(datamodule, num=8, cols=4, split="test", seed=0), "evaluation crops (identity)", size=8)"""
    ),
    new_markdown_cell(
        "## A real RHD sample\n\nFrom `tests/fixtures/real_samples/rhd` (COCO-style annotations of one hand "
        "in RHD's native joint order, tip to base; `rhd_format.PROJECT_FROM_RHD` maps it to ours)."
    ),
    new_code_cell(
        """\
import json

from internet_plus.data import rhd_format
from internet_plus.joints import LEFT, RIGHT

real_rhd = REAL_SAMPLES / "rhd"
if not (real_rhd / "test_rhd.json").is_file():
    print(f"{real_rhd} is not present; skipping the real sample")
else:
    data = json.loads((real_rhd / "test_rhd.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    per_hand = rhd_format.PROJECT_FROM_RHD[:21] - 21  # project joint j of a hand = native joint per_hand[j]
    tiles = []
    for ann in data["annotations"]:
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, 3)[per_hand]
        hand = RIGHT if ann["hand_type"] == "right" else LEFT
        uv, valid = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS)
        uv[hand_slice(hand)], valid[hand_slice(hand)] = keypoints[:, :2], keypoints[:, 2]
        image = read_rgb(real_rhd / images[ann["image_id"]]["file_name"])
        tiles.append(draw_skeleton(image, uv, valid))
    show(make_grid(tiles, cols=len(tiles)), "real RHD samples", size=9)"""
    ),
]

MODEL_TOUR = [
    new_markdown_cell(
        "# 02 · Model tour\n\n"
        "InterNet+'s feature extractor walked row by row through the paper's Table 1, its parameter count, and "
        "the mean feature maps of a few layers for one image (as in the paper's Figure 6)."
    ),
    new_code_cell(SETUP),
    new_markdown_cell("## Table 1, row by row"),
    new_code_cell(
        """\
from internet_plus.models.backbones.internet_plus import TABLE1, InterNetPlusBackbone
from internet_plus.models.summary import count_parameters, format_shape, summarize

torch.manual_seed(0)
backbone = InterNetPlusBackbone().eval()
rows = summarize(backbone, (3, 256, 256), [(name, module) for _, name, module in backbone.named_rows()])
print(f"{'id':>2}  {'name':<21} {'kernel':<6} {'attention':<9} {'activation':<10} {'t':>3}  {'output':<16} params")
for spec, row in zip(TABLE1, rows, strict=True):
    kernel = "-" if spec.kernel is None else f"{spec.kernel}x{spec.kernel}"
    t = "-" if spec.expansion is None else f"{spec.expansion:g}"
    print(
        f"{spec.id:>2}  {spec.name:<21} {kernel:<6} {spec.attention:<9} {spec.activation:<10} {t:>3}  "
        f"{format_shape(row.output_shape):<16} {row.params:,}"
    )
total = count_parameters(backbone)
print(f"total: {total:,} parameters")
assert total == 11_103_221"""
    ),
    new_markdown_cell(
        "`model_summary` prints the same table plus PoseNet's children for a whole `HandPoseModule` (what "
        "`train.py summary=true` shows). Here with a small head, at a 128-pixel input:"
    ),
    new_code_cell(
        """\
from internet_plus.lit_module import HandPoseModule
from internet_plus.models.backbones.registry import backbone_config
from internet_plus.models.summary import model_summary

model = HandPoseModule(
    backbone=backbone_config("internet_plus"),  # conf/backbone/internet_plus.yaml, as train.py composes it
    posenet={"deconv_channels": 16, "num_deconv": 3, "depth_bins": 16, "root_depth_bins": 16, "mlp_hidden": 32},
    codec={"input_size": 128, "heatmap_size": 32, "depth_bins": 16, "root_depth_bins": 16},
)
print(model_summary(model, input_size=128))"""
    ),
    new_markdown_cell("Parameters per row (the last convolutions hold most of them):"),
    new_code_cell(
        """\
plt.figure(figsize=(9, 3))
plt.bar([str(spec.id) for spec in TABLE1], [row.params / 1e6 for row in rows])
plt.xlabel("Table 1 row")
plt.ylabel("parameters (M)")
plt.title(f"InterNet+ backbone: {total:,} parameters")
plt.show()"""
    ),
    new_markdown_cell(
        "## Feature maps (Figure 6 style)\n\nForward hooks on a few rows; each map is the mean over channels. The "
        "backbone here is untrained (initialised as MoGA does), so the maps show structure, not learned hand "
        "features."
    ),
    new_code_cell(
        """\
from internet_plus.data.synthetic import render_sample

color, _, _, _ = render_sample(seed=0, split="evaluation", index=1, two_hand_fraction=0.0, size=256)
image = torch.from_numpy(color).permute(2, 0, 1).float().div(255).unsqueeze(0)
shown = ["First Conv", "Inverted Residual 1", "Inverted Residual 6", "Inverted Residual 13", "Final Conv"]
maps = {}
handles = [
    module.register_forward_hook(lambda _m, _i, out, name=name: maps.__setitem__(name, out.mean(1)[0]))
    for _, name, module in backbone.named_rows()
    if name in shown
]
with torch.no_grad():
    features = backbone(image)
for handle in handles:
    handle.remove()
print("features:", tuple(features.shape))
fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3 * (len(shown) + 1), 3))
axes[0].imshow(color)
axes[0].set_title("input 256×256")
for ax, name in zip(axes[1:], shown):
    ax.imshow(maps[name].numpy(), cmap="viridis")
    ax.set_title(f"{name}\\n{tuple(maps[name].shape)}")
for ax in axes:
    ax.axis("off")
plt.show()"""
    ),
]

INFERENCE = [
    new_markdown_cell(
        "# 03 · Inference\n\n"
        "A tiny model from the TINY test configuration (64-pixel input, small head; CPU, no download), trained "
        "for a few steps on a tiny synthetic set, run on a synthetic and a real image, decoded with the codec and "
        "drawn against the ground truth; then `predict.py`'s function on a folder. With so little training the "
        "predictions are poor: this shows the plumbing, not accuracy."
    ),
    new_code_cell(SETUP),
    new_markdown_cell(
        "## The model from the Hydra configs\n\nThe same overrides as the tests' `TINY` (`tests/conftest.py`)."
    ),
    new_code_cell(
        """\
import hydra
import pytorch_lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from internet_plus.data.synthetic import generate_rhd_dataset

work = Path(tempfile.mkdtemp())
data_root = generate_rhd_dataset(work / "rhd", num_train=16, num_eval=4, seed=0)
TINY = [
    "trainer=cpu", "logger=none", "data.input_size=64", "data.batch_size=4", "data.num_workers=0",
    "data.persistent_workers=false", "data.pin_memory=false", "model.posenet.deconv_channels=16",
    "model.posenet.mlp_hidden=32", "model.codec.heatmap_size=16", "model.codec.depth_bins=16",
    "model.codec.root_depth_bins=16", "model.codec.sigma=1.0",
]
overrides = [*TINY, "dataset=synthetic", f"data.root={data_root}", "data.num_train=16", "data.num_eval=4"]
GlobalHydra.instance().clear()
with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
    cfg = compose("train", overrides=overrides)
L.seed_everything(0)
model = hydra.utils.instantiate(cfg.model)
datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
print(type(model).__name__, f"{sum(p.numel() for p in model.parameters()):,} parameters")"""
    ),
    new_markdown_cell("A few optimiser steps (seconds on a CPU), then a checkpoint as training writes it:"),
    new_code_cell(
        """\
trainer = L.Trainer(
    accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
)
trainer.fit(model, datamodule=datamodule)
ckpt = work / "tiny.ckpt"
trainer.save_checkpoint(ckpt)
model.eval()
print(ckpt)"""
    ),
    new_markdown_cell(
        "## A synthetic evaluation sample\n\nThe network's outputs are 3-D heatmaps and bins; "
        "`model.codec.decode` turns them into joints in crop pixels and in the camera frame."
    ),
    new_code_cell(
        """\
from internet_plus.visualize import draw_skeleton, make_grid, to_uint8_image

datamodule.setup("test")
sample = datamodule.test_set[0]
batch = {k: v.unsqueeze(0) for k, v in sample.items()}
with torch.no_grad():
    outputs = model(batch["image"])
pred = model.codec.decode(outputs, batch)
print({k: tuple(v.shape) for k, v in outputs.items()})
print({k: tuple(v.shape) for k, v in pred.items()})
crop = to_uint8_image(sample["image"])
truth = draw_skeleton(crop, sample["joints_img"], sample["joint_valid"], radius=1, thickness=1)
guess = draw_skeleton(crop, pred["joints_img"][0], sample["joint_valid"], radius=1, thickness=1)
show(make_grid([truth, guess], cols=2), "ground truth | prediction (64×64 crop)", size=6)
error = (pred["joints_cam"][0] - sample["joints_cam"]).norm(dim=-1)[sample["joint_valid"] > 0].mean()
print(f"mean joint error: {error:.1f} mm (an almost untrained model)")"""
    ),
    new_markdown_cell(
        "## A real image\n\n`predict_inputs.prepare` crops an image as evaluation does (whole image, or a box); the "
        "ground truth of the real RHD sample is drawn next to the prediction when it is present."
    ),
    new_code_cell(
        """\
import json

from omegaconf import OmegaConf

from internet_plus.data import rhd_format
from internet_plus.data.images import read_rgb
from internet_plus.joints import LEFT, NUM_JOINTS, RIGHT, hand_slice
from internet_plus.tasks import predict, predict_inputs

real_rhd = REAL_SAMPLES / "rhd"
if not (real_rhd / "test_rhd.json").is_file():
    print(f"{real_rhd} is not present; skipping the real image")
else:
    data = json.loads((real_rhd / "test_rhd.json").read_text())
    ann, info = data["annotations"][0], data["images"][0]
    frame = next(predict_inputs.iter_frames(real_rhd / info["file_name"]))
    box = {frame.keys[0]: ann["bbox"]}
    item = predict_inputs.prepare(frame, box, int(model.codec.input_size), OmegaConf.create({}))
    with torch.no_grad():
        outputs = model(torch.from_numpy(item.crop).unsqueeze(0))
    inv = torch.from_numpy(item.inv_trans).float()
    decoded = model.codec.decode_heatmaps(outputs["heatmaps"])
    xy = model.codec.heatmap_to_input(decoded)[0, :, :2]
    uv_pred = xy @ inv[:, :2].T + inv[:, 2]  # crop pixels -> original image pixels
    per_hand = rhd_format.PROJECT_FROM_RHD[:21] - 21
    keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, 3)[per_hand]
    hand = RIGHT if ann["hand_type"] == "right" else LEFT
    uv_true, valid = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS)
    uv_true[hand_slice(hand)], valid[hand_slice(hand)] = keypoints[:, :2], 1.0
    truth = draw_skeleton(frame.image, uv_true, valid)
    guess = draw_skeleton(frame.image, uv_pred, valid)
    show(make_grid([truth, guess], cols=2), f"{info['file_name']}: ground truth | prediction", size=8)"""
    ),
    new_markdown_cell(
        "## `predict.py` on a folder\n\n`python predict.py ckpt_path=<file> input=<folder>` calls "
        "`internet_plus.tasks.predict.run(cfg)`; here it is called directly with a composed `predict` config. It "
        "writes one JSON record, a 2-D overlay and a 3-D plot per image, plus `summary.json`."
    ),
    new_code_cell(
        """\
folder = REAL_SAMPLES / "rhd" if (REAL_SAMPLES / "rhd").is_dir() else data_root / "evaluation" / "color"
out = work / "predictions"
GlobalHydra.instance().clear()
with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
    predict_cfg = compose(
        "predict",
        overrides=[f"ckpt_path={ckpt}", f"input={folder}", f"out={out}", "device=cpu", "progress=false"],
    )
summary = predict.run(predict_cfg)
print(json.dumps({k: summary[k] for k in ("num_ok", "num_errors", "predicted")}, indent=1))
first = summary["predicted"][0]
record = json.loads((out / f"{first}.json").read_text())
print(sorted(record))
# predict.run switches matplotlib to its file backend, so the written PNGs are displayed as files
from IPython.display import Image, display

display(Image(filename=out / f"{first}_overlay.png", width=320), Image(filename=out / f"{first}_3d.png", width=320))"""
    ),
]

NOTEBOOKS = {
    "01_data_tour.ipynb": DATA_TOUR,
    "02_model_tour.ipynb": MODEL_TOUR,
    "03_inference.ipynb": INFERENCE,
}


def build(folder: Path = HERE) -> list[Path]:
    """Write every notebook into ``folder``; returns their paths."""
    paths = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
            },
        )
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"
        nbformat.validate(nb)
        path = folder / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in build():
        print(written)
