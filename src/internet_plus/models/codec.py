"""InterNet's target generation and test-time decoding (``docs/reference/internet.md`` §4 and §5).

:class:`HeatmapCodec` maps joints between the three spaces of the pipeline:

* **input space** — x, y in pixels of the S×S network input, z = depth relative to the joint's own wrist in mm
  (the sample key ``joints_img``);
* **heatmap space** — continuous voxel coordinates (x, y, z) of the D×H×W volume of each joint, "index = coordinate":
  voxel i is centred at coordinate i (§4.2, §4.3). The tensor axis order of a volume is (D, H, W) = (z, y, x);
* **camera space** — millimetres, x right, y down, z forward (``joints_cam``), reached through the inverse crop
  affine, an absolute wrist depth per hand and the pinhole intrinsics (§5.2).

It also gives InterNet's Gaussian target (§4.3), dense (:meth:`HeatmapCodec.render`) or as its three separable 1-D
factors (:meth:`HeatmapCodec.gaussian_factors`), which the losses (``models/losses.py``) read. Every method is
batched, device- and dtype-agnostic and loop-free over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from internet_plus.joints import JOINTS_PER_HAND


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for reduced-precision inputs (fp16 overflows on Σ target² ≈ 5.7·10⁶), else the input's own dtype."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


class HeatmapCodec:
    """Joints <-> heatmaps <-> pixels and millimetres, exactly as InterNet (internet §4, §5).

    A plain object (not an ``nn.Module``): it holds no parameters or buffers, and every tensor it builds is created on
    the device and in the dtype of its inputs.

    Args:
        input_size: S, side of the square network input in pixels (256 in InterNet).
        heatmap_size: H = W, side of each joint's heatmap in voxels (64 in InterNet).
        depth_bins: D, depth bins of each joint's heatmap (64 in InterNet).
        sigma: standard deviation of the Gaussian target, in voxels, on all three axes (2.5 in InterNet).
        depth_range_mm: span of the root-relative joint depth covered by the D bins, centred on the wrist
            (400 mm in InterNet: z_rel in [-200, 200) mm, 6.25 mm per bin).
        root_depth_bins: R, bins of the 1-D relative root-depth distribution (64 in InterNet).
        root_depth_range_mm: span of the relative root depth (left wrist − right wrist) covered by the R bins
            (400 mm in InterNet).
        peak: value of the Gaussian target at its centre (255 in InterNet, §4.3 and internet §7.2).
    """

    def __init__(
        self,
        input_size: int = 256,
        heatmap_size: int = 64,
        depth_bins: int = 64,
        sigma: float = 2.5,
        depth_range_mm: float = 400.0,
        root_depth_bins: int = 64,
        root_depth_range_mm: float = 400.0,
        peak: float = 255.0,
    ) -> None:
        for name, value in (
            ("input_size", input_size),
            ("heatmap_size", heatmap_size),
            ("depth_bins", depth_bins),
            ("root_depth_bins", root_depth_bins),
        ):
            if int(value) != value or value <= 0:
                raise ValueError(f"HeatmapCodec: {name} must be a positive integer, got {value!r}")
        for name, value in (
            ("sigma", sigma),
            ("depth_range_mm", depth_range_mm),
            ("root_depth_range_mm", root_depth_range_mm),
            ("peak", peak),
        ):
            if not float(value) > 0:
                raise ValueError(f"HeatmapCodec: {name} must be positive, got {value!r}")
        self.input_size = int(input_size)
        self.heatmap_size = int(heatmap_size)
        self.depth_bins = int(depth_bins)
        self.sigma = float(sigma)
        self.depth_range_mm = float(depth_range_mm)
        self.root_depth_bins = int(root_depth_bins)
        self.root_depth_range_mm = float(root_depth_range_mm)
        self.peak = float(peak)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"depth_bins={self.depth_bins}, sigma={self.sigma}, depth_range_mm={self.depth_range_mm}, "
            f"root_depth_bins={self.root_depth_bins}, root_depth_range_mm={self.root_depth_range_mm}, "
            f"peak={self.peak})"
        )

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """(D, H, W) of one joint's heatmap."""
        return self.depth_bins, self.heatmap_size, self.heatmap_size

    # ------------------------------------------------------------------------------------------------ encoding (§4.2)
    def encode_joints(self, joints_img: torch.Tensor, joint_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input space -> continuous heatmap coordinates, plus the training validity (internet §4.2).

        x_hm = x · H / S and y_hm = y · H / S (no half-pixel offset); z_hm = (z_rel / (range/2) + 1) / 2 · D, so
        z_rel = 0 maps to D/2. The validity is ``joint_valid`` times 0 ≤ z_hm < D (InterNet's depth check) and
        0 ≤ x_hm, y_hm < H (the in-crop check, normally already in ``joint_valid``), and is 0 for non-finite
        coordinates, whose coordinates are replaced by 0 so that masked joints can never inject NaNs into a loss.

        Args:
            joints_img: B×J×3, x, y in input pixels and z in mm relative to the joint's own wrist.
            joint_valid: B×J, 1 for joints to supervise.

        Returns:
            ``(coords_hm, valid)``: B×J×3 heatmap coordinates (x, y, z) and the B×J validity (float).
        """
        dtype = joints_img.dtype if joints_img.is_floating_point() else torch.float32
        joints = joints_img.to(dtype)
        scale = self.heatmap_size / self.input_size
        x = joints[..., 0] * scale
        y = joints[..., 1] * scale
        z = (joints[..., 2] / (self.depth_range_mm / 2.0) + 1.0) / 2.0 * self.depth_bins
        coords = torch.stack([x, y, z], dim=-1)
        finite = torch.isfinite(coords).all(dim=-1)
        inside = (
            (x >= 0) & (x < self.heatmap_size) & (y >= 0) & (y < self.heatmap_size) & (z >= 0) & (z < self.depth_bins)
        )
        coords = torch.where(finite[..., None], coords, torch.zeros_like(coords))
        valid = joint_valid.to(dtype) * (finite & inside).to(dtype)
        return coords, valid

    def encode_root_depth(
        self, rel_root_mm: torch.Tensor, root_valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Relative root depth in mm -> continuous bin coordinate, plus its validity (internet §4.2).

        bins = (rel / (range/2) + 1) / 2 · R; the validity is ``root_valid`` times 0 ≤ bins < R (non-finite values
        are invalid and encoded as 0).

        Args:
            rel_root_mm: B, z(left wrist) − z(right wrist) in mm (any shape with B elements).
            root_valid: B, 1 where the relative root depth is supervised.

        Returns:
            ``(bins, valid)``, both of shape B.
        """
        dtype = rel_root_mm.dtype if rel_root_mm.is_floating_point() else torch.float32
        rel = rel_root_mm.to(dtype).reshape(-1)
        bins = (rel / (self.root_depth_range_mm / 2.0) + 1.0) / 2.0 * self.root_depth_bins
        finite = torch.isfinite(bins)
        inside = (bins >= 0) & (bins < self.root_depth_bins)
        bins = torch.where(finite, bins, torch.zeros_like(bins))
        valid = root_valid.to(dtype).reshape(-1) * (finite & inside).to(dtype)
        return bins, valid

    # ------------------------------------------------------------------------------------------------ targets (§4.3)
    def _axis_grids(
        self, coords_hm: torch.Tensor, shape: tuple[int, int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Squared distances of every voxel index to the centre along each axis: (B×J×D, B×J×H, B×J×W)."""
        d, h, w = shape
        kw = {"device": coords_hm.device, "dtype": coords_hm.dtype}
        dz = (torch.arange(d, **kw) - coords_hm[..., 2, None]).square()
        dy = (torch.arange(h, **kw) - coords_hm[..., 1, None]).square()
        dx = (torch.arange(w, **kw) - coords_hm[..., 0, None]).square()
        return dz, dy, dx

    def gaussian_factors(
        self, coords_hm: torch.Tensor, shape: tuple[int, int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three 1-D factors of the unit-peak Gaussian: g_z (B×J×D), g_y (B×J×H), g_x (B×J×W).

        target[b, j, k, i, l] = peak · g_z[b, j, k] · g_y[b, j, i] · g_x[b, j, l] (internet §4.3).
        """
        inv = -1.0 / (2.0 * self.sigma**2)
        dz, dy, dx = self._axis_grids(coords_hm, shape or self.volume_shape)
        return torch.exp(dz * inv), torch.exp(dy * inv), torch.exp(dx * inv)

    def render(self, coords_hm: torch.Tensor, shape: tuple[int, int, int] | None = None) -> torch.Tensor:
        """InterNet's dense Gaussian target B×J×D×H×W (internet §4.3, ``render_gaussian_heatmap``).

        peak · exp(−[(xx−x)² + (yy−y)² + (zz−z)²] / (2σ²)) over the integer voxel grid, with continuous (not rounded)
        centres and no truncation window; every joint is rendered, valid or not. This is the reference: training uses
        the lean heatmap loss (``models/losses.py``), which never builds this volume.

        Args:
            coords_hm: B×J×3 heatmap coordinates (x, y, z).
            shape: (D, H, W); the codec's own by default.
        """
        dz, dy, dx = self._axis_grids(coords_hm, shape or self.volume_shape)
        dist2 = dz[..., :, None, None] + dy[..., None, :, None] + dx[..., None, None, :]
        return self.peak * torch.exp(dist2 * (-1.0 / (2.0 * self.sigma**2)))

    # ------------------------------------------------------------------------------------------------ decoding (§5)
    def decode_heatmaps(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Hard argmax over each joint's whole volume -> integer voxel coordinates as float (internet §5.1).

        With idx the flattened (D, H, W) argmax: z = idx // (H·W), y = (idx // W) % H, x = idx % W. No soft-argmax and
        no sub-voxel offset (internet §7.5). Ties resolve to the first maximum in (z, y, x) raster order.

        Args:
            heatmaps: B×J×D×H×W.

        Returns:
            B×J×3 coordinates (x, y, z), float32.
        """
        if heatmaps.dim() != 5:
            raise ValueError(f"heatmaps must be B×J×D×H×W, got shape {tuple(heatmaps.shape)}")
        _, _, _, h, w = heatmaps.shape
        idx = heatmaps.flatten(2).argmax(dim=-1)
        z = torch.div(idx, h * w, rounding_mode="floor")
        y = torch.div(idx, w, rounding_mode="floor") % h
        x = idx % w
        return torch.stack([x, y, z], dim=-1).to(torch.float32)

    def decode_root_depth(self, bins: torch.Tensor) -> torch.Tensor:
        """Root-depth bins -> relative root depth in mm: (bins / R · 2 − 1) · range / 2 (internet §5.2)."""
        bins = bins if bins.is_floating_point() else bins.to(torch.float32)
        return (bins / self.root_depth_bins * 2.0 - 1.0) * (self.root_depth_range_mm / 2.0)

    def heatmap_to_input(self, coords_hm: torch.Tensor) -> torch.Tensor:
        """Heatmap coordinates -> input space: x, y · S / H in pixels, z_rel = (z / D · 2 − 1) · range / 2 in mm (§5.2).

        Args:
            coords_hm: B×J×3 (x, y, z) in voxels.

        Returns:
            B×J×3 (x, y in input pixels, z relative to the wrist in mm).
        """
        coords = coords_hm if coords_hm.is_floating_point() else coords_hm.to(torch.float32)
        scale = self.input_size / self.heatmap_size
        z = (coords[..., 2] / self.depth_bins * 2.0 - 1.0) * (self.depth_range_mm / 2.0)
        return torch.stack([coords[..., 0] * scale, coords[..., 1] * scale, z], dim=-1)

    @staticmethod
    def input_to_camera(
        joints_img: torch.Tensor,
        inv_trans: torch.Tensor,
        abs_root_depth: torch.Tensor,
        focal: torch.Tensor,
        princpt: torch.Tensor,
    ) -> torch.Tensor:
        """Input space -> camera millimetres (internet §5.2 steps 1, 4, 5).

        (u, v) = inv_trans · (x, y, 1) in original-image pixels; Z = z_rel + the absolute wrist depth of the joint's
        own hand (joints 0–20 use ``abs_root_depth[:, 0]`` (right), 21–41 ``abs_root_depth[:, 1]`` (left), as
        InterHand2.6M; RHD/STB samples carry the same value twice); then ``pixel2cam``: X = (u − cx) / fx · Z,
        Y = (v − cy) / fy · Z.

        Args:
            joints_img: B×J×3 (x, y input pixels; z mm relative to the wrist), J a multiple of 21.
            inv_trans: B×2×3 affine from input pixels to original-image pixels.
            abs_root_depth: B×2 absolute wrist depth [right, left] in mm.
            focal: B×2 (fx, fy) in pixels.
            princpt: B×2 (cx, cy) in pixels.

        Returns:
            B×J×3 camera coordinates in mm.
        """
        dtype = torch.promote_types(compute_dtype(joints_img.dtype), inv_trans.dtype)
        joints = joints_img.to(dtype)
        inv_trans = inv_trans.to(dtype)
        xy = joints[..., :2]
        uv = torch.einsum("bik,bjk->bji", inv_trans[:, :, :2], xy) + inv_trans[:, None, :, 2]
        num_joints = joints.shape[1]
        hand_of_joint = torch.div(
            torch.arange(num_joints, device=joints.device), JOINTS_PER_HAND, rounding_mode="floor"
        )
        root = abs_root_depth.to(dtype).reshape(-1, 2)[:, hand_of_joint]  # B×J
        depth = joints[..., 2] + root
        focal = focal.to(dtype).reshape(-1, 1, 2)
        princpt = princpt.to(dtype).reshape(-1, 1, 2)
        xy_cam = (uv - princpt) / focal * depth[..., None]
        return torch.cat([xy_cam, depth[..., None]], dim=-1)

    @staticmethod
    def project(joints_cam: torch.Tensor, focal: torch.Tensor, princpt: torch.Tensor) -> torch.Tensor:
        """Pinhole projection (the inverse of ``pixel2cam``): u = X / Z · fx + cx, v = Y / Z · fy + cy.

        Args:
            joints_cam: B×J×3 camera coordinates in mm.
            focal: B×2 (fx, fy); princpt: B×2 (cx, cy).

        Returns:
            B×J×2 image pixels.
        """
        focal = focal.to(joints_cam.dtype).reshape(-1, 1, 2)
        princpt = princpt.to(joints_cam.dtype).reshape(-1, 1, 2)
        return joints_cam[..., :2] / joints_cam[..., 2:3] * focal + princpt

    def decode(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PoseNet outputs -> predictions in pixels and millimetres (internet §5.1, §5.2).

        Args:
            outputs: PoseNet's dict: ``heatmaps`` B×J×D×H×W, ``root_bins`` B (soft-argmax bins), ``hand_logits`` B×2
                (``root_logits`` is not needed).
            batch: the sample dict: ``inv_trans`` B×2×3, ``abs_root_depth`` B×2, ``focal`` B×2, ``princpt`` B×2.

        Returns:
            ``joints_img`` B×J×3 (input pixels, mm relative to each hand's wrist), ``joints_cam`` B×J×3 (mm; each hand
            placed at its ``abs_root_depth``), ``rel_root_depth_mm`` B (predicted left − right wrist depth) and
            ``hand_prob`` B×2 (sigmoid of the logits, [right, left]).
        """
        joints_img = self.heatmap_to_input(self.decode_heatmaps(outputs["heatmaps"]))
        joints_cam = self.input_to_camera(
            joints_img, batch["inv_trans"], batch["abs_root_depth"], batch["focal"], batch["princpt"]
        )
        return {
            "joints_img": joints_img,
            "joints_cam": joints_cam,
            "rel_root_depth_mm": self.decode_root_depth(outputs["root_bins"].float().reshape(-1)),
            "hand_prob": torch.sigmoid(outputs["hand_logits"].float()),
        }


__all__ = ["HeatmapCodec", "compute_dtype"]
