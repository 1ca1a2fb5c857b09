"""A training batch with every key the training step reads (``HandPoseModule.training_step``: InterNet's loss and
the mean-pose baseline): images in [0, 1], joints inside the crop and the depth range, everything valid, both hands
present."""

from __future__ import annotations

import torch

from internet_plus.joints import NUM_JOINTS


def training_batch(batch_size: int, size: int, device: str | torch.device = "cpu", seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch_size, NUM_JOINTS, 2, generator=g) * size
    z = (torch.rand(batch_size, NUM_JOINTS, 1, generator=g) - 0.5) * 300.0
    batch = {
        "image": torch.rand(batch_size, 3, size, size, generator=g),
        "joints_img": torch.cat([xy, z], dim=-1),
        "joint_valid": torch.ones(batch_size, NUM_JOINTS),
        "rel_root_depth": (torch.rand(batch_size, generator=g) - 0.5) * 200.0,
        "root_valid": torch.ones(batch_size),
        "hand_type": torch.ones(batch_size, 2),
        "hand_type_valid": torch.ones(batch_size),
        "joints_cam": torch.randn(batch_size, NUM_JOINTS, 3, generator=g) * 50.0,
        "joint_annotated": torch.ones(batch_size, NUM_JOINTS),
    }
    return {k: v.to(device) for k, v in batch.items()}
