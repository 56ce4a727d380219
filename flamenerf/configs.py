# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Gin-configurable dataclasses, one per concern.

Defaults are Nerfies' published `gpu_quarterhd` settings where they exist (NeRF 8x256 with a
skip at 4, 8 point and 4 direction frequencies, SE(3) warp 6x128, 8-d warp and appearance
codes, 128 + 128 samples, 6144 rays, lr 1e-3 -> 1e-4). FLAME-in-NeRF never published its
numbers: every expression-related default below is ours, marked "(ours)", and configurable.
`gin/demo.gin` overrides them for a 2-core CPU; `gin/paper.gin` states the published ones.
"""

from __future__ import annotations

import dataclasses
import importlib.util  # noqa: F401  gin 0.5 needs it imported before parsing includes
from typing import Literal

import gin

from flamenerf import schedules

FieldType = Literal["mlp", "triplane"]
WarpType = Literal["none", "translation", "se3"]
ConditionWhere = Literal["none", "trunk", "skip", "color"]
SpatialPrior = Literal["silhouette", "mesh", "none"]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """The canonical radiance field (one instance each for the coarse and fine levels)."""

    field_type: FieldType = "mlp"  # "mlp": sinusoidal encoding + MLP (the paper); "triplane"
    depth: int = 8  # trunk layers
    width: int = 256  # trunk width
    skips: tuple[int, ...] = (4,)  # trunk layers whose input is concatenated again
    rgb_depth: int = 1  # colour-branch layers
    rgb_width: int = 128  # colour-branch width
    point_freqs: int = 8  # sinusoidal bands of the canonical point ("mlp")
    viewdir_freqs: int = 4  # sinusoidal bands of the view direction (0: no view dependence)
    triplane_resolutions: tuple[int, ...] = (64, 128, 256, 512)  # ("triplane") plane sizes
    triplane_features: int = 8  # ("triplane") channels per plane
    geometry_features: int = 15  # ("triplane") density-branch features fed to the colour branch
    contract: bool = True  # ("triplane") map unbounded space into [-1, 1]^3 (mip-NeRF 360)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sampling, latent codes and the two field levels."""

    coarse: FieldConfig = FieldConfig()  # the coarse (or proposal) field
    fine: FieldConfig = FieldConfig()  # the fine field
    num_coarse_samples: int = 128  # stratified samples per ray
    num_fine_samples: int = 128  # hierarchical samples per ray
    fine_includes_coarse: bool = True  # fine pass also evaluates the coarse samples (NeRF)
    use_linear_disparity: bool = False  # sample evenly in 1/z instead of z
    appearance_dim: int = 8  # appearance (GLO) code size; 0 disables appearance codes
    density_activation: Literal["relu", "softplus"] = "softplus"  # sigma non-linearity
    density_bias: float = -1.0  # added before the activation (starts mostly empty)
    noise_std: float = 0.0  # density noise during training (NeRF's regulariser)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class WarpConfig:
    """The per-frame deformation into the canonical space (Nerfies)."""

    warp_type: WarpType = "se3"  # "none" gives a static NeRF
    code_dim: int = 8  # warp (GLO) code size
    num_freqs: int = 8  # annealed sinusoidal bands of the point (Nerfies paper config: 6)
    depth: int = 6  # trunk layers
    width: int = 128  # trunk width
    skips: tuple[int, ...] = (4,)  # trunk skip layers


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ExpressionConfig:
    """FLAME expression conditioning of the canonical field (FLAME-in-NeRF). All ours."""

    where: ConditionWhere = "trunk"  # "none" = Nerfies; else where the vector enters the field
    use_jaw: bool = True  # append the jaw pose (3) to the expression coefficients
    spatial_prior: SpatialPrior = "silhouette"  # zero the vector for rays outside the silhouette
    # ("mesh": for points farther than mesh_radius_m from the FLAME mesh; needs GuideConfig)
    mesh_radius_m: float = 0.02  # ("mesh") distance from the FLAME mesh, metres
    projection_dim: int = 0  # >0: learned linear projection to this size before the field
    noise_std: float = 0.0  # Gaussian noise on the vector during training (generalisation)
    dropout: float = 0.0  # probability of zeroing a ray's whole vector during training


@gin.configurable
@dataclasses.dataclass(frozen=True)
class GuideConfig:
    """The FLAME-guided deformation prior (beyond the paper; RigNeRF's idea). All ours."""

    enabled: bool = False  # move samples by the nearest FLAME vertex's way back to neutral
    sigma_m: float = 0.004  # fade length of that displacement, metres (FLAME units)
    resolution: int = 64  # grid points per side of each frame's displacement grid
    move_threshold_m: float = 0.002  # vertices moving less than this do not widen the grid box
    undo_rigid: bool = True  # canonical = neutral face at rest (undo global/neck pose, translation)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights; each a schedule of the training step (a number means constant)."""

    coarse_weight: float = 1.0  # photometric MSE of the coarse render
    fine_weight: float = 1.0  # photometric MSE of the fine render
    flame_warp_weight: schedules.Schedule | float = 0.0  # L1 displacement of FLAME vertices (ours)
    flame_warp_vertices: int = 256  # FLAME vertices drawn per step for that penalty
    elastic_weight: schedules.Schedule | float = 0.0  # Nerfies elastic regulariser (off)
    elastic_scale: float = 0.03  # Geman-McClure scale of the elastic loss
    background_weight: float = 0.0  # L1 warp displacement of samples on rays outside the
    # silhouette (a static-point regulariser: background and torso should not deform; off)
    triplane_tv_weight: float = 0.0  # total variation of the tri-planes


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which capture and how its rays are drawn."""

    capture: str = ""  # capture folder; "" = the default synthetic capture (cached)
    scale: int = 1  # image scale: 1, 2, 4 or 8
    flame_model: str = ""  # FLAME file overriding scene.json's flame.model; "" = keep
    frames_per_group: int = 0  # training frames shuffled together (0 = all; bounds memory)
    prefetch: int = 4  # batches prepared ahead by the background thread
    pack: bool = True  # read frames through the TFDS array_record pack (else the folder)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop."""

    max_steps: int = 250_000  # training steps
    batch_size: int = 6144  # rays per step, over all devices
    seed: int = 0  # parameter initialisation and ray shuffling
    lr_schedule: schedules.Schedule | float = schedules.ExponentialSchedule(1e-3, 1e-4, 250_000)
    warp_alpha_schedule: schedules.Schedule | float = schedules.LinearSchedule(0.0, 8.0, 80_000)
    grad_clip: float = 0.0  # global-norm clip (0 = off)
    adam_eps: float = 1e-8  # Adam's epsilon
    checkpoint_every: int = 5_000  # steps between checkpoints
    keep_checkpoints: int = 3  # checkpoints kept on disk
    log_every: int = 100  # steps between metrics.jsonl/TensorBoard records
    val_every: int = 5_000  # steps between validation renders (0 = never)
    val_frames: int = 4  # validation frames rendered at each validation (PSNR over these)
    render_chunk: int = 4096  # rays per chunk when rendering full frames
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time (0 = no limit)
