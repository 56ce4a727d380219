# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Image metrics and the registry of evaluation metrics.

Image metrics in JAX: PSNR (optionally masked), SSIM (dm-pix) and MS-SSIM (Wang et al. 2003).
Images are float arrays in [0, 1] of shape ``(..., H, W, C)`` (``C`` is 3 for RGB, but any
channel count works); every metric returns one value per image, shape ``(...)``. All functions
are pure and can be wrapped in ``jax.jit``.

SSIM settings (all metrics): 11x11 Gaussian window with sigma 1.5, k1 = 0.01, k2 = 0.03,
max_val = 1, statistics over the 'valid' region (no padding), as ``tf.image.ssim``/dm-pix.

``METRICS`` is the registry of what evaluation reports: one ``Metric`` per name, with its
function, table format and whether it is a table column and part of training-time
validation. Adding a metric is one ``register(Metric(...))`` call below; `frame_metrics`,
`disentanglement`, the metrics.json report, TensorBoard and the results table
(`flamenerf.evaluation.evaluate`) all read the registry. LPIPS (`flamenerf.evaluation.lpips`)
needs the user's weight files: `lpips.enable` registers it (after `ms_ssim_scales`) when they
are there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "METRICS",
    "MS_SSIM_WEIGHTS",
    "SSIM_FILTER_SIGMA",
    "SSIM_FILTER_SIZE",
    "SSIM_K1",
    "SSIM_K2",
    "Metric",
    "dilate",
    "disentanglement",
    "disentanglement_region",
    "frame_metrics",
    "metric_names",
    "ms_ssim",
    "ms_ssim_num_scales",
    "mse_to_psnr",
    "psnr",
    "register",
    "ssim",
    "unregister",
]

SSIM_FILTER_SIZE = 11  # Gaussian window, pixels.
SSIM_FILTER_SIGMA = 1.5  # Gaussian window sigma, pixels.
SSIM_K1 = 0.01  # Luminance stabiliser: c1 = (k1 * max_val)**2.
SSIM_K2 = 0.03  # Contrast/structure stabiliser: c2 = (k2 * max_val)**2.
SSIM_MAX_VAL = 1.0  # Dynamic range of the images.
# Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for image quality
# assessment": exponents of scales 1 (full resolution) to 5.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_float(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _check_pair(name: str, pred: jax.Array, target: jax.Array, min_side: int = 1) -> None:
    if pred.ndim < 3:
        raise ValueError(f"{name}: pred: expected shape (..., H, W, C), got {pred.shape}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: target: expected the shape of pred {pred.shape}, got {target.shape}"
        )
    if min(pred.shape[-3:-1]) < min_side:
        raise ValueError(
            f"{name}: pred: expected H and W >= {min_side} (the SSIM window), "
            f"got shape {pred.shape}"
        )


def mse_to_psnr(mse: jax.Array) -> jax.Array:
    """PSNR in dB of a mean squared error, for images in [0, 1]: ``-10 log10(mse)``.

    Args:
      mse: any shape. 0 gives inf, NaN gives NaN.

    Returns:
      Same shape as ``mse``.
    """
    return -10.0 * jnp.log10(mse)


def psnr(pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Peak signal-to-noise ratio (dB) of each image, for images in [0, 1].

    Args:
      pred: (..., H, W, C) rendered image(s).
      target: (..., H, W, C) ground truth, same shape.
      mask: optional (..., H, W) or (..., H, W, 1), boolean or float weights in [0, 1]. The
        MSE is then taken over the masked pixels only (all C channels of each):
        ``sum(mask * (pred - target)**2) / (C * sum(mask))``. A mask without any pixel gives
        0 / 0, i.e. a NaN PSNR (use ``jnp.nanmean`` to average such frames away).

    Returns:
      (...) PSNR per image; inf when the (masked) images are identical.
    """
    pred, target = _as_float(pred), _as_float(target)
    _check_pair("psnr", pred, target)
    sq = (pred - target) ** 2
    if mask is None:
        return mse_to_psnr(jnp.mean(sq, axis=(-3, -2, -1)))
    mask = jnp.asarray(mask)
    if mask.shape == pred.shape[:-1] + (1,):
        mask = mask[..., 0]
    if mask.shape != pred.shape[:-1]:
        raise ValueError(
            f"psnr: mask: expected shape {pred.shape[:-1]} or {pred.shape[:-1] + (1,)} "
            f"(pred's without channels), got {mask.shape}"
        )
    mask = mask.astype(sq.dtype)
    total = jnp.sum(mask[..., None] * sq, axis=(-3, -2, -1))
    count = jnp.sum(mask, axis=(-2, -1)) * pred.shape[-1]
    return mse_to_psnr(total / count)


def ssim(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean SSIM of each image (``dm_pix.ssim``; averaged over pixels and channels).

    Args:
      pred: (..., H, W, C) with H, W >= 11, values in [0, 1].
      target: (..., H, W, C), same shape.

    Returns:
      (...) SSIM per image; 1 for identical images.
    """
    pred, target = _as_float(pred), _as_float(target)
    _check_pair("ssim", pred, target, SSIM_FILTER_SIZE)
    lead, image = pred.shape[:-3], pred.shape[-3:]
    value = dm_pix.ssim(
        pred.reshape((-1, *image)),
        target.reshape((-1, *image)),
        max_val=SSIM_MAX_VAL,
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_FILTER_SIGMA,
        k1=SSIM_K1,
        k2=SSIM_K2,
    )
    return value.reshape(lead)


def ms_ssim_num_scales(image_shape: Sequence[int], max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Number of MS-SSIM scales ``ms_ssim`` uses for images of shape (..., H, W, C).

    Scale j (0-based) has ``ceil(H / 2**j) x ceil(W / 2**j)`` pixels (odd sizes are padded
    by one row/column before 2x2 average pooling); a scale is used when its short side still
    holds the 11-px window. Five scales therefore need a short side >= 161 px; a 64x64 image
    gets 3 scales (64, 32, 16 px).

    Args:
      image_shape: (..., H, W, C).
      max_scales: at most this many scales (default 5).

    Returns:
      int in [1, max_scales].

    Raises:
      ValueError: when even the full-resolution image is smaller than the window.
    """
    if len(image_shape) < 3:
        raise ValueError(f"ms_ssim: image shape: expected (..., H, W, C), got {image_shape}")
    side = min(image_shape[-3], image_shape[-2])
    scales = 0
    while scales < max_scales and math.ceil(side / 2**scales) >= SSIM_FILTER_SIZE:
        scales += 1
    if scales == 0:
        raise ValueError(
            f"ms_ssim: image shape: expected H and W >= {SSIM_FILTER_SIZE} (the SSIM window), "
            f"got {tuple(image_shape)}"
        )
    return scales


def _gaussian_window() -> jax.Array:
    """(11,) normalised 1D Gaussian, sigma 1.5 (the same taps as dm-pix)."""
    x = jnp.arange(SSIM_FILTER_SIZE, dtype=jnp.float32) - (SSIM_FILTER_SIZE - 1) / 2
    w = jnp.exp(-0.5 * (x / SSIM_FILTER_SIGMA) ** 2)
    return w / jnp.sum(w)


def _blur_valid(x: jax.Array, window: jax.Array) -> jax.Array:
    """Separable Gaussian filter, 'valid' region. x: (N, H, W) -> (N, H - 10, W - 10)."""
    k = window.shape[0]
    x = x[:, None]  # (N, 1, H, W): NCHW with one feature.
    for kernel in (window.reshape(1, 1, k, 1), window.reshape(1, 1, 1, k)):
        x = jax.lax.conv_general_dilated(
            x,
            kernel.astype(x.dtype),
            window_strides=(1, 1),
            padding="VALID",
            precision=jax.lax.Precision.HIGHEST,
        )
    return x[:, 0]


def _ssim_terms(x: jax.Array, y: jax.Array, window: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean contrast-structure and mean SSIM of each image. x, y: (N, H, W) -> ((N,), (N,))."""
    c1 = (SSIM_K1 * SSIM_MAX_VAL) ** 2
    c2 = (SSIM_K2 * SSIM_MAX_VAL) ** 2
    mu_x, mu_y = _blur_valid(x, window), _blur_valid(y, window)
    var_x = _blur_valid(x * x, window) - mu_x**2
    var_y = _blur_valid(y * y, window) - mu_y**2
    cov = _blur_valid(x * y, window) - mu_x * mu_y
    # Same round-off guards as dm_pix.ssim, so that one scale reproduces it exactly.
    eps = jnp.finfo(jnp.float32).eps ** 2
    var_x, var_y = jnp.maximum(eps, var_x), jnp.maximum(eps, var_y)
    cov = jnp.sign(cov) * jnp.minimum(jnp.sqrt(var_x * var_y), jnp.abs(cov))
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return jnp.mean(cs, axis=(-2, -1)), jnp.mean(luminance * cs, axis=(-2, -1))


def _downsample(x: jax.Array) -> jax.Array:
    """2x2 average pooling; an odd H or W is first padded by repeating its last row/column
    (tf.image.ssim_multiscale's 'SYMMETRIC' padding). x: (N, H, W) -> (N, ceil(H/2), ceil(W/2)).
    """
    n, h, w = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    h, w = x.shape[1:]
    return x.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def ms_ssim(
    pred: jax.Array, target: jax.Array, weights: Sequence[float] = MS_SSIM_WEIGHTS
) -> jax.Array:
    """Multi-scale SSIM of each image (Wang, Simoncelli & Bovik 2003).

    For each channel, with M scales (scale 1 = full resolution, 2x2 average pooling between
    scales, see ``ms_ssim_num_scales``)::

        MS-SSIM = prod_{j < M} relu(cs_j) ** w_j  *  relu(ssim_M) ** w_M

    where ``cs_j`` is the mean contrast-structure term at scale j and ``ssim_M`` the mean
    SSIM (luminance * cs per pixel) at the coarsest scale used. Negative terms are clipped to
    0 before the (fractional) powers, as ``tf.image.ssim_multiscale`` does. The result is
    averaged over channels (like dm-pix/TF SSIM on colour images).

    Images too small for all scales (short side < 161 px for 5 scales) use as many scales as
    fit, with the weights of those scales renormalised to sum to 1; ``ms_ssim_num_scales``
    gives that number (a static function of the shape). With ``weights=(1.0,)`` this is SSIM.

    Args:
      pred: (..., H, W, C) with H, W >= 11, values in [0, 1].
      target: (..., H, W, C), same shape.
      weights: exponents per scale, finest first (default Wang et al.'s five).

    Returns:
      (...) MS-SSIM per image; 1 for identical images.
    """
    pred, target = _as_float(pred), _as_float(target)
    _check_pair("ms_ssim", pred, target, SSIM_FILTER_SIZE)
    if not weights:
        raise ValueError("ms_ssim: weights: expected at least one weight, got none")
    num_scales = ms_ssim_num_scales(pred.shape, len(weights))
    w = jnp.asarray(weights[:num_scales], dtype=pred.dtype)
    w = w / jnp.sum(w)

    lead, (h, wd, c) = pred.shape[:-3], pred.shape[-3:]
    # (..., H, W, C) -> (N, H, W) with N = prod(lead) * C: every channel an image.
    x = jnp.moveaxis(pred.reshape((-1, h, wd, c)), -1, 1).reshape((-1, h, wd))
    y = jnp.moveaxis(target.reshape((-1, h, wd, c)), -1, 1).reshape((-1, h, wd))
    window = _gaussian_window()

    terms = []
    for scale in range(num_scales):
        cs, full = _ssim_terms(x, y, window)
        if scale < num_scales - 1:
            terms.append(cs)
            x, y = _downsample(x), _downsample(y)
        else:
            terms.append(full)
    values = jax.nn.relu(jnp.stack(terms, axis=-1))  # (N, M)
    per_channel = jnp.prod(values**w, axis=-1)  # (N,)
    return per_channel.reshape((-1, c)).mean(axis=-1).reshape(lead)


# ------------------------------------------------------------------------------------------
# The disentanglement region: where a change of expression may change a render.


def dilate(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    """Binary dilation of an (H, W) bool mask by `pixels` with a 3x3 square (8-neighbours)."""
    import scipy.ndimage

    mask = np.asarray(mask, bool)
    if pixels <= 0:
        return mask
    return scipy.ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=pixels)


def disentanglement_region(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """The union of two FLAME silhouettes, mask_a and mask_b bool (H, W), dilated by 1 px:
    bool (H, W), the "inside" of the disentanglement metrics."""
    return dilate(np.logical_or(mask_a, mask_b), 1)


def _mean_change(rgb_a: np.ndarray, rgb_b: np.ndarray, where: np.ndarray) -> float:
    """Mean |rgb_a - rgb_b| over the pixels (and channels) of bool (H, W) `where`; NaN if none.

    rgb_a, rgb_b: (H, W, 3).
    """
    change = np.abs(np.asarray(rgb_a, np.float64) - np.asarray(rgb_b, np.float64)).mean(-1)
    return float(change[where].mean()) if np.any(where) else float("nan")


# ------------------------------------------------------------------------------------------
# The registry.

MetricKind = Literal["frame", "disentanglement", "report"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One evaluation metric: how it is computed, written and shown.

    Attributes:
      name: its key in metrics.json (per frame and in "mean"), its TensorBoard tag
        (`eval/NAME`, `val/NAME`) and its table column.
      kind: what `fn` reads and returns:
        "frame": fn(pred (H, W, 3), target (H, W, 3), mask bool (H, W)) -> float, a render
          against its validation image, mask the frame's FLAME silhouette;
        "disentanglement": fn(rgb_a (H, W, 3), rgb_b (H, W, 3), region bool (H, W)) -> float,
          two renders of one camera with two expressions, region their
          `disentanglement_region` (docs/architecture.md#rendering-with-other-parameters);
        "report": fn(report) -> float | None, read from an evaluation report (the
          metrics.json dictionary) instead of being averaged over frames.
      fn: the function.
      format: format spec of its table cell (e.g. ".2f"); NaN is written "nan", None "".
      in_table: a column of the results table (markdown and CSV), in registration order.
      integer: a count: an integral mean is written as an int, so is its table cell.
      validation: also computed by training-time validation (`Experiment.validate`).
    """

    name: str
    kind: MetricKind
    fn: Callable[..., Any]
    format: str = ".4f"
    in_table: bool = True
    integer: bool = False
    validation: bool = False


METRICS: dict[str, Metric] = {}


def register(metric: Metric, after: str | None = None) -> Metric:
    """Adds a metric to `METRICS` (after the ones there, or right after the metric named
    `after` when that is registered: tables show them in this order).

    Raises:
      ValueError: a metric of that name is registered already, or an unknown kind.
    """
    if metric.name in METRICS:
        raise ValueError(f"metric '{metric.name}': registered twice")
    if metric.kind not in ("frame", "disentanglement", "report"):
        raise ValueError(
            f"metric '{metric.name}': kind: expected 'frame', 'disentanglement' or 'report', "
            f"got {metric.kind!r}"
        )
    if after not in METRICS:
        METRICS[metric.name] = metric
        return metric
    items = list(METRICS.items())
    position = [name for name, _ in items].index(after) + 1
    items.insert(position, (metric.name, metric))
    METRICS.clear()
    METRICS.update(items)
    return metric


def unregister(name: str) -> None:
    """Removes a metric from `METRICS` (nothing if it is not there): metrics that depend on
    the user's files (`flamenerf.evaluation.lpips.enable`) come and go."""
    METRICS.pop(name, None)


def metric_names(kind: MetricKind | None = None, validation: bool | None = None) -> list[str]:
    """Names of the registered metrics of a kind (None: every kind), in registration order;
    with `validation` True (False) only those validation computes (does not)."""
    return [
        m.name
        for m in METRICS.values()
        if (kind is None or m.kind == kind) and (validation is None or m.validation == validation)
    ]


def frame_metrics(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray, names: Iterable[str] | None = None
) -> dict[str, float]:
    """The "frame" metrics of one render: PSNR (whole, face, outside), SSIM, MS-SSIM and its
    number of scales (as registered).

    Training-time validation and evaluation both score frames with this function.

    Args:
      pred, target: (H, W, 3) in [0, 1]; mask: bool (H, W) FLAME silhouette.
      names: the metrics to compute (default: every registered "frame" metric), in that order.

    Returns:
      {name: value}. SSIM and MS-SSIM are NaN (and `ms_ssim_scales` 0) for images smaller
      than the 11-px SSIM window.

    Raises:
      ValueError: a name that is not a registered "frame" metric.
    """
    names = metric_names("frame") if names is None else list(names)
    values = {}
    for name in names:
        metric = METRICS.get(name)
        if metric is None or metric.kind != "frame":
            raise ValueError(
                f"frame_metrics: '{name}': expected one of the frame metrics "
                f"{metric_names('frame')}"
            )
        values[name] = metric.fn(pred, target, mask)
    return values


def disentanglement(
    rgb_a: np.ndarray, rgb_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray
) -> dict[str, float]:
    """How much a change of expression changes a render, outside and inside the face.

    Two renders of one camera with two expressions
    (docs/architecture.md#rendering-with-other-parameters): the region is the union of the two
    FLAME silhouettes dilated by 1 px. With the silhouette spatial prior the change outside should
    be ~0.

    Args:
      rgb_a, rgb_b: (H, W, 3) renders; mask_a, mask_b: bool (H, W) their silhouettes.

    Returns:
      The registered "disentanglement" metrics: {"disent_outside": mean |rgb_a - rgb_b|
      over pixels (and channels) outside the region, "disent_inside": the same inside it};
      NaN for an empty region.
    """
    region = disentanglement_region(mask_a, mask_b)
    return {
        name: METRICS[name].fn(rgb_a, rgb_b, region) for name in metric_names("disentanglement")
    }


_JITTED: dict[str, Callable[..., jax.Array]] = {}


def _jitted(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """jax.jit of a metric (compiled once per image shape)."""
    if fn.__name__ not in _JITTED:
        _JITTED[fn.__name__] = jax.jit(fn)
    return _JITTED[fn.__name__]


def _windowed(fn: Callable[..., jax.Array]) -> Callable[..., float]:
    """A jitted SSIM-family metric of (pred, target, mask) as a float: NaN below the window."""

    def value(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
        pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
        if min(pred.shape[:2]) < SSIM_FILTER_SIZE:
            return math.nan
        return float(_jitted(fn)(pred, target))

    return value


def _ms_ssim_scales(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> int:
    """MS-SSIM's number of scales for pred's shape (H, W, 3); 0 below the SSIM window."""
    shape = np.shape(pred)
    return ms_ssim_num_scales(shape) if min(shape[:2]) >= SSIM_FILTER_SIZE else 0


def _distance_value(key: str) -> Callable[[dict[str, Any]], Any]:
    """A report's `distance` section's value (`flamenerf.evaluation.distance.distance_report`)."""
    return lambda report: report.get("distance", {}).get(key)


# Validation images against renders (validation also logs the three PSNRs).
register(
    Metric(
        "psnr",
        "frame",
        lambda pred, target, mask: float(psnr(pred, target)),
        format=".2f",
        validation=True,
    )
)
register(
    Metric(
        "psnr_face",
        "frame",
        lambda pred, target, mask: float(psnr(pred, target, mask)),
        format=".2f",
        validation=True,
    )
)
register(
    Metric(
        "psnr_outside",
        "frame",
        lambda pred, target, mask: float(psnr(pred, target, ~mask)),
        format=".2f",
        validation=True,
    )
)
register(Metric("ssim", "frame", _windowed(ssim), format=".4f"))
register(Metric("ms_ssim", "frame", _windowed(ms_ssim), format=".4f"))
register(Metric("ms_ssim_scales", "frame", _ms_ssim_scales, format=".2f", integer=True))
# Two renders with two expressions: the change outside and inside the face.
register(
    Metric(
        "disent_outside",
        "disentanglement",
        lambda rgb_a, rgb_b, region: _mean_change(rgb_a, rgb_b, ~region),
        format=".2e",
    )
)
register(
    Metric(
        "disent_inside",
        "disentanglement",
        lambda rgb_a, rgb_b, region: _mean_change(rgb_a, rgb_b, region),
        format=".2e",
    )
)
# PSNR of the frames nearest to / farthest from their code frame's camera.
register(Metric("psnr_near_third", "report", _distance_value("near_third_psnr"), format=".2f"))
register(Metric("psnr_far_third", "report", _distance_value("far_third_psnr"), format=".2f"))
# The farthest third rendered with the nearest training camera's codes, minus with its own
# (dB): near 0 when the scene does not depend on whose codes render it.
register(
    Metric(
        "code_dependence",
        "report",
        lambda report: report.get("distance", {}).get("code_swap", {}).get("code_dependence_db"),
        format=".2f",
    )
)
