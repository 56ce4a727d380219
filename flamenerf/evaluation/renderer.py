# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering full images in device-sharded chunks, and the per-frame metrics.

`Renderer` compiles the model's deterministic forward pass over the device mesh once; each
chunk of rays is split along the mesh's data axis (every process builds the same global rays
and contributes the slices its devices hold, so this runs unchanged on a pod slice) and the
result is gathered to every process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from flamenerf.datasets.rays import RayBatch, pad_to_multiple, split_chunks
from flamenerf.evaluation import metrics
from flamenerf.nerf.model import FlameNerf
from flamenerf.sharding import batch_sharding, replicated

RENDER_KEYS = ("rgb", "depth", "acc")


class Renderer:
    """Renders RayBatches with the fine level's rgb, depth and acc.

    Args:
      model: the model.
      mesh: the device mesh.
      chunk: rays per chunk (rounded up to a multiple of the device count).
    """

    def __init__(self, model: FlameNerf, mesh: Mesh, chunk: int = 4096):
        self.mesh = mesh
        devices = mesh.devices.size
        self.chunk = -(-chunk // devices) * devices

        def render(params: Any, rays: dict[str, jax.Array], alpha: jax.Array, grids: Any) -> dict:
            out = model.apply({"params": params}, rays, alpha, False, grids)["fine"]
            return {k: out[k] for k in RENDER_KEYS}

        rep = replicated(mesh)
        self._render = jax.jit(
            render,
            in_shardings=(rep, batch_sharding(mesh), rep, rep),
            out_shardings=rep,
        )

    def _place(self, rays: RayBatch) -> dict[str, jax.Array]:
        sharding = batch_sharding(self.mesh)
        return {
            name: jax.make_array_from_callback(value.shape, sharding, lambda idx, v=value: v[idx])
            for name, value in rays._asdict().items()
        }

    def render(
        self, params: Any, rays: RayBatch, alpha: float, grids: Any = None
    ) -> dict[str, np.ndarray]:
        """Renders any number of rays: {"rgb": (N, 3), "depth": (N,), "acc": (N,)}.

        `grids` are the FLAME-guide grids indexed by `rays.frame` (when the model uses them).
        """
        padded, n = pad_to_multiple(rays, self.chunk)
        parts = [
            jax.device_get(self._render(params, self._place(chunk), np.float32(alpha), grids))
            for chunk in split_chunks(padded, self.chunk)
        ]
        return {k: np.concatenate([p[k] for p in parts])[:n] for k in RENDER_KEYS}

    def render_image(
        self, params: Any, rays: RayBatch, alpha: float, shape: tuple[int, int], grids: Any = None
    ) -> dict[str, np.ndarray]:
        """Renders H*W row-major rays into images: rgb (H, W, 3), depth and acc (H, W)."""
        out = self.render(params, rays, alpha, grids)
        return {k: v.reshape(shape + v.shape[1:]) for k, v in out.items()}


def image_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR of the whole image, inside the FLAME silhouette and outside it.

    Args:
      pred, target: (H, W, 3) in [0, 1]; mask: bool (H, W) silhouette.
    """
    return {
        "psnr": float(metrics.psnr(pred, target)),
        "psnr_face": float(metrics.psnr(pred, target, mask)),
        "psnr_outside": float(metrics.psnr(pred, target, ~mask)),
    }


# ------------------------------------------------------------------------------------------
# Quality against the distance to the code frame's camera.


def code_frame_distances(capture: Any, ids: Sequence[str]) -> dict[str, float]:
    """Metres between each frame's camera and the camera of the training frame whose warp
    code it uses (metadata.json `warp_id` -> the training frame with that `warp_id`).

    Args:
      capture: a `flamenerf.datasets.capture.Capture` (cameras in the model frame; distances
        are converted to metres of FLAME space with its `units_per_metre`).
      ids: the frames (any of the capture's ids; a training frame's distance is 0).

    Returns:
      {id: distance}, in the order of `ids`.

    Raises:
      ValueError: an id the capture does not have, or a warp_id no training frame has.
    """
    by_code = {capture.frames[i].warp_id: i for i in capture.train_ids}
    metadata = capture.root / "metadata.json"
    distances = {}
    for frame_id in ids:
        if frame_id not in capture.frames:
            raise ValueError(f"{capture.root / 'dataset.json'}: no frame '{frame_id}'")
        code = capture.frames[frame_id].warp_id
        if code not in by_code:
            raise ValueError(
                f"{metadata}: '{frame_id}'.warp_id = {code} is no training frame's warp_id "
                f"(they are {sorted(by_code)[:5]}...)"
            )
        own = capture.cameras[frame_id].position
        partner = capture.cameras[by_code[code]].position
        distances[frame_id] = float(np.linalg.norm(own - partner)) / capture.scene.units_per_metre
    return distances


def distance_report(
    psnr_by_id: Mapping[str, float], distance_by_id: Mapping[str, float]
) -> dict[str, Any]:
    """PSNR against the distance to the code frame's camera, over the frames of `psnr_by_id`.

    Frames without a finite PSNR are left out. The nearest and the farthest thirds hold
    max(1, round(n / 3)) frames each (sorted by distance, ties by id order).

    Args:
      psnr_by_id: {id: PSNR (dB)}; distance_by_id: {id: metres}, holding every id of it.

    Returns:
      {"count": n, "pearson": Pearson correlation of distance and PSNR (NaN for fewer than 2
       frames or a constant), "third": frames per third, "near_third_psnr" /
       "far_third_psnr": mean PSNR of the nearest / farthest third, "near_minus_far": their
       difference (dB), "near_third_distance_m" / "far_third_distance_m": the thirds' mean
       distances, "pairs": [{"id", "distance_m", "psnr"}] sorted by distance}; the means are
       NaN when no frame has a finite PSNR.
    """
    missing = [i for i in psnr_by_id if i not in distance_by_id]
    if missing:
        raise ValueError(f"distance_report: no distance for frames {missing[:5]}")
    ids = [i for i in psnr_by_id if math.isfinite(float(psnr_by_id[i]))]
    ids.sort(key=lambda i: float(distance_by_id[i]))
    distance = np.array([float(distance_by_id[i]) for i in ids])
    psnr = np.array([float(psnr_by_id[i]) for i in ids])
    n = len(ids)
    third = max(1, round(n / 3))
    mean = lambda v: float(v.mean()) if v.size else math.nan
    pearson = math.nan
    if n >= 2 and distance.std() > 0 and psnr.std() > 0:
        d, p = distance - distance.mean(), psnr - psnr.mean()
        pearson = float((d * p).sum() / math.sqrt((d * d).sum() * (p * p).sum()))
    near, far = slice(0, third), slice(max(n - third, 0), n)
    return {
        "count": n,
        "pearson": pearson,
        "third": min(third, n),
        "near_third_psnr": mean(psnr[near]),
        "far_third_psnr": mean(psnr[far]),
        "near_minus_far": mean(psnr[near]) - mean(psnr[far]),
        "near_third_distance_m": mean(distance[near]),
        "far_third_distance_m": mean(distance[far]),
        "pairs": [
            {"id": i, "distance_m": float(d), "psnr": float(p)}
            for i, d, p in zip(ids, distance, psnr, strict=True)
        ],
    }


# ------------------------------------------------------------------------------------------
# Visualisations and the expression-disentanglement figures (used by eval.py and render.py).

ERROR_VMAX = 0.25  # mean absolute colour error mapped to the top of the error colormap


def colormap(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """(H, W) values in [0, 1] (clipped; NaN -> 0) -> (H, W, 3) float RGB of a matplotlib map."""
    import matplotlib

    values = np.nan_to_num(np.clip(np.asarray(values, np.float64), 0.0, 1.0))
    return matplotlib.colormaps[name](values)[..., :3].astype(np.float32)


def error_map(pred: np.ndarray, target: np.ndarray, vmax: float = ERROR_VMAX) -> np.ndarray:
    """Heat-map of the per-pixel mean absolute error: pred, target (H, W, 3) -> (H, W, 3).

    The scale is fixed (0 -> black, `vmax` and above -> white-yellow), so maps of different
    frames and experiments compare directly.
    """
    error = np.abs(np.asarray(pred, np.float32) - np.asarray(target, np.float32)).mean(axis=-1)
    return colormap(error / vmax, "inferno")


def depth_map(depth: np.ndarray, acc: np.ndarray | None = None) -> np.ndarray:
    """Colormapped (turbo) depth (H, W) -> (H, W, 3), normalised per image.

    The depth range is the 1st to 99th percentile over pixels with acc > 0.5 (all pixels when
    there are none or `acc` is None); near is blue, far is red.
    """
    depth = np.asarray(depth, np.float64)
    pixels = depth if acc is None or not np.any(acc > 0.5) else depth[np.asarray(acc) > 0.5]
    low, high = np.percentile(pixels, [1, 99])
    return colormap((depth - low) / max(high - low, 1e-9), "turbo")


def dilate(mask: np.ndarray, pixels: int = 1) -> np.ndarray:
    """Binary dilation of an (H, W) bool mask by `pixels` with a 3x3 square (8-neighbours)."""
    import scipy.ndimage

    mask = np.asarray(mask, bool)
    if pixels <= 0:
        return mask
    return scipy.ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=pixels)


def disentanglement(
    rgb_a: np.ndarray, rgb_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray
) -> dict[str, float]:
    """How much a change of expression changes a render, outside and inside the face.

    Two renders of one camera with two expressions (DESIGN.md 2.6): the region is the union
    of the two FLAME silhouettes dilated by 1 px. With the silhouette spatial prior the
    change outside should be ~0.

    Args:
      rgb_a, rgb_b: (H, W, 3) renders; mask_a, mask_b: bool (H, W) their silhouettes.

    Returns:
      {"disent_outside": mean |rgb_a - rgb_b| over pixels (and channels) outside the region,
       "disent_inside": the same inside it}; NaN for an empty region.
    """
    region = dilate(np.logical_or(mask_a, mask_b), 1)
    change = np.abs(np.asarray(rgb_a, np.float64) - np.asarray(rgb_b, np.float64)).mean(-1)
    mean = lambda where: float(change[where].mean()) if np.any(where) else float("nan")
    return {"disent_outside": mean(~region), "disent_inside": mean(region)}


def disentanglement_figure(
    rgb_a: np.ndarray, rgb_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray
) -> np.ndarray:
    """(H, 3W, 3) image: render A | render B | their change (error_map) with the region's edge.

    The edge of the dilated silhouette union (the boundary of the "inside" region of
    `disentanglement`) is drawn in cyan on the change map.
    """
    import scipy.ndimage

    region = dilate(np.logical_or(mask_a, mask_b), 1)
    change = error_map(rgb_a, rgb_b)
    edge = region & ~scipy.ndimage.binary_erosion(region, np.ones((3, 3), bool))
    change[edge] = (0.0, 1.0, 1.0)
    return np.concatenate([np.clip(rgb_a, 0, 1), np.clip(rgb_b, 0, 1), change], axis=1)
