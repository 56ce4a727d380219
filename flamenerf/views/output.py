# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering a list of views with a trained model, and writing the frames out.

`render_views` renders every `View` (sharded over all devices, deterministic) with the code
frame's warp and appearance codes, building the FLAME-guide grids from the views' own
parameters when the model reads them. `write_outputs` writes what `python -m
flamenerf.render` leaves in its output folder (`render_to_folder` does both):

    DIR/frames/00000.png, 00001.png, ...   one PNG per frame
    DIR/video.mp4                          (an animated DIR/video.gif when no ffmpeg works)
    DIR/render.json                        what each frame shows, and which video was written
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.io.media import VideoResult, write_png, write_video
from flamenerf.training import experiment
from flamenerf.views.view import View, view_rays

DEFAULT_FPS = 30.0  # frames per second of the videos written


def render_views(
    exp: experiment.Experiment,
    params: Any,
    alpha: float,
    views: list[View],
    code_frame: str,
    show_progress: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Renders every view: a list of {"rgb" (H, W, 3), "depth" (H, W), "acc" (H, W)}.

    When the model reads FLAME-guide grids, they are built from the views' parameters (one
    grid per distinct parameter set).

    Args:
      params: the model parameters (a restored TrainState's `params`).
      alpha: the warp's annealing alpha (`exp.warp_alpha(step)`).
      code_frame: the capture frame whose warp and appearance codes every view uses.
    """
    from tqdm.auto import tqdm

    distinct: dict[int, int] = {}
    for view in views:
        distinct.setdefault(id(view.flame), len(distinct))
    unique = {id(v.flame): v.flame for v in views}
    grids = exp.grids_for([unique[k] for k in distinct])
    outputs = []
    for view in tqdm(views, desc="rendering", disable=not show_progress):
        frame = distinct[id(view.flame)] if grids is not None else None
        batch = view_rays(exp, view, code_frame, frame)
        shape = view.camera.image_shape
        outputs.append(exp.renderer.render_image(params, batch, alpha, shape, grids))
    return outputs


def write_outputs(
    out_dir: Path, images: list[np.ndarray], info: dict[str, Any], fps: float = DEFAULT_FPS
) -> VideoResult:
    """DIR/frames/NNNNN.png (older numbered frames removed), the video and render.json.

    Args:
      images: (H, W, 3) frames, floats in [0, 1] or uint8.
      info: what render.json records; the video's file name and note are added.

    Raises:
      experiment.UserError: the frames cannot make one video (e.g. a camera path whose
        cameras differ in image size).
    """
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for stale in frames_dir.glob("*.png"):
        if re.fullmatch(r"\d{5}\.png", stale.name):
            stale.unlink()
    for index, image in enumerate(images):
        write_png(frames_dir / f"{index:05d}.png", image)
    for old in ("video.mp4", "video.gif"):
        (out_dir / old).unlink(missing_ok=True)
    try:
        result = write_video(out_dir / "video.mp4", images, fps)
    except ValueError as error:  # e.g. a camera path whose cameras differ in image size
        raise experiment.UserError(str(error)) from None
    info = dict(info, video=result.path.name, video_note=result.note)
    (out_dir / "render.json").write_text(json.dumps(info, indent=2) + "\n")
    return result


def render_to_folder(
    exp: experiment.Experiment,
    params: Any,
    alpha: float,
    views: list[View],
    code_frame: str,
    out_dir: str | Path,
    info: dict[str, Any] | None = None,
    fps: float = DEFAULT_FPS,
    show_progress: bool = False,
) -> VideoResult | None:
    """Renders the views (`render_views`, on every process) and writes them to `out_dir`
    (`write_outputs`, on process 0 only).

    Args:
      info: what render.json records (e.g. the command and checkpoint); "code_frame" and
        "frames" (each view's label) are added after it unless it holds them.

    Returns:
      The video written (process 0), None on the other processes.
    """
    import jax

    outputs = render_views(exp, params, alpha, views, code_frame, show_progress)
    if jax.process_index() != 0:
        return None
    info = dict(info or {})
    info.setdefault("code_frame", code_frame)
    info.setdefault("frames", [v.label for v in views])
    return write_outputs(Path(out_dir), [o["rgb"] for o in outputs], info, fps)
