# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The rectilinear grids the bake samples, and trilinear reads of them.

A grid is given by its `axes`: three increasing float64 arrays of coordinates (Gx,), (Gy,),
(Gz,) (model-frame units); values sampled on it are float32 (Gx, Gy, Gz) indexed [x, y, z].
`grid_axes` makes cells of one size over the scene's box and finer ones in the slabs through
given boxes (the body's, the head's); `sample_grid` evaluates a function of points at every
grid point, slab by slab along x, each slab written atomically to a cache folder so that an
interrupted bake resumes; `box_mask` marks the grid points inside a box. `trilinear` and
`grid_index` read a grid at arbitrary points in JAX (`flamenerf.export.carving` integrates
optical depths through them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm


def _axis(
    lower: float, upper: float, step: float, intervals: Sequence[tuple[float, float, float]]
) -> np.ndarray:
    """Coordinates from lower to upper: between consecutive interval ends, evenly spaced at
    most the smallest step of the intervals (lo, hi, step) covering that stretch (`step`
    where none does)."""
    ends = {lower, upper} | {e for lo, hi, _ in intervals for e in (lo, hi) if lower < e < upper}
    cuts = sorted(ends)
    coords = [np.array([lower])]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        middle = 0.5 * (a + b)
        local = min([s for lo, hi, s in intervals if lo <= middle <= hi] + [step])
        count = max(1, int(np.ceil((b - a) / local - 1e-9)))
        coords.append(a + (b - a) * np.arange(1, count + 1) / count)
    return np.concatenate(coords)


def grid_axes(
    lower: np.ndarray,
    upper: np.ndarray,
    resolution: int,
    regions: Sequence[tuple[np.ndarray, np.ndarray, int]] = (),
) -> list[np.ndarray]:
    """The rectilinear grid's coordinates along x, y and z.

    Args:
      lower, upper: (3,) the scene's box; resolution: points along its longest side (cells
        at most that long elsewhere).
      regions: finer boxes (lower (3,), upper (3,), points along their longest side): on each
        axis, the stretch through a box uses its step (the finest where boxes overlap).

    Returns:
      Three increasing float64 arrays from `lower` to `upper` (each >= 2 points).
    """
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    step = float((upper - lower).max()) / (resolution - 1)
    intervals: list[list[tuple[float, float, float]]] = [[], [], []]
    for low, high, points in regions:
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if points < 2:
            continue
        fine = float((high - low).max()) / (points - 1)
        for a in range(3):
            intervals[a].append((low[a], high[a], fine))
    return [_axis(lower[a], upper[a], step, intervals[a]) for a in range(3)]


def grid_points(axes: Sequence[np.ndarray], start: int, stop: int) -> np.ndarray:
    """(n, 3) the grid points of x-slices [start, stop), in [x, y, z] index order."""
    yz = np.stack(np.meshgrid(axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 2)
    xs = np.repeat(axes[0][start:stop], len(yz))
    return np.concatenate([xs[:, None], np.tile(yz, (stop - start, 1))], axis=1)


def sample_grid(
    function: Callable[[np.ndarray], np.ndarray],
    axes: Sequence[np.ndarray],
    cache: Path | None = None,
    slab_points: int = 1 << 21,
    desc: str = "density grid",
    show_progress: bool = False,
) -> np.ndarray:
    """A function sampled at every grid point, slab by slab along x, resumable.

    Args:
      function: (N, 3) points -> (N,) values.
      axes: the grid's x, y and z coordinates.
      cache: a folder for the slabs (`slab_XXXX.npy`, each written atomically and reused
        when present with the right shape); None: nothing kept.
      slab_points: about this many points per slab.

    Returns:
      float32 (Gx, Gy, Gz) values indexed [x, y, z].
    """
    gx, gy, gz = (len(a) for a in axes)
    per_slab = max(1, slab_points // (gy * gz))
    out = np.empty((gx, gy, gz), np.float32)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    starts = range(0, gx, per_slab)
    bar = tqdm(starts, desc=desc, disable=not show_progress, unit="slab")
    for index, start in enumerate(bar):
        stop = min(start + per_slab, gx)
        path = None if cache is None else cache / f"slab_{index:04d}.npy"
        if path is not None and path.is_file():
            try:
                values = np.load(path)
            except (OSError, ValueError):
                values = None
            if values is not None and values.shape == (stop - start, gy, gz):
                out[start:stop] = values
                continue
        points = grid_points(axes, start, stop)
        values = np.asarray(function(points), np.float32).reshape(stop - start, gy, gz)
        out[start:stop] = values
        if path is not None:
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, values)
            tmp.replace(path)
    return out


def box_mask(axes: Sequence[np.ndarray], lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """bool (Gx, Gy, Gz): the grid points inside a box."""
    inside = [(a >= lower[k]) & (a <= upper[k]) for k, a in enumerate(axes)]
    return inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]


# --------------------------------------------------------------------------------------------
# Trilinear reads (JAX).


def trilinear(volume_: jax.Array, index: jax.Array) -> jax.Array:
    """Trilinear interpolation of a (A, B, C) array at fractional indices (N, 3), clamped to
    the array (each side >= 2): (N,)."""
    shape = jnp.array(volume_.shape)
    index = jnp.clip(index, 0.0, (shape - 1).astype(index.dtype))
    base = jnp.minimum(jnp.floor(index).astype(jnp.int32), shape - 2)
    frac = index - base
    out = jnp.zeros(index.shape[:-1], volume_.dtype)
    for corner in range(8):
        offset = jnp.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        at = base + offset
        weight = jnp.prod(jnp.where(offset == 1, frac, 1.0 - frac), axis=-1)
        out = out + weight * volume_[at[..., 0], at[..., 1], at[..., 2]]
    return out


def grid_index(axes: Sequence[jax.Array], points: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Fractional grid indices (N, 3) of points (N, 3) on a rectilinear grid, and whether each
    point is inside the grid's box (N,)."""
    index = jnp.stack(
        [
            jnp.interp(points[:, a], axes[a], jnp.arange(len(axes[a]), dtype=points.dtype))
            for a in range(3)
        ],
        axis=-1,
    )
    inside = jnp.all(
        (points >= jnp.stack([a[0] for a in axes])) & (points <= jnp.stack([a[-1] for a in axes])),
        axis=-1,
    )
    return index, inside
