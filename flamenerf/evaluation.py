# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering full images in device-sharded chunks, and the per-frame metrics.

`Renderer` compiles the model's deterministic forward pass over the device mesh once; each
chunk of rays is split along the mesh's data axis (every process builds the same global rays
and contributes the slices its devices hold, so this runs unchanged on a pod slice) and the
result is gathered to every process.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from flamenerf import metrics
from flamenerf.datasets.rays import RayBatch, pad_to_multiple, split_chunks
from flamenerf.model import FlameNerf
from flamenerf.training import batch_sharding, replicated

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

        def render(params: Any, rays: dict[str, jax.Array], alpha: jax.Array) -> dict:
            out = model.apply({"params": params}, rays, alpha, False)["fine"]
            return {k: out[k] for k in RENDER_KEYS}

        self._render = jax.jit(
            render,
            in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
            out_shardings=replicated(mesh),
        )

    def _place(self, rays: RayBatch) -> dict[str, jax.Array]:
        sharding = batch_sharding(self.mesh)
        return {
            name: jax.make_array_from_callback(value.shape, sharding, lambda idx, v=value: v[idx])
            for name, value in rays._asdict().items()
        }

    def render(self, params: Any, rays: RayBatch, alpha: float) -> dict[str, np.ndarray]:
        """Renders any number of rays: {"rgb": (N, 3), "depth": (N,), "acc": (N,)}."""
        padded, n = pad_to_multiple(rays, self.chunk)
        parts = [
            jax.device_get(self._render(params, self._place(chunk), np.float32(alpha)))
            for chunk in split_chunks(padded, self.chunk)
        ]
        return {k: np.concatenate([p[k] for p in parts])[:n] for k in RENDER_KEYS}

    def render_image(
        self, params: Any, rays: RayBatch, alpha: float, shape: tuple[int, int]
    ) -> dict[str, np.ndarray]:
        """Renders H*W row-major rays into images: rgb (H, W, 3), depth and acc (H, W)."""
        out = self.render(params, rays, alpha)
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
