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
import functools
import importlib.util  # noqa: F401  gin 0.5 needs it imported before parsing includes
import math
import types
import typing
from numbers import Integral, Real
from typing import Annotated, Any, Literal

import gin

from flamenerf import schedules

FieldType = Literal["mlp", "triplane"]
ConditionWhere = Literal["none", "trunk", "skip", "color"]
SpatialPrior = Literal["silhouette", "mesh", "none"]
NoiseScale = Literal["absolute", "spread"]
DensityActivation = Literal["relu", "softplus"]
AppearanceMode = Literal["field", "color"]
Spacing = Literal["linear", "disparity", "contracted"]  # nerf/volume.py's SPACINGS
Sampler = Literal["coarse", "proposal"]  # what the coarse level is (ModelConfig.sampler)
WarpRegion = Literal["everywhere", "head"]
RigidWeight = Literal["ball", "neck"]  # nerf/guide.py's RIGID_WEIGHTS
ImageScale = Literal[1, 2, 4, 8]
# WarpType: "none" or a registered warp field (`nerf.warping.WARP_FIELDS`), at the end.


# --------------------------------------------------------------------------------------------
# Checking: every field is checked against its type hint when a config is built, so that a
# misspelt or out-of-range gin binding is a ValueError naming it, never a different model.


@dataclasses.dataclass(frozen=True)
class Range:
    """The numeric domain of a field, for `Annotated[int | float, Range(...)]` hints."""

    lower: float = -math.inf
    upper: float = math.inf
    lower_open: bool = False  # exclude `lower` itself

    def __contains__(self, value: float) -> bool:
        above = value > self.lower if self.lower_open else value >= self.lower
        return above and value <= self.upper

    def __str__(self) -> str:
        if math.isfinite(self.upper):
            return f"in {'(' if self.lower_open else '['}{self.lower:g}, {self.upper:g}]"
        return f"{'>' if self.lower_open else '>='} {self.lower:g}"


Size = Annotated[int, Range(1)]  # a size or a period: at least 1
Count = Annotated[int, Range(0)]  # 0 allowed (often "off" or "none")
NonNegative = Annotated[float, Range(0.0)]  # weights, noise, thresholds (0 = off)
Positive = Annotated[float, Range(0.0, lower_open=True)]  # lengths and scales
Probability = Annotated[float, Range(0.0, 1.0)]


def _describe(hint: Any) -> str:
    """What a value of type `hint` must be, in words (for error messages)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        base = _describe(args[0])
        return " ".join([base] + [str(m) for m in args[1:] if isinstance(m, Range)])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return f"a tuple, each item {_describe(args[0])}"
    if hint is bool:
        return "True or False"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a finite number"
    if hint is str:
        return "a string"
    return f"a {getattr(hint, '__name__', hint)}"


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` is a `hint`, the value normalised: python int/float, tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        ok, value = _conform(value, args[0])
        return ok and all(value in m for m in args[1:] if isinstance(m, Range)), value
    if origin is Literal:
        for allowed in args:
            same_kind = isinstance(value, bool) == isinstance(allowed, bool) and (
                isinstance(value, str) if isinstance(allowed, str) else isinstance(value, Integral)
            )
            if same_kind and value == allowed:
                return True, allowed
        return False, value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            ok, normalised = _conform(value, option)
            if ok:
                return True, normalised
        return False, value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, tuple | list):
            return False, value
        items = [_conform(item, args[0]) for item in value]
        return all(ok for ok, _ in items), tuple(item for _, item in items)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        ok = isinstance(value, Integral) and not isinstance(value, bool)
        return ok, int(value) if ok else value
    if hint is float:
        ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    return isinstance(value, hint), value


def check(owner: str, name: str, value: Any, expected: str, ok: bool) -> None:
    """Raises `ValueError("Owner.name: expected ..., got ...")` unless `ok`."""
    if not ok:
        raise ValueError(f"{owner}.{name}: expected {expected}, got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


class _Checked:
    """Base of every config: checks each field against its type hint when built.

    `Literal[...]` fields must be one of the listed values, `Annotated[..., Range(...)]`
    fields must lie in the range, and every field must have its declared type. Sequences are
    stored as tuples (so that configs stay hashable) and numbers as python ints and floats.
    Subclasses add checks that involve several fields in `_check_more`.
    """

    def __post_init__(self) -> None:
        owner = type(self).__name__
        hints = _hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            ok, normalised = _conform(value, hints[field.name])
            check(owner, field.name, value, _describe(hints[field.name]), ok)
            object.__setattr__(self, field.name, normalised)
        self._check_more(owner)

    def _check_more(self, owner: str) -> None:
        del owner


@gin.configurable
@dataclasses.dataclass(frozen=True)
class FieldConfig(_Checked):
    """The canonical radiance field (one instance each for the coarse and fine levels)."""

    field_type: FieldType = "mlp"  # "mlp": sinusoidal encoding + MLP (the paper); "triplane"
    depth: Count = 8  # trunk layers
    width: Size = 256  # trunk width
    skips: tuple[Size, ...] = (4,)  # trunk layers whose input is concatenated again
    rgb_depth: Count = 1  # colour-branch layers
    rgb_width: Size = 128  # colour-branch width
    point_freqs: Count = 8  # sinusoidal bands of the canonical point ("mlp")
    viewdir_freqs: Count = 4  # sinusoidal bands of the view direction (0: no view dependence)
    # ("triplane") plane sizes, distinct, each >= 2
    triplane_resolutions: tuple[Annotated[int, Range(2)], ...] = (64, 128, 256, 512)
    triplane_features: Size = 8  # ("triplane") channels per plane
    geometry_features: Size = 15  # ("triplane") density-branch features fed to the colour branch
    contract: bool = True  # ("triplane") map unbounded space into [-1, 1]^3 (mip-NeRF 360)

    def _check_more(self, owner: str) -> None:
        resolutions = self.triplane_resolutions
        check(
            owner,
            "triplane_resolutions",
            resolutions,
            "one or more distinct plane sizes",
            bool(resolutions) and len(set(resolutions)) == len(resolutions),
        )


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModelConfig(_Checked):
    """Sampling, latent codes and the two field levels."""

    coarse: FieldConfig = FieldConfig()  # the coarse (or proposal) field
    fine: FieldConfig = FieldConfig()  # the fine field
    num_coarse_samples: Annotated[int, Range(2)] = 128  # stratified samples per ray
    num_fine_samples: Size = 128  # hierarchical samples per ray
    fine_includes_coarse: bool = True  # fine pass also evaluates the coarse samples (NeRF)
    # Spacing of the stratified (coarse) samples: "linear" in depth, "disparity" (evenly in
    # 1/z) or "contracted": evenly in the distance travelled in the tri-plane's contracted
    # space (nerf/volume.py, `contracted_distance`), dense around the head, sparse far away
    spacing: Spacing = "linear"
    # What the coarse level is: "coarse" (NeRF): a radiance field trained by the photometric
    # loss (LossConfig.coarse_weight); "proposal" (mip-NeRF 360): the coarse field gives density
    # only (its colour branch is never built nor evaluated) and is trained by the interlevel
    # loss alone (LossConfig.interlevel_weight > 0, coarse_weight = 0; check_losses). Either
    # way its weights place the fine samples.
    sampler: Sampler = "coarse"
    # ("proposal") the learned warp also moves the proposal level's samples; False (only with
    # the proposal sampler): the proposal field reads the points before it (FLAME-guided if the
    # guide is on), which skips the warp's encoding and MLP on the coarse samples
    proposal_warp: bool = True
    appearance_dim: Count = 8  # appearance (GLO) code size; 0 disables appearance codes
    # How the appearance code acts: "field" feeds it to the colour branch (Nerfies: it can
    # change any colour, view-dependent detail included); "color" maps it to a per-frame gain
    # and bias of the rendered colour (exposure and white balance only).
    appearance_mode: AppearanceMode = "field"
    density_activation: DensityActivation = "softplus"  # sigma non-linearity
    density_bias: float = -1.0  # added before the activation (starts mostly empty)
    noise_std: NonNegative = 0.0  # density noise during training (NeRF's regulariser)
    # The colour branch also sees the head's rotation (axis-angle, faded to zero outside the
    # FLAME guide's head ball): a light fixed in the room shades a turning head differently,
    # which the canonical (head at rest) colour cannot explain. It enters through a layer of
    # its own, zero at the start. Needs the guide's rigid part; on in gin/demo.gin
    # (gin/ablations/no_pose_shading.gin turns it off).
    pose_shading: bool = False

    def _check_more(self, owner: str) -> None:
        check(
            owner,
            "proposal_warp",
            self.proposal_warp,
            "True unless sampler = 'proposal' (a coarse radiance field renders colour, which "
            "needs the warped points)",
            self.proposal_warp or self.sampler == "proposal",
        )


@gin.configurable
@dataclasses.dataclass(frozen=True)
class WarpConfig(_Checked):
    """The per-frame deformation into the canonical space (Nerfies)."""

    warp_type: WarpType = "se3"  # "none" gives a static NeRF
    # Where the learned warp may move points: "everywhere" (Nerfies) or "head": inside the
    # box of the FLAME head and neck (every frame, plus region_margin_m), faded to the
    # identity over region_fade_m beyond it, so per-frame codes cannot move the room or torso.
    region: WarpRegion = "everywhere"
    region_margin_m: NonNegative = 0.03  # ("head") margin around the FLAME vertices' box, metres
    region_fade_m: Positive = 0.05  # ("head") fade from the full warp to none, metres
    # ("head") the warp's MLP runs only on the samples in the region and its fade, up to this
    # share of each block of rays' samples, per level (nerf/compaction.py): a level with a
    # fuller block runs it on every sample, so the result is the same whatever the share; 0:
    # every sample always. On the demo capture, once trained, the region holds 13-15% of a
    # block's coarse samples spaced linearly in depth (39-41% with gin/demo.gin's contracted
    # spacing, whose capacity is 0.5) and 44-57% of its fine ones
    coarse_capacity: Probability = 0.25
    fine_capacity: Probability = 0.65
    code_dim: Size = 8  # warp (GLO) code size
    num_freqs: Count = 8  # annealed sinusoidal bands of the point (Nerfies paper config: 6)
    depth: Count = 6  # trunk layers
    width: Size = 128  # trunk width
    skips: tuple[Size, ...] = (4,)  # trunk skip layers, each < depth

    def _check_more(self, owner: str) -> None:
        check(
            owner,
            "skips",
            self.skips,
            f"trunk layer indices in [1, depth = {self.depth})",
            all(skip < self.depth for skip in self.skips),
        )


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ExpressionConfig(_Checked):
    """FLAME expression conditioning of the canonical field (FLAME-in-NeRF). All ours."""

    where: ConditionWhere = "trunk"  # "none" = Nerfies; else where the vector enters the field
    use_jaw: bool = True  # append the jaw pose (3) to the expression coefficients
    spatial_prior: SpatialPrior = "silhouette"  # zero the vector for rays outside the silhouette
    # ("mesh": for points farther than mesh_radius_m from the FLAME mesh; needs GuideConfig)
    mesh_radius_m: Positive = 0.02  # ("mesh") distance from the FLAME mesh, metres
    projection_dim: Count = 0  # >0: learned linear projection to this size before the field
    noise_std: NonNegative = 0.0  # Gaussian noise on the vector during training (generalisation)
    # How noise_std applies per component: "absolute": the same std for every component;
    # "spread": times the component's std over the training frames (a component constant
    # there, std < 1e-6, gets none), so that narrow ones (the jaw, 0-0.35 rad) are not swamped
    noise_scale: NoiseScale = "absolute"
    dropout: Probability = 0.0  # probability of zeroing a ray's whole vector during training


@gin.configurable
@dataclasses.dataclass(frozen=True)
class GuideConfig(_Checked):
    """The FLAME-guided deformation prior (beyond the paper; RigNeRF's idea). All ours."""

    enabled: bool = False  # move samples by the nearest FLAME vertex's way back to neutral
    sigma_m: Positive = 0.004  # fade length of that displacement, metres (FLAME units)
    resolution: Annotated[int, Range(2)] = 64  # grid points per side of each frame's grid
    move_threshold_m: NonNegative = 0.002  # vertices moving less do not widen the grid box
    undo_rigid: bool = True  # canonical = neutral face at rest (undo global/neck pose, translation)
    # (undo_rigid) metres beyond the head's ball over which the undone head motion fades to
    # none (torso and room stay put); one-to-one while the head centre moves < 2.67x this
    rigid_fade_m: Positive = 0.06
    # (undo_rigid) where the head's motion is undone: "ball": everywhere in the head's ball
    # (it holds every head vertex, so it reaches the top of the torso); "neck": in the ball
    # but only above the neck: from neck_level_m above FLAME's root joint up (along FLAME's
    # up axis), fading to none over neck_fade_m below that, so the torso stays put
    # (nerf/guide.py; gin/demo.gin sets "neck", gin/ablations/ball_rigid.gin restores "ball")
    rigid_weight: RigidWeight = "ball"
    # ("neck") metres above the root joint from which the head moves exactly (within 10 cm)
    neck_level_m: Annotated[float, Range(-0.1, 0.1)] = 0.0
    neck_fade_m: Positive = 0.02  # ("neck") metres below neck_level_m over which it fades out

    def _check_more(self, owner: str) -> None:
        check(
            owner,
            "rigid_weight",
            self.rigid_weight,
            "'ball' with undo_rigid = False (no head motion is undone)",
            self.undo_rigid or self.rigid_weight == "ball",
        )


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LossConfig(_Checked):
    """Loss weights; each a schedule of the training step (a number means constant)."""

    coarse_weight: NonNegative = 1.0  # photometric MSE of the coarse render
    fine_weight: NonNegative = 1.0  # photometric MSE of the fine render
    # L1 displacement of FLAME vertices (ours)
    flame_warp_weight: schedules.Schedule | NonNegative = 0.0
    flame_warp_vertices: Size = 256  # FLAME vertices drawn per step for that penalty
    elastic_weight: schedules.Schedule | NonNegative = 0.0  # Nerfies elastic regulariser (off)
    elastic_scale: Positive = 0.03  # Geman-McClure scale of the elastic loss
    background_weight: NonNegative = 0.0  # L1 warp displacement of samples on rays outside the
    # silhouette (a static-point regulariser: background and torso should not deform; off)
    triplane_tv_weight: NonNegative = 0.0  # total variation of the tri-planes
    # mip-NeRF 360 distortion loss of the fine weights along each ray (compact surfaces, no
    # floaters), on depths normalised to [0, 1] between the near and far bounds
    distortion_weight: NonNegative = 0.0
    # mip-NeRF 360's interlevel (proposal) loss: the coarse weights must bound the fine ones
    # from above (the fine weights are the target, no gradient); trains the proposal field of
    # ModelConfig.sampler = "proposal" (there it must be > 0)
    interlevel_weight: NonNegative = 0.0


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataConfig(_Checked):
    """Which capture and how its rays are drawn."""

    capture: str = ""  # capture folder; "" = the default synthetic capture (cached)
    scale: ImageScale = 1  # image scale: 1, 2, 4 or 8
    flame_model: str = ""  # FLAME file overriding scene.json's flame.model; "" = keep
    frames_per_group: Count = 0  # training frames shuffled together (0 = all; bounds memory)
    prefetch: Size = 4  # batches prepared ahead by the background thread
    pack: bool = True  # read frames through the TFDS array_record pack (else the folder)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig(_Checked):
    """The optimisation loop."""

    max_steps: Size = 250_000  # training steps
    batch_size: Size = 6144  # rays per step, over all devices
    seed: int = 0  # parameter initialisation and ray shuffling
    lr_schedule: schedules.Schedule | Positive = schedules.ExponentialSchedule(1e-3, 1e-4, 250_000)
    warp_alpha_schedule: schedules.Schedule | NonNegative = schedules.LinearSchedule(
        0.0, 8.0, 80_000
    )
    grad_clip: NonNegative = 0.0  # global-norm clip (0 = off)
    adam_eps: Positive = 1e-8  # Adam's epsilon
    checkpoint_every: Size = 5_000  # steps between checkpoints
    keep_checkpoints: Size = 3  # checkpoints kept on disk
    log_every: Size = 100  # steps between metrics.jsonl/TensorBoard records
    val_every: Count = 5_000  # steps between validation renders (0 = never)
    val_frames: Count = 4  # validation frames rendered at each validation (PSNR over these)
    render_chunk: Size = 4096  # rays per chunk when rendering full frames
    max_minutes: NonNegative = 0.0  # stop (and checkpoint) after this wall time (0 = no limit)
    # Compile the train step on another thread while the FLAME guide grids are built (the same
    # program, the same results; start-up time only). Off: on a busy 2-core machine it was
    # slower, on an idle one 2 s of 72 s faster, within the noise (docs/results.md).
    compile_ahead: bool = False


def check_losses(model: ModelConfig, loss: LossConfig) -> None:
    """Checks that the loss weights suit the model's sampler (`ModelConfig.sampler`).

    A proposal field renders no colour, so its photometric loss cannot be computed
    (`LossConfig.coarse_weight` must be 0), and the interlevel loss is all that trains it
    (`LossConfig.interlevel_weight` must be > 0, or it would place the fine samples with its
    initial density forever).

    Raises:
      ValueError: "LossConfig.NAME: expected ..., got ..." for the first weight that does not
        suit.
    """
    if model.sampler != "proposal":
        return
    why = "with ModelConfig.sampler = 'proposal'"
    check(
        "LossConfig",
        "coarse_weight",
        loss.coarse_weight,
        f"0 {why} (the proposal field renders no colour)",
        loss.coarse_weight == 0,
    )
    check(
        "LossConfig",
        "interlevel_weight",
        loss.interlevel_weight,
        f"> 0 {why} (the interlevel loss alone trains the proposal field)",
        loss.interlevel_weight > 0,
    )


def build_all() -> dict[str, Any]:
    """Builds every config from the current gin bindings, so that bad values fail early.

    Raises:
      ValueError: a value outside its field's type or range, or weights that do not suit the
        model (`check_losses`); the message names the field.
    """
    built = {
        cls.__name__: cls()
        for cls in (
            DataConfig,
            TrainConfig,
            ModelConfig,
            WarpConfig,
            ExpressionConfig,
            GuideConfig,
            LossConfig,
        )
    }
    check_losses(built["ModelConfig"], built["LossConfig"])
    return built


# The warp types are the names of the warp registry, next to the fields in `nerf/warping.py`
# (adding a warp type there is enough). Imported last: the model imports this module.
from flamenerf.nerf.warping import warp_type_names  # noqa: E402

WarpType = Literal[warp_type_names()]
