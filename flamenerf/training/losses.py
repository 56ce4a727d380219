# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The training loss: a registry of loss terms next to their implementations.

A loss term is a function `term(outputs, rays, context)` of

- `outputs`: the model's training outputs (`FlameNerf.__call__`: {"coarse": ..., "fine": ...}),
- `rays`: the batch (`RayBatch` of jax arrays, N rays),
- `context`: a `LossContext` with what some terms need besides: the parameters, the
  per-capture `TrainExtras` (FLAME vertices, guide grids), the step, the warp annealing
  parameter, a PRNG key and methods that apply the model's warp,

returning its value (a scalar), `(value, stats)` with more stats to log, or None when it does
not apply to this model or capture (a warp regulariser without a warp field).

Registered as `name` with `@loss_term(name)`, a term is weighted by the `LossConfig` field
`{name}_weight` (a number, or a schedule of the step), logged under `name` (or its `stat`) and
skipped, not computed, while that weight is the number 0. `compute_loss` sums the terms in
registration order (the order below).

To add a loss term: one function here under `@loss_term("name")`, and one field
`name_weight` in `LossConfig` (flamenerf/configs.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from flamenerf import schedules
from flamenerf.configs import LossConfig, check_losses
from flamenerf.datasets.rays import RayBatch
from flamenerf.evaluation import metrics
from flamenerf.nerf import grid, guide, volume, warping
from flamenerf.nerf.model import FlameNerf

Array = jax.Array
Outputs = dict[str, dict[str, Array]]  # {"coarse": {...}, "fine": {...}}, see FlameNerf
TermValue = Array | tuple[Array, dict[str, Array]] | None


class TrainExtras(NamedTuple):
    """Per-capture arrays the train step reads, replicated over the mesh (`Experiment.extras`).

    Attributes:
      vertices: (F, V, 3) the posed FLAME vertices of every frame where the learned warp sees
        them (normalised; moved by the FLAME guide when it is on), for the FLAME warp
        penalty; None: no penalty.
      vertex_targets: (F, V, 3) where the warp should take them (the canonical positions,
        when the FLAME guide already moved them); None: where they are.
      guide: the frames' `guide.GuideGrids` (the model's input when it reads them), or None.
    """

    vertices: Array | None = None
    vertex_targets: Array | None = None
    guide: guide.GuideGrids | None = None


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What loss terms read besides the outputs and the rays; one per step (traced).

    Attributes:
      params: the model parameters (the loss is differentiated with respect to them).
      model: the model.
      config: the loss weights and settings.
      extras: the per-capture arrays.
      step: the training step (scalar int).
      warp_alpha: the warp encoding's annealing parameter at this step (scalar).
      key: PRNG key of the terms' random draws (the FLAME vertices, the warp samples).
    """

    params: Any
    model: FlameNerf
    config: LossConfig
    extras: TrainExtras
    step: Array
    warp_alpha: Array
    key: Array

    @property
    def has_warp(self) -> bool:
        """Whether the model has a learned warp field (`WarpConfig.warp_type` != "none")."""
        return self.model.warp.warp_type != warping.NO_WARP

    def warp_points(self, points: Array, warp_id: Array) -> Array:
        """The model's warp of `points: (N, ..., 3)` with the codes `warp_id: (N,)`."""
        return self.model.apply(
            {"params": self.params},
            points,
            warp_id,
            self.warp_alpha,
            method=FlameNerf.warp_points,
        )

    def warp_jacobian(self, points: Array, warp_id: Array) -> Array:
        """(N, 3, 3) Jacobians of the model's warp at `points: (N, 3)`, codes `warp_id: (N,)`."""
        return self.model.apply(
            {"params": self.params},
            points,
            warp_id,
            self.warp_alpha,
            method=FlameNerf.warp_jacobian,
        )


TermFn = Callable[[Outputs, RayBatch, LossContext], TermValue]


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """A registered loss term.

    Attributes:
      name: the registry name; the weight is `LossConfig.{name}_weight`.
      fn: `fn(outputs, rays, context)` -> value, (value, stats) or None (see the module).
      stat: the name its value is logged under.
      always: computed and logged even at weight 0 (the photometric errors, which are the
        training metrics); other terms are skipped at weight 0.
    """

    name: str
    fn: TermFn
    stat: str
    always: bool = False

    @property
    def weight_field(self) -> str:
        return f"{self.name}_weight"

    def weight(self, config: LossConfig) -> schedules.Schedule | float:
        """The term's weight in `config`: a number or a schedule of the step."""
        return getattr(config, self.weight_field)


LOSS_TERMS: dict[str, LossTerm] = {}  # name -> term, in the order compute_loss sums them


def _weight_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(LossConfig) if f.name.endswith("_weight"))


def loss_term(name: str, *, stat: str | None = None, always: bool = False):
    """Decorator registering `fn(outputs, rays, context)` as the loss term `name`.

    Args:
      name: the registry name; `LossConfig.{name}_weight` must exist.
      stat: the logged name (default: `name`).
      always: compute and log it even at weight 0.

    Raises:
      ValueError: `name` is already registered, or `LossConfig` has no field for its weight.
    """

    def register(fn: TermFn) -> TermFn:
        if name in LOSS_TERMS:
            raise ValueError(f"loss term {name!r} is already registered")
        if f"{name}_weight" not in _weight_fields():
            raise ValueError(
                f"loss term {name!r}: LossConfig has no field {name + '_weight'!r} for its "
                "weight (add one in flamenerf/configs.py)"
            )
        LOSS_TERMS[name] = LossTerm(name, fn, stat or name, always)
        return fn

    return register


def get_loss_term(name: str) -> LossTerm:
    """The registered loss term `name`.

    Raises:
      ValueError: no such term (the message lists the registered names).
    """
    if name not in LOSS_TERMS:
        raise ValueError(
            f"unknown loss term {name!r}: expected one of "
            + ", ".join(repr(known) for known in LOSS_TERMS)
        )
    return LOSS_TERMS[name]


def is_off(weight: schedules.Schedule | float) -> bool:
    """Whether a weight is the number 0 (a schedule is never off, even one that is 0)."""
    return isinstance(weight, int | float) and weight == 0


# --------------------------------------------------------------------------------------------
# The math, as pure functions.


def geman_mcclure(x2: Array, scale: float) -> Array:
    """Geman-McClure robust loss of squared residuals x2: 2 x2/s^2 / (x2/s^2 + 4)."""
    x2 = x2 / scale**2
    return 2.0 * x2 / (x2 + 4.0)


def elastic_loss(jacobians: Array, scale: float) -> Array:
    """Nerfies' elastic energy: robust norm of the log singular values of the warp Jacobians.

    Args:
      jacobians: (N, 3, 3).

    Returns:
      (N,) losses; zero for rigid local deformations.
    """
    singular = jnp.linalg.svd(jacobians, compute_uv=False)
    log_sv = jnp.log(jnp.maximum(singular, 1e-6))
    return geman_mcclure(jnp.sum(log_sv**2, axis=-1), scale)


def background_loss(warped: Array, points: Array, inside: Array) -> Array:
    """Mean L1 displacement of points on rays outside the FLAME silhouette.

    Args:
      warped, points: (N, 3) warped and original sample points; inside: (N,) silhouette bits.

    Returns:
      Scalar; 0 when every ray is inside.
    """
    outside = 1.0 - inside
    moved = jnp.sum(jnp.abs(warped - points), axis=-1)
    return jnp.sum(outside * moved) / jnp.maximum(jnp.sum(outside), 1.0)


def triplane_tv(params: Any) -> Array:
    """Mean squared difference of neighbouring texels over every tri-plane parameter."""
    leaves = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if "planes_" in jax.tree_util.keystr(path)
    ]
    if not leaves:
        return jnp.zeros(())
    return sum(grid.total_variation(leaf) for leaf in leaves) / len(leaves)


def distortion_loss(weights: Array, z_vals: Array, near: float, far: float) -> Array:
    """mip-NeRF 360's distortion loss per ray, on the intervals between consecutive samples.

    With s the depths normalised to [0, 1] over [near, far], interval i = [s_i, s_{i+1}] of
    midpoint m_i and weight w_i (the sample's compositing weight; the last sample, whose
    interval is unbounded, is left out):

        L = sum_{i,j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (s_{i+1} - s_i),

    computed in O(S) with prefix sums (sum_{i,j} = 2 sum_i w_i sum_{j<i} w_j (m_i - m_j)).
    Small when each ray's weight sits in one short stretch (a surface), large when spread.

    Args:
      weights: (N, S) compositing weights; z_vals: (N, S) sorted sample depths.
      near, far: the ray bounds (normalised units).

    Returns:
      (N,) the loss of each ray.
    """
    s = (z_vals - near) / (far - near)
    w = weights[:, :-1]
    mid = 0.5 * (s[:, 1:] + s[:, :-1])
    width = s[:, 1:] - s[:, :-1]
    w_before = jnp.cumsum(w, axis=-1) - w  # sum_{j<i} w_j
    wm_before = jnp.cumsum(w * mid, axis=-1) - w * mid  # sum_{j<i} w_j m_j
    cross = 2.0 * jnp.sum(w * (mid * w_before - wm_before), axis=-1)
    return cross + jnp.sum(w**2 * width, axis=-1) / 3.0


# The 1/w of the proposal loss is 1/(w + this) (float32's machine epsilon, as mip-NeRF 360).
_INTERLEVEL_EPS = float(jnp.finfo(jnp.float32).eps)


def interlevel_loss(
    edges: Array, weights: Array, proposal_edges: Array, proposal_weights: Array
) -> Array:
    """mip-NeRF 360's proposal (interlevel) loss per ray: the proposal must bound the fine.

    With bound_i the proposal mass over fine interval i (`volume.outer_bound`),

        L = sum_i max(0, w_i - bound_i)^2 / (w_i + eps),

    zero (to float rounding) when every fine weight is covered by the proposal's intervals
    around it (equal histograms, or a proposal whose mass spreads wider), positive where the
    fine field found mass the proposal missed. The fine histogram is the target: no gradient
    flows into `edges` or `weights` (the proposal learns to bound the fine field, never the
    reverse).

    Args:
      edges: (N, S + 1) sorted edges of the fine intervals (`volume.sample_intervals`).
      weights: (N, S) fine weights.
      proposal_edges: (N, P + 1) sorted edges of the proposal intervals.
      proposal_weights: (N, P) proposal weights.

    Returns:
      (N,) the loss of each ray.
    """
    edges = jax.lax.stop_gradient(edges)
    weights = jax.lax.stop_gradient(weights)
    proposal_edges = jax.lax.stop_gradient(proposal_edges)
    bound = volume.outer_bound(edges, proposal_edges, proposal_weights)
    excess = jnp.maximum(weights - bound, 0.0)
    return jnp.sum(excess**2 / (weights + _INTERLEVEL_EPS), axis=-1)


def warp_samples(outputs: Outputs, context: LossContext) -> Array:
    """One random coarse sample per ray where the learned warp sees it: (N, 3).

    After the FLAME guide, when on, so that the warp regularisers regularise the warp the
    model applies. Drawn with `context.key`: every term that calls it gets the same samples.
    """
    points = outputs["coarse"]["warp_inputs"]
    pick = jax.random.randint(context.key, (points.shape[0],), 0, points.shape[1])
    return points[jnp.arange(points.shape[0]), pick]


# --------------------------------------------------------------------------------------------
# The registered terms, in the order they are summed.


@loss_term("coarse", stat="mse_coarse", always=True)
def coarse_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """Photometric MSE of the coarse render (None for a proposal level: it has no colour)."""
    del context
    if "rgb" not in outputs["coarse"]:
        return None
    return jnp.mean((outputs["coarse"]["rgb"] - rays.rgb) ** 2)


@loss_term("fine", stat="mse_fine", always=True)
def fine_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """Photometric MSE of the fine render, and its PSNR (logged as "psnr")."""
    del context
    mse = jnp.mean((outputs["fine"]["rgb"] - rays.rgb) ** 2)
    return mse, {"psnr": metrics.mse_to_psnr(mse)}


@loss_term("flame_warp")
def flame_warp_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """Mean L1 distance from random warped FLAME vertices to their targets (ours).

    Random vertices of the frames of random rays, warped with those frames' codes. Only what
    the FLAME guide leaves unexplained counts: zero when the warp is the identity and the
    guide took every vertex exactly to its canonical position. None without a warp or
    without `extras.vertices`.
    """
    del outputs
    vertices, targets = context.extras.vertices, context.extras.vertex_targets
    if not context.has_warp or vertices is None:
        return None
    n = context.config.flame_warp_vertices
    k_rays, k_verts = jax.random.split(context.key)
    rows = jax.random.randint(k_rays, (n,), 0, rays.frame.shape[0])
    verts = jax.random.randint(k_verts, (n,), 0, vertices.shape[1])
    points = vertices[rays.frame[rows], verts]
    target = points if targets is None else targets[rays.frame[rows], verts]
    warped = context.warp_points(points, rays.warp_id[rows])
    return jnp.mean(jnp.sum(jnp.abs(warped - target), axis=-1))


@loss_term("elastic")
def elastic_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """Nerfies' elastic regulariser at one random coarse sample per ray (None without warp)."""
    if not context.has_warp:
        return None
    jacobians = context.warp_jacobian(warp_samples(outputs, context), rays.warp_id)
    return jnp.mean(elastic_loss(jacobians, context.config.elastic_scale))


@loss_term("background")
def background_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """Warp displacement of one random coarse sample per ray outside the silhouette (None
    without warp): background and torso should not deform."""
    if not context.has_warp:
        return None
    sample = warp_samples(outputs, context)
    return background_loss(context.warp_points(sample, rays.warp_id), sample, rays.inside)


@loss_term("triplane_tv")
def triplane_tv_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """Total variation of the tri-planes (0 for MLP fields)."""
    del outputs, rays
    return triplane_tv(context.params)


@loss_term("distortion")
def distortion_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """mip-NeRF 360's distortion loss of the fine render, averaged over the rays."""
    del rays
    fine = outputs["fine"]
    model = context.model
    return jnp.mean(distortion_loss(fine["weights"], fine["z_vals"], model.near, model.far))


@loss_term("interlevel")
def interlevel_term(outputs: Outputs, rays: RayBatch, context: LossContext) -> TermValue:
    """mip-NeRF 360's interlevel loss of the coarse (proposal) weights against the fine ones,
    on the renderer's intervals (`volume.sample_intervals`), averaged over the rays."""
    del rays, context
    coarse, fine = outputs["coarse"], outputs["fine"]
    return jnp.mean(
        interlevel_loss(
            volume.sample_intervals(fine["z_vals"]),
            fine["weights"],
            volume.sample_intervals(coarse["z_vals"]),
            coarse["weights"],
        )
    )


# --------------------------------------------------------------------------------------------
# The loss.


def compute_loss(
    params: Any,
    rays: RayBatch,
    key: Array,
    step: Array,
    *,
    model: FlameNerf,
    loss_config: LossConfig,
    warp_alpha: Callable[[Array], Array],
    extras: TrainExtras,
) -> tuple[Array, dict[str, Array]]:
    """The training loss of one batch and its components: the weighted sum of `LOSS_TERMS`.

    Args:
      params: model parameters.
      rays: the batch; origins (N, 3), rgb (N, 3), frame (N,), ...
      key: PRNG key of this step.
      step: the training step (schedules).
      model: the model.
      loss_config: weights.
      warp_alpha: schedule of the warp annealing parameter.
      extras: per-capture arrays (replicated).

    Returns:
      The loss and the stats: each computed term's value under its `stat` (and its extra
      stats), "loss" and "warp_alpha".

    Raises:
      ValueError: weights that do not suit the model's sampler (`configs.check_losses`).
    """
    check_losses(model.model, loss_config)
    k_sampling, k_condition, k_terms = jax.random.split(key, 3)
    alpha = warp_alpha(step)
    outputs = model.apply(
        {"params": params},
        rays,
        alpha,
        True,
        extras.guide,
        rngs={"sampling": k_sampling, "condition": k_condition},
    )
    context = LossContext(params, model, loss_config, extras, step, alpha, k_terms)
    stats = {}
    loss = jnp.zeros(())
    for term in LOSS_TERMS.values():
        weight = term.weight(loss_config)
        if is_off(weight) and not term.always:
            continue
        value = term.fn(outputs, rays, context)
        if value is None:
            continue
        value, more = value if isinstance(value, tuple) else (value, {})
        stats[term.stat] = value
        stats.update(more)
        loss = loss + _weight_at(weight, step) * value
    stats["loss"] = loss
    stats["warp_alpha"] = alpha
    return loss, stats


def _weight_at(weight: schedules.Schedule | float, step: Array) -> Array | float:
    """A number as it is (a weakly typed constant), a schedule's value at `step`."""
    return weight if isinstance(weight, int | float) else weight(step)
