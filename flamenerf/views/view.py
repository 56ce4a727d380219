# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""One frame to render (`View`): a camera and the FLAME parameters rendered, with what the
model needs of those parameters, and the rays of a view
(docs/architecture.md#rendering-with-other-parameters).

A view holds the camera (in the capture's normalised frame and image scale), the
conditioning vector of the parameters' expression and jaw, the silhouette of the FLAME mesh
posed with the parameters as that camera sees it (the spatial prior's bit of every ray) and
the parameters themselves (the FLAME-guide grids are built from them). Every view is
rendered with the warp and appearance codes of one capture frame, the "code frame"
(`view_rays`).

Building views of camera paths and head sweeps is `flamenerf.views.paths`; of other
expressions and driving sequences `flamenerf.views.expressions`; rendering and writing them
`flamenerf.views.output`. The checks here raise `UserError` naming the
command-line flag that the value came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flamenerf.datasets import rays
from flamenerf.errors import UserError
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.views import reanimation

if TYPE_CHECKING:  # annotations only: views do not import the training machinery
    from flamenerf.training import experiment


@dataclasses.dataclass
class View:
    """One frame to render: a camera and the FLAME parameters rendered
    (docs/architecture.md#rendering-with-other-parameters)."""

    camera: Camera  # normalised frame, at the capture's scale
    condition: np.ndarray  # float32 (C,) conditioning vector of the parameters
    inside: np.ndarray  # bool (H, W) silhouette of the mesh posed with the parameters
    flame: flame.FlameParams  # the parameters (subject identity and head pose, driven face)
    label: dict[str, Any]  # provenance written to render.json


def check_frame(exp: experiment.Experiment, frame_id: str, flag: str) -> str:
    """`frame_id`, checked to be a frame of the experiment's capture.

    Raises:
      UserError: naming `flag`, the capture's dataset.json and example ids.
    """
    capture = exp.capture
    if frame_id not in capture.frames:
        examples = ", ".join(capture.train_ids[:3] + capture.val_ids[:1])
        raise UserError(
            f"{flag} {frame_id}: no such frame in {capture.root / 'dataset.json'} "
            f"(ids look like {examples})"
        )
    return frame_id


def check_head_motion(exp: experiment.Experiment, flag: str) -> None:
    """UserError naming `flag` unless the model can render another head pose.

    That needs the FLAME guide's rigid part (`GuideConfig.enabled` and `undo_rigid`): it
    carries the head's ball back to rest, so the canonical head follows the pose. Without it
    the rendered head stays where the code frame had it and only the silhouette would move.
    """
    cfg = exp.guide_config
    if not (cfg.enabled and cfg.undo_rigid):
        raise UserError(
            f"{flag}: this experiment cannot move the head (GuideConfig.enabled = "
            f"{cfg.enabled}, GuideConfig.undo_rigid = {cfg.undo_rigid}; expected both True, "
            f"see {exp.base_folder / 'config.gin'}): only its silhouette would follow the pose"
        )


def camera_views(
    exp: experiment.Experiment,
    camera: Camera,
    params: Sequence[flame.FlameParams],
    labels: Sequence[dict[str, Any]],
    show_progress: bool = False,
) -> list[View]:
    """Views of one camera, one per FLAME parameter set rendered.

    Each view's condition comes from the parameters' expression and jaw
    (`Subject.condition`) and its silhouette from the mesh posed with them (one batched FLAME
    pass, `Subject.pose`, then one rasterisation a view).

    Args:
      params: N parameter sets (subject identity and head pose, driven face).
      labels: N provenance dicts written to render.json.
      show_progress: a progress bar over the silhouettes.
    """
    from tqdm.auto import tqdm

    capture = exp.capture
    subject = capture.subject
    vertices = subject.pose(params).astype(np.float32)
    views = []
    items = zip(params, vertices, labels, strict=True)
    for driven, verts, label in tqdm(
        items, total=len(labels), desc="silhouettes", disable=not show_progress, leave=False
    ):
        inside = reanimation.silhouette(capture.flame_model, verts, camera)
        condition = subject.condition(driven, exp.expression_config.use_jaw)
        views.append(View(camera, condition, inside, driven, label))
    return views


def view_rays(
    exp: experiment.Experiment, view: View, code_frame: str, frame: int | None = None
) -> rays.RayBatch:
    """All rays of a view, with the code frame's warp and appearance codes.

    Args:
      frame: the rays' frame index (into the FLAME-guide grids rendered with); default the
        code frame's index in the capture.

    Returns:
      A RayBatch of H * W rays in row-major pixel order.
    """
    capture = exp.capture
    info = capture.frames[code_frame]
    return rays.camera_rays(
        view.camera,
        frame=capture.ids.index(code_frame) if frame is None else frame,
        warp_id=info.warp_id,
        appearance_id=info.appearance_id,
        condition=view.condition,
        inside=view.inside,
    )
