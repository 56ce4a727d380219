# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering a list of views with a trained model, and writing the frames out.

`render_views` renders every `View` (sharded over all devices, deterministic) with the code
frame's warp and appearance codes, building the FLAME-guide grids from the views' own
parameters when the model reads them. `write_outputs` writes what `python -m
flamenerf.render` leaves in its output folder (`render_to_folder` does both):

    DIR/frames/00000.png, 00001.png, ...   one PNG per frame
    DIR/video.mp4                          (an animated DIR/video.gif when no ffmpeg works)
    DIR/render.json                        what each frame shows, and which videos were written

and, when asked (`render --depth`, `--silhouette`), the same frames as other pictures beside
them (`EXTRA_STREAMS`):

    DIR/depth/00000.png, ...       DIR/depth.mp4       depth, turbo colormap, one scale for
                                                       every frame (`figures.depth_bounds`)
    DIR/silhouette/00000.png, ...  DIR/silhouette.mp4  the render with the silhouette of the
                                                       FLAME mesh rendered over it (the
                                                       spatial prior's bit,
                                                       `figures.silhouette_overlay`)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flamenerf.errors import UserError
from flamenerf.evaluation import figures
from flamenerf.io import paths
from flamenerf.io.media import VideoResult, write_png, write_video
from flamenerf.views.view import View, view_rays

if TYPE_CHECKING:  # annotations only: views do not import the training machinery
    from flamenerf.training import experiment

DEFAULT_FPS = 30.0  # frames per second of the videos written
# Other pictures of the rendered frames, each written on request as DIR/NAME/NNNNN.png and
# DIR/NAME.mp4 (older ones are removed by every render into the folder).
EXTRA_STREAMS = ("depth", "silhouette")


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
    grids = exp.grids_for([unique[k] for k in distinct], show_progress)
    outputs = []
    for view in tqdm(views, desc="rendering", disable=not show_progress):
        frame = distinct[id(view.flame)] if grids is not None else None
        batch = view_rays(exp, view, code_frame, frame)
        shape = view.camera.image_shape
        outputs.append(exp.renderer.render_image(params, batch, alpha, shape, grids))
    return outputs


def _remove_stream(frames_dir: paths.AnyPath, video: paths.AnyPath) -> None:
    """Removes a stream's numbered frames (NNNNN.png; other files stay) and its video."""
    if frames_dir.is_dir():
        for stale in frames_dir.glob("*.png"):
            if re.fullmatch(r"\d{5}\.png", stale.name):
                stale.unlink()
    for old in (video.with_suffix(".mp4"), video.with_suffix(".gif")):
        old.unlink(missing_ok=True)


def _write_stream(
    frames_dir: paths.AnyPath, video: paths.AnyPath, images: list[np.ndarray], fps: float
) -> VideoResult:
    """Numbered PNGs in `frames_dir` and the video (mp4, else gif) of the images."""
    paths.make_folder(frames_dir)
    for index, image in enumerate(images):
        write_png(frames_dir / f"{index:05d}.png", image)
    try:
        return write_video(video, images, fps)
    except ValueError as error:  # e.g. a camera path whose cameras differ in image size
        raise UserError(str(error)) from None


def write_outputs(
    out_dir: str | Path,
    images: list[np.ndarray],
    info: dict[str, Any],
    fps: float = DEFAULT_FPS,
    extras: dict[str, list[np.ndarray]] | None = None,
) -> VideoResult:
    """DIR/frames/NNNNN.png, the video, the `extras` and render.json (older numbered frames
    and videos of every stream removed first).

    Args:
      out_dir: the folder: a local path or a URL (`flamenerf.io.paths.as_path`).
      images: (H, W, 3) frames, floats in [0, 1] or uint8.
      info: what render.json records; the video's file name and note are added, and
        "NAME_video" for each extra stream.
      extras: {NAME: frames} for names of `EXTRA_STREAMS`, as many frames as `images`:
        DIR/NAME/NNNNN.png and DIR/NAME.mp4 (or .gif).

    Returns:
      The RGB video written.

    Raises:
      UserError: the frames cannot make one video (e.g. a camera path whose
        cameras differ in image size).
    """
    extras = dict(extras or {})
    unknown = sorted(set(extras) - set(EXTRA_STREAMS))
    if unknown:
        raise ValueError(f"extras {unknown}: expected names among {list(EXTRA_STREAMS)}")
    out_dir = paths.as_path(out_dir)
    _remove_stream(out_dir / "frames", out_dir / "video.mp4")
    for name in EXTRA_STREAMS:
        _remove_stream(out_dir / name, out_dir / f"{name}.mp4")
    result = _write_stream(out_dir / "frames", out_dir / "video.mp4", images, fps)
    info = dict(info, video=result.path.name, video_note=result.note)
    for name in EXTRA_STREAMS:
        if name in extras:
            written = _write_stream(out_dir / name, out_dir / f"{name}.mp4", extras[name], fps)
            info[f"{name}_video"] = written.path.name
    (out_dir / "render.json").write_text(json.dumps(info, indent=2) + "\n")
    return result


def extra_frames(
    outputs: list[dict[str, np.ndarray]],
    views: list[View],
    depth: bool = False,
    silhouette: bool = False,
) -> dict[str, list[np.ndarray]]:
    """The extra streams of rendered views (`write_outputs`' `extras`).

    Args:
      outputs: `render_views` of `views`.
      depth: "depth": every render's depth colormapped with one range for all of them.
      silhouette: "silhouette": every render with its view's FLAME silhouette over it.
    """
    extras = {}
    if depth:
        depths, accs = [o["depth"] for o in outputs], [o["acc"] for o in outputs]
        bounds = figures.depth_bounds(depths, accs)
        extras["depth"] = [
            figures.depth_map(d, a, bounds) for d, a in zip(depths, accs, strict=True)
        ]
    if silhouette:
        extras["silhouette"] = [
            figures.silhouette_overlay(o["rgb"], v.inside)
            for o, v in zip(outputs, views, strict=True)
        ]
    return extras


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
    depth: bool = False,
    silhouette: bool = False,
) -> VideoResult | None:
    """Renders the views (`render_views`, on every process) and writes them to `out_dir`
    (`write_outputs`, on process 0 only).

    Args:
      info: what render.json records (e.g. the command and checkpoint); "code_frame" and
        "frames" (each view's label) are added after it unless it holds them.
      depth, silhouette: also write the depth and the silhouette-overlay streams
        (`extra_frames`).

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
    extras = extra_frames(outputs, views, depth, silhouette)
    return write_outputs(out_dir, [o["rgb"] for o in outputs], info, fps, extras)
