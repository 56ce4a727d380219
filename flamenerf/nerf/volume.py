# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Sampling along rays, inverse-CDF resampling and volume rendering.

Shapes: N rays, S samples per ray. A ray is `origin + z * direction`; with unit directions
(as in a RayBatch) z is the distance from the origin. Sample i stands for the interval
[z_i, z_{i+1}] (density and colour constant on it); the last sample's interval has length
`last_delta` (1e10 by default: whatever the last sample sees fills the rest of the ray).

Spacing of the stratified samples (`sample_along_rays`, `ModelConfig.spacing`): "linear" in
depth, "disparity" (linear in 1/z), or "contracted": evenly in the arc length of the ray's
image under the scene contraction the tri-plane field reads points through (`grid.contract`),
so consecutive samples are equally far apart in the space the field's grids are laid out in
(`contracted_distance`).

A proposal sampler (mip-NeRF 360, `ModelConfig.sampler = "proposal"`) renders weights only
(`density_rendering`) and is trained to bound the fine weights from above: `sample_intervals`
turns samples into the histogram the renderer means, `outer_bound` bounds one histogram by
another (training/losses.py's `interlevel_loss`).
"""

import functools
from typing import Literal

import jax
import jax.numpy as jnp

Array = jax.Array

Spacing = Literal["linear", "disparity", "contracted"]
SPACINGS: tuple[str, ...] = ("linear", "disparity", "contracted")
# Polyline segments per ray of the "contracted" spacing's distance map: on the demo's rays the
# samples' spacing in contracted space is even to about 1% (3.6% with 64, 11% with 32: 1/K^2).
CONTRACTED_KNOTS = 128

# Added to every weight before building a pdf, so that empty rays (all weights 0) sample
# uniformly instead of dividing by zero (value of Nerfies and mip-NeRF).
_PDF_PADDING = 1e-5


def _per_ray(value: float | Array, num_rays: int) -> Array:
    """A scalar or per-ray `(N,)`/`(N, 1)` bound -> `(N, 1)` float32."""
    value = jnp.asarray(value, jnp.float32)
    if value.ndim == 1:
        value = value[:, None]
    return jnp.broadcast_to(value, (num_rays, 1))


def points_along_rays(origins: Array, directions: Array, z_vals: Array) -> Array:
    """`origins, directions: (N, 3)`, `z_vals: (N, S)` -> points `(N, S, 3)`."""
    return origins[:, None, :] + z_vals[..., None] * directions[:, None, :]


def interpolate_rows(x: Array, xp: Array, fp: Array) -> Array:
    """Piecewise-linear interpolation, one table per row (`jnp.interp` row by row).

    Args:
      x: (N, M) query points.
      xp: (N, K) sorted knots per row (K >= 2); equal neighbours are allowed (such a
        zero-length segment is never interpolated inside).
      fp: (N, K) values at the knots.

    Returns:
      (N, M) values; queries outside [xp[:, 0], xp[:, -1]] get the end values.
    """
    # Segment of each query: how many inner knots lie at or below it, in [0, K - 2]; a binary
    # search per row (on the CPU 14x faster than comparing every query with every knot).
    search = functools.partial(jnp.searchsorted, side="right", method="scan")
    index = jax.vmap(search)(xp[:, 1:-1], x)
    x_lo = jnp.take_along_axis(xp, index, axis=-1)
    x_hi = jnp.take_along_axis(xp, index + 1, axis=-1)
    f_lo = jnp.take_along_axis(fp, index, axis=-1)
    f_hi = jnp.take_along_axis(fp, index + 1, axis=-1)
    span = x_hi - x_lo
    frac = jnp.clip((x - x_lo) / jnp.where(span > 0.0, span, 1.0), 0.0, 1.0)
    return f_lo + frac * (f_hi - f_lo)


def contracted_distance(
    origins: Array,
    directions: Array,
    near: float | Array,
    far: float | Array,
    num_knots: int = CONTRACTED_KNOTS,
    inner_radius: float = 1.0,
) -> tuple[Array, Array]:
    """The distance travelled in contracted space along each ray, as a monotone knot table.

    With c = `grid.contract(., inner_radius)` (the tri-plane field's contraction: linear,
    scale 1 / (2 inner_radius), inside the ball of radius `inner_radius` around the model
    frame's origin, mip-NeRF 360's 2 - 1/|y| beyond), the contracted distance of depth z is the
    arc length of the contracted ray from near,

        s(z) = integral_near^z |d/dz' c(o + z' d)| dz',

    taken on the K-segment polyline through the contracted points at the depths
    z_k = near + (far - near) k / K:

        s_0 = 0,   s_{k+1} = s_k + |c(o + z_{k+1} d) - c(o + z_k d)|,

    and linear in z between knots. Inside the ball the contraction is linear, so there s is
    exact (|d| / (2 inner_radius) per unit of z); beyond it the polyline converges to the arc
    length as 1/K^2. The map z -> s is strictly increasing (the contraction is one-to-one),
    hence its inverse s -> z (`interpolate_rows(s, s_knots, z_knots)`) is exact, as is the
    forward map (`interpolate_rows(z, z_knots, s_knots)`); one is the other's inverse to float
    rounding. Unlike disparity or mip-NeRF 360's s-space (functions of the depth only), it
    accounts for where the ray passes the scene centre: the samples are evenly spaced in the
    space the field's grids are laid out in, for rays through the ball and rays that miss it.
    The field contracts the canonical points (after the FLAME guide and the warp, which move
    them by centimetres); the spacing uses the observation-space ray, as it must.

    Args:
      origins: (N, 3) ray origins; directions: (N, 3) ray directions (any norm).
      near, far: scalar or (N,) bounds, near <= far.
      num_knots: K, segments of the polyline.
      inner_radius: the contraction's inner radius (model units; the field's is 1).

    Returns:
      z_knots: (N, K + 1) depths, near to far; s_knots: (N, K + 1) their contracted
      distances, 0 to the ray's whole contracted length s_knots[:, -1].
    """
    num_rays = origins.shape[0]
    near, far = _per_ray(near, num_rays), _per_ray(far, num_rays)
    steps = jnp.linspace(0.0, 1.0, num_knots + 1)
    z_knots = (1.0 - steps) * near + steps * far  # (N, K + 1)
    # `grid.contract` written per coordinate: (N, K + 1) arrays only, so that XLA fuses the
    # whole table into one loop (on (N, K + 1, 3) arrays the norms are separate reductions).
    y = [(origins[:, None, a] + z_knots * directions[:, None, a]) / inner_radius for a in range(3)]
    sq_norm = y[0] * y[0] + y[1] * y[1] + y[2] * y[2]
    outside = sq_norm > 1.0
    norm = jnp.sqrt(jnp.where(outside, sq_norm, 1.0))
    scale = 0.5 * jnp.where(outside, (2.0 - 1.0 / norm) / norm, 1.0)
    steps_3d = [scale[:, 1:] * c[:, 1:] - scale[:, :-1] * c[:, :-1] for c in y]
    lengths = jnp.sqrt(sum(d * d for d in steps_3d))
    s_knots = jnp.concatenate([jnp.zeros_like(z_knots[:, :1]), jnp.cumsum(lengths, -1)], -1)
    return z_knots, s_knots


def _stratify(key: Array, values: Array) -> Array:
    """Each of the sorted (N, S) `values` drawn uniformly between its midpoints (the first and
    last strata end at the first and last value)."""
    mids = 0.5 * (values[:, 1:] + values[:, :-1])
    lower = jnp.concatenate([values[:, :1], mids], axis=-1)
    upper = jnp.concatenate([mids, values[:, -1:]], axis=-1)
    return lower + (upper - lower) * jax.random.uniform(key, values.shape)


def sample_along_rays(
    key: Array,
    origins: Array,
    directions: Array,
    num_samples: int,
    near: float | Array,
    far: float | Array,
    randomized: bool,
    spacing: Spacing = "linear",
) -> tuple[Array, Array]:
    """Stratified samples between near and far.

    Without randomisation the samples are `num_samples` evenly spaced values from near to far
    inclusive of a parameter u in [0, 1]:

        "linear"      z = (1 - u) near + u far
        "disparity"   z = 1 / ((1 - u) / near + u / far)     (evenly in 1/z)
        "contracted"  z = s^-1(u s(far)), s the contracted distance along the ray
                      (`contracted_distance`): evenly spaced points of contracted space

    With it, sample i is drawn uniformly between the midpoints around the i-th of those values
    (the first and last strata end at near and far), so samples stay sorted and inside
    [near, far]. The midpoints are taken in depth for "linear" and "disparity" (as ever), in
    contracted distance for "contracted" (each sample stays in its stratum of s).

    Args:
      key: PRNG key (unused when not randomized).
      origins: (N, 3) ray origins.
      directions: (N, 3) ray directions.
      num_samples: S.
      near: scalar or (N,) near bound(s), > 0 with "disparity".
      far: scalar or (N,) far bound(s).
      randomized: jitter samples within their strata (training) or not (evaluation).
      spacing: "linear", "disparity" or "contracted" (`SPACINGS`).

    Returns:
      z_vals: (N, S) sorted sample depths; points: (N, S, 3).
    """
    if spacing not in SPACINGS:
        raise ValueError(f"sample_along_rays: spacing must be one of {SPACINGS}, got {spacing!r}")
    num_rays = origins.shape[0]
    near, far = _per_ray(near, num_rays), _per_ray(far, num_rays)
    t = jnp.linspace(0.0, 1.0, num_samples)
    if spacing == "contracted":
        z_knots, s_knots = contracted_distance(origins, directions, near, far)
        s = t * s_knots[:, -1:]  # (N, S)
        if randomized:
            s = _stratify(key, s)
        z_vals = interpolate_rows(s, s_knots, z_knots)
        return z_vals, points_along_rays(origins, directions, z_vals)
    if spacing == "disparity":
        z_vals = 1.0 / ((1.0 - t) / near + t / far)
    else:
        z_vals = (1.0 - t) * near + t * far  # (N, S)
    if randomized:
        z_vals = _stratify(key, z_vals)
    return z_vals, points_along_rays(origins, directions, z_vals)


def sample_pdf(
    key: Array, bins: Array, weights: Array, num_samples: int, randomized: bool
) -> Array:
    """Inverse-transform sampling of a piecewise-constant pdf along each ray.

    The pdf is `weights` (plus a small padding, see `_PDF_PADDING`) normalised per ray and
    constant inside each bin (all-zero weights: equal mass per bin). Uniform variates are
    stratified: u_k = (k + 0.5) / M without randomisation, (k + U_k) / M with it, so the
    samples come out sorted and every bin of probability p receives about p * M of them.
    Gradients do not flow into the samples.

    Args:
      key: PRNG key (unused when not randomized).
      bins: (N, B + 1) sorted bin edges.
      weights: (N, B) non-negative bin weights (need not sum to 1).
      num_samples: M.
      randomized: jitter the variates within their strata.

    Returns:
      (N, M) sorted samples inside [bins[:, 0], bins[:, -1]].
    """
    bins = jax.lax.stop_gradient(bins)
    weights = jax.lax.stop_gradient(jnp.maximum(weights, 0.0)) + _PDF_PADDING
    pdf = weights / jnp.sum(weights, axis=-1, keepdims=True)
    inner_cdf = jnp.cumsum(pdf[:, :-1], axis=-1)  # (N, B - 1): cdf at the inner edges
    cdf = jnp.concatenate(
        [jnp.zeros_like(pdf[:, :1]), jnp.minimum(inner_cdf, 1.0), jnp.ones_like(pdf[:, :1])],
        axis=-1,
    )  # (N, B + 1)

    num_rays = bins.shape[0]
    strata = jnp.arange(num_samples, dtype=pdf.dtype)
    if randomized:
        offsets = jax.random.uniform(key, (num_rays, num_samples), dtype=pdf.dtype)
    else:
        offsets = jnp.full((num_rays, num_samples), 0.5, dtype=pdf.dtype)
    u = (strata + offsets) / num_samples  # (N, M) in [0, 1)

    return interpolate_rows(u, cdf, bins)  # the inverse of the piecewise-linear cdf


def resample_along_rays(
    key: Array,
    origins: Array,
    directions: Array,
    z_vals: Array,
    weights: Array,
    num_samples: int,
    randomized: bool,
    include_input: bool = True,
) -> tuple[Array, Array]:
    """Hierarchical sampling: new samples where the coarse rendering put its weight.

    Uses the renderer's convention: coarse sample i covers [z_i, z_{i+1}] with weight w_i, so
    the bins are the coarse z_vals and the last weight (the open interval behind the last
    sample) is left out.

    Whatever the coarse spacing (`sample_along_rays`), resampling in depth is right: the bins
    are the coarse intervals, so the spacing is in the bins (a bin's share of the new samples
    is its weight; empty rays, all weights ~0, get equal numbers per bin, i.e. the coarse
    spacing again), and inside a bin the renderer takes density constant in depth, which the
    pdf, constant in depth there, matches. Resampling in contracted distance would change only
    where samples fall inside each bin, and only beyond the contraction's inner ball (inside
    it depth and contracted distance are proportional).

    Args:
      key: PRNG key.
      origins, directions: (N, 3).
      z_vals: (N, S) sorted coarse sample depths, S >= 2.
      weights: (N, S) coarse rendering weights (gradients are stopped).
      num_samples: M new samples per ray.
      randomized: see `sample_pdf`.
      include_input: also return the coarse samples (merged and sorted), as NeRF's fine pass;
        False returns only the M new ones (proposal-style fine pass).

    Returns:
      z_vals: (N, S + M) or (N, M) sorted; points: (N, S + M, 3) or (N, M, 3).
    """
    z_new = sample_pdf(key, z_vals, weights[:, :-1], num_samples, randomized)
    if include_input:
        z_new = jnp.sort(jnp.concatenate([jax.lax.stop_gradient(z_vals), z_new], axis=-1))
    return z_new, points_along_rays(origins, directions, z_new)


def sample_intervals(z_vals: Array) -> Array:
    """The renderer's intervals as histogram edges: `z_vals: (N, S)` -> `(N, S + 1)`.

    Sample i stands for [z_i, z_{i+1}] and the last one for everything behind it
    (`volumetric_rendering`'s `last_delta`), so the edges are the samples followed by +inf;
    the rendering weights (N, S) are the histogram's masses.
    """
    return jnp.concatenate([z_vals, jnp.full_like(z_vals[:, :1], jnp.inf)], axis=-1)


def outer_bound(edges: Array, proposal_edges: Array, proposal_weights: Array) -> Array:
    """mip-NeRF 360's outer bound: the proposal mass over each interval of another histogram.

    For interval i = [t_i, t_{i+1}] of `edges`, the summed weight of the proposal intervals
    [u_j, u_{j+1}] that overlap it, i.e. with u_j < t_{i+1} and u_{j+1} > t_i (touching at an
    edge is no overlap):

        bound_i = sum_{j : u_j < t_{i+1} and u_{j+1} > t_i} w_j.

    Both histograms describe one ray, so a proposal consistent with the fine weights bounds
    them: bound_i >= w_i wherever the fine interval's mass also lies in the proposal's
    intervals (equal histograms of intervals of positive length: bound_i = w_i). A fine
    weight above its bound is mass the proposal missed (mip-NeRF 360's proposal loss
    penalises it). The overlapping j are consecutive, from the number of proposal intervals
    ending at or before t_i to the number starting before t_{i+1}, so the bound is a
    difference of prefix sums.

    Args:
      edges: (N, S + 1) sorted edges of the intervals to bound (the last may be +inf).
      proposal_edges: (N, P + 1) sorted edges of the proposal histogram (the last may be +inf).
      proposal_weights: (N, P) non-negative proposal weights (gradients flow into them).

    Returns:
      (N, S) the bound of each interval (0 where no proposal interval overlaps it).
    """
    prefix = jnp.concatenate(
        [jnp.zeros_like(proposal_weights[:, :1]), jnp.cumsum(proposal_weights, axis=-1)], axis=-1
    )  # (N, P + 1): the mass of the first k proposal intervals
    first = jnp.sum(edges[:, :-1, None] >= proposal_edges[:, None, 1:], axis=-1)  # (N, S)
    stop = jnp.sum(edges[:, 1:, None] > proposal_edges[:, None, :-1], axis=-1)  # (N, S)
    inside = jnp.take_along_axis(prefix, stop, -1) - jnp.take_along_axis(prefix, first, -1)
    return jnp.where(stop > first, inside, 0.0)  # stop <= first: no overlap


def compositing_weights(
    sigma: Array, z_vals: Array, directions: Array, last_delta: float = 1e10
) -> Array:
    """NeRF's compositing weights w_i = T_i alpha_i (see `volumetric_rendering`).

    Args:
      sigma: (N, S) non-negative densities; z_vals: (N, S) sorted sample depths.
      directions: (N, 3) ray directions (their norm scales the intervals).
      last_delta: length of the last sample's interval.

    Returns:
      (N, S) weights.
    """
    deltas = jnp.concatenate(
        [z_vals[:, 1:] - z_vals[:, :-1], jnp.full_like(z_vals[:, :1], last_delta)], axis=-1
    )
    deltas = deltas * jnp.linalg.norm(directions, axis=-1, keepdims=True)
    optical_depth = sigma * deltas
    alpha = 1.0 - jnp.exp(-optical_depth)
    # Exclusive cumulative sum: transmittance before each sample (1 at the first).
    accumulated = jnp.concatenate(
        [jnp.zeros_like(optical_depth[:, :1]), jnp.cumsum(optical_depth[:, :-1], axis=-1)],
        axis=-1,
    )
    return alpha * jnp.exp(-accumulated)


def density_rendering(
    sigma: Array, z_vals: Array, directions: Array, last_delta: float = 1e10
) -> dict[str, Array]:
    """`volumetric_rendering` without colour (a proposal level): what the weights give.

    Args:
      sigma: (N, S) non-negative densities; z_vals: (N, S) sorted sample depths.
      directions: (N, 3) ray directions; last_delta: length of the last sample's interval.

    Returns:
      dict with depth (N,) = sum_i w_i z_i, acc (N,) = sum_i w_i, weights (N, S).
    """
    if sigma.shape != z_vals.shape:
        raise ValueError(
            f"density_rendering: found sigma {sigma.shape}, z_vals {z_vals.shape}; expected "
            "(N, S) both"
        )
    weights = compositing_weights(sigma, z_vals, directions, last_delta)
    depth = jnp.sum(weights * z_vals, axis=-1)
    return {"depth": depth, "acc": jnp.sum(weights, axis=-1), "weights": weights}


def volumetric_rendering(
    rgb: Array,
    sigma: Array,
    z_vals: Array,
    directions: Array,
    last_delta: float = 1e10,
    background: float | Array | None = None,
    normalize_depth: bool = False,
) -> dict[str, Array]:
    """Alpha-composites samples along rays (NeRF's quadrature).

    delta_i = (z_{i+1} - z_i) |d| (last: `last_delta` |d|), alpha_i = 1 - exp(-sigma_i delta_i),
    T_i = exp(-sum_{j<i} sigma_j delta_j), w_i = T_i alpha_i. Exact for density and colour
    constant on each [z_i, z_{i+1}].

    Args:
      rgb: (N, S, 3) colours.
      sigma: (N, S) non-negative densities.
      z_vals: (N, S) sorted sample depths.
      directions: (N, 3) ray directions (their norm scales the intervals).
      last_delta: length of the last sample's interval.
      background: None (black, the default: real captures have their own background), or a
        colour, (3,) or (N, 3), added with weight 1 - acc.
      normalize_depth: False returns depth = sum_i w_i z_i (NeRF's expected depth, pulled
        towards 0 where acc < 1); True divides it by acc (the expected depth of what was hit),
        clipped to [z_0, z_{S-1}] (z_0 where nothing was hit).

    Returns:
      dict with rgb (N, 3), depth (N,), acc (N,) = sum_i w_i, weights (N, S).
    """
    if sigma.shape != z_vals.shape or rgb.shape != (*z_vals.shape, 3):
        raise ValueError(
            "volumetric_rendering: found rgb "
            f"{rgb.shape}, sigma {sigma.shape}, z_vals {z_vals.shape}; expected (N, S, 3), "
            "(N, S), (N, S)"
        )
    weights = compositing_weights(sigma, z_vals, directions, last_delta)

    acc = jnp.sum(weights, axis=-1)
    out_rgb = jnp.sum(weights[..., None] * rgb, axis=-2)
    if background is not None:
        out_rgb = out_rgb + (1.0 - acc[:, None]) * jnp.asarray(background, out_rgb.dtype)
    depth = jnp.sum(weights * z_vals, axis=-1)
    if normalize_depth:
        depth = jnp.clip(depth / jnp.maximum(acc, 1e-10), z_vals[:, 0], z_vals[:, -1])
    return {"rgb": out_rgb, "depth": depth, "acc": acc, "weights": weights}
