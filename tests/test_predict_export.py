"""Prediction on real images (annotated, detected and whole-image boxes), folders with bad files, boxes and video;
ONNX export parity with onnxruntime.

A tiny checkpoint is trained once for the module (one optimiser step on the session's synthetic data set), saved
with ``Trainer.save_checkpoint`` and loaded back as users do (``weights_only``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, compose_config

from internet_plus.detect.boxes import box_iou
from internet_plus.joints import NUM_JOINTS
from internet_plus.tasks import predict as predict_task


def _predict_cfg(ckpt: Path, tmp_path: Path, *extra: str):
    return compose_config(
        "predict",
        [f"ckpt_path={ckpt}", f"paths.log_dir={tmp_path / 'logs'}", "progress=false", "batch_size=3", *extra],
        tmp_path / "run",
    )


def _write_image(path: Path, width: int = 96, height: int = 80, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def _check_record(record: dict, out: Path) -> None:
    width, height = record["image_size"]
    uv = np.asarray(record["joints_2d_px"])
    assert uv.shape == (NUM_JOINTS, 2)
    assert np.isfinite(uv).all()
    # whole-image or annotated boxes enlarged ×1.25: the crop never reaches more than ~60 % beyond the image
    margin = 0.6 * max(width, height)
    assert (uv > -margin).all() and (uv[:, 0] < width + margin).all() and (uv[:, 1] < height + margin).all()
    rel = np.asarray(record["joints_3d_rel_mm"])
    assert rel.shape == (NUM_JOINTS, 3) and np.isfinite(rel).all()
    np.testing.assert_allclose(rel[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(rel[21], 0.0, atol=1e-6)
    assert np.asarray(record["joints_3d_cam_mm"]).shape == (NUM_JOINTS, 3)
    prob = record["hand_prob"]
    assert len(prob) == 2 and all(0.0 <= p <= 1.0 for p in prob)
    assert np.isfinite(record["rel_root_depth_mm"])
    assert record["drawn_hands"] and set(record["drawn_hands"]) <= {"right", "left"}
    assert len(record["box"]) == 4 and len(record["box_processed"]) == 4
    for suffix in ("_overlay.png", "_3d.png"):
        image = cv2.imread(str(out / f"{record['name']}{suffix}"))
        assert image is not None and image.size > 0, suffix
    overlay = cv2.imread(str(out / f"{record['name']}_overlay.png"))
    assert overlay.shape[:2] == (height, width)


def test_predict_real_samples(tiny_ckpt: Path, real_samples: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    boxes = {}
    for sub in ("rhd", "interhand2.6m"):
        for file in sorted((real_samples / sub).iterdir()):
            if file.suffix in (".png", ".jpg"):
                shutil.copy(file, images / file.name)
    # RHD with its annotated (scored-hand) boxes, InterHand2.6M with the whole image (asked for explicitly)
    annotations = json.loads((real_samples / "rhd" / "test_rhd.json").read_text())
    names = {im["id"]: im["file_name"] for im in annotations["images"]}
    for ann in annotations["annotations"]:
        boxes[names[ann["image_id"]]] = ann["bbox"]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    cfg = _predict_cfg(
        tiny_ckpt,
        tmp_path,
        f"input={images}",
        f"out={out}",
        f"boxes={tmp_path / 'boxes.json'}",
        "boxes_missing=whole_image",
    )
    summary = predict_task.run(cfg)
    stems = sorted(p.stem for p in images.iterdir())
    assert summary["num_ok"] == len(stems) == 7 and summary["num_errors"] == 0
    assert json.loads((out / "errors.json").read_text()) == []
    for stem in stems:
        record = json.loads((out / f"{stem}.json").read_text())
        _check_record(record, out)
        if f"{stem}.png" in boxes:
            assert record["box_source"] == "file" and record["box_key"] == f"{stem}.png"
            assert record["box"] == pytest.approx(boxes[f"{stem}.png"], abs=1e-3)
        else:
            assert record["box_source"] == "whole_image"
            assert record["box"] == [0.0, 0.0, *record["image_size"]]
            assert record["focal"] == [record["image_size"][0]] * 2
        assert "detected_hands" not in record and record["smoothed"] is False


def test_predict_detects_the_hands_and_records_an_image_without_one(
    tiny_ckpt: Path, real_samples: Path, tmp_path: Path
) -> None:
    """boxes=auto (the default) on the real RHD photos and a blank image: a detected box over the annotated hand
    with MediaPipe's handedness beside our hand_prob, and the blank image an error record while the others go on."""
    images = tmp_path / "images"
    images.mkdir()
    for file in (real_samples / "rhd").glob("*.png"):
        shutil.copy(file, images / file.name)
    assert cv2.imwrite(str(images / "blank.png"), np.full((320, 320, 3), 128, np.uint8))
    annotations = json.loads((real_samples / "rhd" / "test_rhd.json").read_text())
    names = {im["id"]: Path(im["file_name"]).stem for im in annotations["images"]}
    truth = {names[ann["image_id"]]: ann for ann in annotations["annotations"]}
    out = tmp_path / "out"
    summary = predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={images}", f"out={out}"))
    assert summary["predicted"] == sorted(truth) and summary["num_errors"] == 1
    errors = json.loads((out / "errors.json").read_text())
    assert [(e["name"], e["error"]) for e in errors] == [
        ("blank", "no hand detected (MediaPipe, min_detection_confidence=0.3)")
    ]
    assert not (out / "blank.json").exists()
    for stem, ann in truth.items():
        record = json.loads((out / f"{stem}.json").read_text())
        _check_record(record, out)
        assert record["box_source"] == "auto" and record["detection"] == "detected" and record["smoothed"] is False
        assert box_iou(record["box"], ann["bbox"]) >= 0.3
        held = [hand for hand in record["detected_hands"] if hand["in_box"]]
        assert len(held) == 1 and held[0]["handedness"] == ann["hand_type"] and 0.5 < held[0]["score"] <= 1.0
        assert np.asarray(held[0]["landmarks_px"]).shape == (21, 2) and len(record["hand_prob"]) == 2


def test_boxes_auto_without_mediapipe_names_the_fix_before_any_work(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internet_plus.detect import mediapipe_hands

    real_import = mediapipe_hands.importlib.import_module

    def without_mediapipe(name: str, *args: object) -> object:
        if name.split(".")[0] == "mediapipe":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(mediapipe_hands.importlib, "import_module", without_mediapipe)
    image = tmp_path / "one.png"
    _write_image(image)
    out = tmp_path / "out"
    with pytest.raises(mediapipe_hands.MediaPipeMissingError) as error:
        predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={image}", f"out={out}"))
    message = str(error.value)
    assert "boxes=whole_image" in message and "boxes=<file.json>" in message and "--no-deps mediapipe==" in message
    assert not out.exists()
    # the other box sources do not need it
    summary = predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={image}", f"out={out}", "boxes=whole_image"))
    assert summary["predicted"] == ["one"]


def test_predict_folder_with_corrupt_file_and_bad_boxes(tiny_ckpt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for k, name in enumerate(("a.png", "b.jpg", "c.png", "d.png", "e.bmp")):
        _write_image(folder / name, seed=k)
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("ignored")
    boxes = {
        "c.png": [10, 10, -5, 20],  # non-positive width
        "d.png": [500, 500, 10, 10],  # outside the 96×80 image
        "e.bmp": [5, 5, float("nan"), 10],  # non-finite
        "b.jpg": [20, 10, 40, 50],  # fine
    }
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    cfg = _predict_cfg(tiny_ckpt, tmp_path, f"input={folder}", f"out={out}", f"boxes={tmp_path / 'boxes.json'}")
    summary = predict_task.run(cfg)
    assert summary["predicted"] == ["b"]
    errors = {e["name"]: e for e in json.loads((out / "errors.json").read_text())}
    assert set(errors) == {"a", "broken", "c", "d", "e"}
    assert "broken.jpg" in errors["broken"]["source"] and "cannot read" in errors["broken"]["error"]
    assert "no box for it" in errors["a"]["error"] and "boxes_missing=whole_image" in errors["a"]["error"]
    assert "non-positive" in errors["c"]["error"]
    assert "outside" in errors["d"]["error"]
    assert "non-finite" in errors["e"]["error"]
    _check_record(json.loads((out / "b.json").read_text()), out)
    assert json.loads((out / "b.json").read_text())["box"] == [20.0, 10.0, 40.0, 50.0]
    assert not (out / "a.json").exists()  # never a silent whole-image fallback

    # asked for explicitly, an image without a box is predicted on the whole image
    out2 = tmp_path / "out2"
    cfg = _predict_cfg(
        tiny_ckpt,
        tmp_path,
        f"input={folder}",
        f"out={out2}",
        f"boxes={tmp_path / 'boxes.json'}",
        "boxes_missing=whole_image",
    )
    assert predict_task.run(cfg)["predicted"] == ["a", "b"]
    assert json.loads((out2 / "a.json").read_text())["box_source"] == "whole_image"


def test_predict_video_one_record_per_frame(tiny_ckpt: Path, tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    overrides = ("device=cpu", "boxes=whole_image", "video.frame_images=true")
    summary = predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={video}", f"out={out}", *overrides))
    assert summary["predicted"] == [f"clip_{k:06d}" for k in range(4)]
    assert summary["overlay_video"] == str(out / "clip_overlay.mp4") and summary["video_frames"] == 4
    for k in range(4):
        record = json.loads((out / f"clip_{k:06d}.json").read_text())
        assert record["frame"] == k and record["image_size"] == [64, 48]
        assert record["box_source"] == "whole_image" and record["smoothed"] is True
        _check_record(record, out)


def test_predict_refuses_non_empty_out_and_fails_when_nothing_succeeds(tiny_ckpt: Path, tmp_path: Path) -> None:
    image = tmp_path / "one.png"
    _write_image(image)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={image}", f"out={out}"))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    out2 = tmp_path / "out2"
    with pytest.raises(RuntimeError, match="no input could be predicted"):
        predict_task.run(_predict_cfg(tiny_ckpt, tmp_path, f"input={bad}", f"out={out2}"))
    assert json.loads((out2 / "errors.json").read_text())[0]["name"] == "bad"


@pytest.mark.slow
def test_predict_command_writes_into_the_run_dir(tiny_ckpt: Path, real_samples: Path, tmp_path: Path) -> None:
    image = tmp_path / "hand.png"
    shutil.copy(real_samples / "rhd" / "00111.png", image)  # boxes=auto, the default, finds its hand
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    args = [sys.executable, str(ROOT / "predict.py"), f"ckpt_path={tiny_ckpt}", f"paths.log_dir={tmp_path / 'logs'}"]
    done = subprocess.run(
        [*args, f"input={image}", "progress=false"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "logs" / "predict" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "hand.json").is_file() and (runs[0] / "hand_overlay.png").is_file()
    assert json.loads((runs[0] / "hand.json").read_text())["box_source"] == "auto"


# --------------------------------------------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def onnx_export(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny checkpoint exported with a dynamic batch by the command line (``python export.py``, Hydra)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[export]')")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e '.[export]')")
    folder = tmp_path_factory.mktemp("onnx")
    out = folder / "model.onnx"
    args = [f"ckpt_path={tiny_ckpt}", f"out={out}", "dynamic_batch=true", "check=false"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "export.py"), *args, f"paths.log_dir={folder / 'logs'}"],
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_file() and "exported" in (done.stdout + done.stderr)
    assert [p.name for p in (folder / "logs" / "export" / "runs").iterdir()]  # the run directory with its log
    return tiny_ckpt, out


@pytest.mark.slow
def test_onnx_export_matches_pytorch(onnx_export: tuple[Path, Path]) -> None:
    import onnx

    from internet_plus.export import INPUT_NAME, OUTPUT_NAMES, check_onnx, load_module

    ckpt, path = onnx_export
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic (dynamic) batch axis
    model = load_module(ckpt)
    report = check_onnx(model, path, batch_sizes=(1, 3))
    print("ONNX vs PyTorch:", report)
    assert report["max_abs_diff"] < 1e-3, report
    # The tiny model's heatmaps are nearly flat, so argmax flips between near-equal voxels do happen (≈5 % of the
    # joints); every flip must be a near-tie: PyTorch's value at onnxruntime's voxel is within 1e-3 of the joint's
    # heatmap range (max − min) of its maximum.
    assert report["argmax_match"] >= 0.8, report
    assert report["argmax_tie_gap_rel"] < 1e-3, report

    # the decoded outputs equal the PyTorch codec's own decoding
    from internet_plus.export import ExportWrapper

    image = torch.rand(2, 3, model.codec.input_size, model.codec.input_size)
    with torch.no_grad():
        joints, _, root_mm, hand_prob = ExportWrapper(model)(image)
        outputs = model(image)
    torch.testing.assert_close(joints, model.codec.heatmap_to_input(model.codec.decode_heatmaps(outputs["heatmaps"])))
    torch.testing.assert_close(root_mm, model.codec.decode_root_depth(outputs["root_bins"]))
    torch.testing.assert_close(hand_prob, torch.sigmoid(outputs["hand_logits"]))


def test_the_export_check_is_one_line() -> None:
    from internet_plus.export import summarize_check

    report = {"batch_sizes": [1, 3], "max_abs_diff": 1.2e-5, "argmax_match": 0.995, "argmax_tie_gap_rel": 3e-8}
    line = summarize_check(report)
    assert "\n" not in line
    assert line == (
        "onnxruntime check at batch 1, 3: largest absolute difference 1.2e-05; argmax agreement 99.5 % (flips only "
        "at ties within 3.0e-08 of a joint's heatmap range)"
    )


def test_the_device_option_names_itself_in_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from internet_plus.utils.devices import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu") and select_device("CPU") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device=cuda:1: CUDA is not available here"):
        select_device("cuda:1")
    with pytest.raises(ValueError, match=r"^--device tpu: expected auto, cpu or cuda\[:<index>\]"):
        select_device("tpu", "--device ")
