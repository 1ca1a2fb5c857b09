"""The InterNet+ paper's published figures (Tables 2-7), in one place, as the paper prints them.

Table 1 (the architecture) is the model itself: ``TABLE1`` in ``models/backbones/internet_plus.py``. Results
collection (``results/tables.py``) puts our runs beside :data:`ACCURACY`, the benchmark and the GPU check beside
:data:`TABLE3` and :data:`TABLE4`.

* Table 2: "Comparison of various methods on the accuracy of hand pose estimation on the STB and RHD datasets",
  EPE (mm). Spurr et al. [41] appears twice: with ground-truth scale and handedness at inference (GT S, GT H) and
  without.
* Table 3: parameters (millions), model size (MB) and training time per iteration (s) on an NVIDIA GeForce RTX
  2080Ti.
* Table 4: inference frames/s on RHD by batch size, same GPU.
* Table 5: "Comparison of MPJPE (mean per joint position error) ... on the InterHand2.6M dataset", mm; InterNet+'s
  numbers are from training on the 5 fps version of the data set.
* Table 6: "The ablation experiment for coordinate attention mechanism module", EPE (mm).
* Table 7: "Ablation experiment of the FcaNet module on different datasets", EPE (mm).
"""

from __future__ import annotations

#: Tables 2, 5, 6 and 7: row label -> column -> value (mm).
ACCURACY: dict[str, dict[str, dict[str, float]]] = {
    "2": {
        "Zimmermann et al. [11] (GT S, GT H)": {"stb": 8.68, "rhd": 30.42},
        "Yang et al. [39] (GT S, GT H)": {"stb": 8.66, "rhd": 19.95},
        "Chen et al. [40] (GT S, GT H)": {"stb": 10.95, "rhd": 24.20},
        "Spurr et al. [41] (GT S, GT H)": {"stb": 8.56, "rhd": 19.73},
        "Spurr et al. [41]": {"stb": 9.49, "rhd": 22.53},
        "InterNet [8]": {"stb": 7.95, "rhd": 20.89},
        "InterNet+ (ours)": {"stb": 7.38, "rhd": 19.30},
    },
    "5": {
        "InterNet": {"single": 12.16, "interacting": 16.02},
        "InterNet+ (ours)": {"single": 11.67, "interacting": 17.63},
    },
    "6": {
        "InterNet+ (without CA module)": {"stb": 7.44, "rhd": 19.36},
        "InterNet+ (with SE module)": {"stb": 7.76, "rhd": 19.45},
        "InterNet+ (ours)": {"stb": 7.38, "rhd": 19.30},
    },
    "7": {
        "InterNet+ (without FcaNet layer)": {"stb": 7.52, "rhd": 20.01},
        "InterNet+ (ours)": {"stb": 7.38, "rhd": 19.30},
    },
}

#: Table 3: model -> parameters (millions), size (MB), training time per iteration (s). "Total Parameters (M)" and
#: "Parameters Size (MB)" are the feature extractor's (ResNet-50 for InterNet); the time per iteration was taken with
#: ``cudnn.benchmark = True``.
TABLE3: dict[str, dict[str, float]] = {
    "internet": {"params_m": 23.51, "size_mb": 89.68, "time_per_iteration_s": 0.61},
    "internet_plus": {"params_m": 11.12, "size_mb": 42.42, "time_per_iteration_s": 0.58},
}

#: Table 4: model -> batch size -> inference frames/s on RHD.
TABLE4: dict[str, dict[int, float]] = {
    "internet": {1: 32.46, 4: 136.35, 8: 194.79, 16: 247.52, 32: 257.26},
    "internet_plus": {1: 28.41, 4: 101.32, 8: 151.50, 16: 227.36, 32: 296.41},
}

#: Where Tables 3 and 4 were measured.
TABLES_3_4_DEVICE = "NVIDIA GeForce RTX 2080Ti"

#: Our backbone registry names -> the paper's model keys in Tables 3 and 4.
MODEL_OF_BACKBONE = {"internet_plus": "internet_plus", "resnet50": "internet"}

__all__ = ["ACCURACY", "MODEL_OF_BACKBONE", "TABLE3", "TABLE4", "TABLES_3_4_DEVICE"]
