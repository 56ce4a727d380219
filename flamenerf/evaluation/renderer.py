# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering full images in device-sharded chunks.

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

from flamenerf.datasets.rays import RayBatch, pad_to_multiple, split_chunks
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

        def render(params: Any, rays: RayBatch, alpha: jax.Array, grids: Any) -> dict:
            # The coarse level only places the fine samples here: its colour is never computed.
            out = model.apply({"params": params}, rays, alpha, False, grids, coarse_rgb=False)
            out = out["fine"]
            return {k: out[k] for k in RENDER_KEYS}

        rep = replicated(mesh)
        self._render = jax.jit(
            render,
            in_shardings=(rep, batch_sharding(mesh), rep, rep),
            out_shardings=rep,
        )

    def _place(self, rays: RayBatch) -> RayBatch:
        sharding = batch_sharding(self.mesh)
        return RayBatch(
            *(
                jax.make_array_from_callback(value.shape, sharding, lambda idx, v=value: v[idx])
                for value in rays
            )
        )

    def render(
        self, params: Any, rays: RayBatch, alpha: float, grids: Any = None
    ) -> dict[str, np.ndarray]:
        """Renders any number of rays: {"rgb": (N, 3), "depth": (N,), "acc": (N,)}.

        `grids` are the FLAME-guide grids indexed by `rays.frame` (when the model uses them).
        """
        padded, n = pad_to_multiple(rays, self.chunk)
        # Rays in a fixed shuffled order: every block of a chunk then holds as many samples in
        # the learned warp's region as the frame does on average (a block of a few image rows
        # across the face holds many more), so the warp runs on those alone more often
        # (`WarpConfig.coarse_capacity`, nerf/compaction.py). Rays are independent: the
        # order changes nothing else.
        order = np.random.default_rng(0).permutation(padded.num_rays)
        shuffled = RayBatch(*(np.asarray(field)[order] for field in padded))
        parts = [
            jax.device_get(self._render(params, self._place(chunk), np.float32(alpha), grids))
            for chunk in split_chunks(shuffled, self.chunk)
        ]
        out = {}
        for k in RENDER_KEYS:
            values = np.concatenate([p[k] for p in parts])
            out[k] = np.empty_like(values)
            out[k][order] = values
            out[k] = out[k][:n]
        return out

    def render_image(
        self, params: Any, rays: RayBatch, alpha: float, shape: tuple[int, int], grids: Any = None
    ) -> dict[str, np.ndarray]:
        """Renders H*W row-major rays into images: rgb (H, W, 3), depth and acc (H, W)."""
        out = self.render(params, rays, alpha, grids)
        return {k: v.reshape(shape + v.shape[1:]) for k, v in out.items()}
