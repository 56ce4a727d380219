# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering a frame again with another frame's expression (the disentanglement figures).

The frame's camera is rendered with its own expression and jaw, and with those of another
frame (the "driver"), both on the frame's identity and head pose and each with the silhouette
(and guide grids) of the mesh posed with the parameters rendered
(docs/architecture.md#rendering-with-other-parameters). `metrics.disentanglement` measures the
change, `figures.disentanglement_figure` draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flamenerf.datasets import rays
from flamenerf.views import reanimation


def driver_frame(ids: Sequence[str], index: int, train_ids: Sequence[str]) -> str:
    """The frame whose expression drives evaluated frame `ids[index]`: the next evaluated
    frame, cyclically; the first training frame when only one frame is evaluated."""
    return ids[(index + 1) % len(ids)] if len(ids) > 1 else train_ids[0]


def disentanglement_pair(
    exp: Any,
    params: Any,
    alpha: float,
    frame_id: str,
    driver_id: str,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two renders of frame `frame_id`'s camera and codes: its own expression and jaw, and
    `driver_id`'s, each on the frame's identity and head pose with the silhouette (and guide
    grids) of the mesh posed with the parameters rendered
    (docs/architecture.md#rendering-with-other-parameters).

    Args:
      exp: the `flamenerf.training.experiment.Experiment` (its capture, renderer and
        `grids_for`); params: the model parameters; alpha: the warp's annealing alpha.
      reference: (rgb (H, W, 3), silhouette bool (H, W)) of a render of the frame with its own
        parameters, reused when its silhouette is the rasterised one (and the model reads no
        guide grids).

    Returns:
      rgb_a (H, W, 3), mask_a (H, W) for the own expression; rgb_b, mask_b for the driver's.
    """
    capture = exp.capture
    subject = capture.subject
    own = capture.flame_params[frame_id]
    pairs = [
        subject.expression_and_jaw(own),
        subject.expression_and_jaw(capture.flame_params[driver_id]),
    ]
    driven = [reanimation.with_expression(own, e, j) for e, j in pairs]
    vertices = subject.pose(driven).astype(np.float32)
    camera = capture.cameras[frame_id]
    masks = [reanimation.silhouette(capture.flame_model, v, camera) for v in vertices]
    grids = exp.grids_for(driven)
    info = capture.frames[frame_id]
    renders = []
    for k, (rendered, mask) in enumerate(zip(driven, masks, strict=True)):
        if k == 0 and reference is not None and grids is None:
            if np.array_equal(reference[1], mask):
                renders.append(reference[0])
                continue
        batch = rays.camera_rays(
            camera,
            frame=k if grids is not None else capture.ids.index(frame_id),
            warp_id=info.warp_id,
            appearance_id=info.appearance_id,
            condition=subject.condition(rendered, exp.expression_config.use_jaw),
            inside=mask,
        )
        out = exp.renderer.render_image(params, batch, alpha, camera.image_shape, grids)
        renders.append(out["rgb"])
    return renders[0], masks[0], renders[1], masks[1]
