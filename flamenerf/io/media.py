# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Writing rendered frames as PNGs and as a video.

Videos are H.264 mp4 files written by mediapy, which runs an ffmpeg binary: the system's
`ffmpeg` when there is one on the PATH, else the binary shipped in the imageio-ffmpeg wheel.
When neither works, `write_video` falls back to an animated GIF (Pillow) next to the requested
path and says so in its returned `VideoResult`.

Paths may be URLs (`flamenerf.io.paths`): a PNG is encoded in memory and uploaded; ffmpeg
writes a video into a local temporary file, which is then uploaded (`paths.local_file`).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from flamenerf.io import paths


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(..., C) floats in [0, 1] (clipped) or uint8 -> uint8, rounding to nearest."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Writes an (H, W), (H, W, 1) or (H, W, 3) image (floats in [0, 1] or uint8) as a PNG
    (at a local path or a URL; a local folder is made if needed)."""
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    path = paths.as_path(path)
    paths.make_folder(path.parent)
    if paths.is_local(path):
        Image.fromarray(image).save(path)
        return
    data = io.BytesIO()
    Image.fromarray(image).save(data, format="PNG")
    path.write_bytes(data.getvalue())


def ffmpeg_path() -> str | None:
    """The ffmpeg binary mediapy will use (registering imageio-ffmpeg's when needed), or None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        import mediapy

        found = imageio_ffmpeg.get_ffmpeg_exe()
        mediapy.set_ffmpeg(found)
        return found
    except (ImportError, RuntimeError, OSError):
        return None


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What `write_video` wrote: the file, and why it is not an mp4 when it is not."""

    path: paths.AnyPath  # the file written (video.mp4, or the fallback video.gif)
    note: str = ""  # empty for an mp4; otherwise the reason for the fallback


def _even(frames: np.ndarray) -> np.ndarray:
    """Pads (N, H, W, 3) frames by repeating the last row/column to even H and W (yuv420p)."""
    _, height, width, _ = frames.shape
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if height % 2 or width % 2 else frames


def write_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """An animated GIF of (H, W, 3) frames at `fps` (looping); returns the path."""
    images = [Image.fromarray(to_uint8(f)) for f in frames]
    duration = max(int(round(1000.0 / fps)), 20)  # ms per frame; browsers clamp below 20
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=duration, loop=0, disposal=1
    )
    return Path(path)


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: float = 30.0) -> VideoResult:
    """Writes frames as an H.264 mp4 at `path`, or an animated GIF beside it without ffmpeg.

    Args:
      path: the mp4 file to write (its folder is created); a URL: written to a local
        temporary file first, then uploaded (the GIF too).
      frames: (H, W, 3) images, floats in [0, 1] or uint8, all the same size. Odd sizes are
        padded by one repeated row/column (yuv420p, which every player reads, needs even sizes).
      fps: frames per second.

    Returns:
      VideoResult naming the file written; its `note` explains a fallback to `.gif`.

    Raises:
      ValueError: no frames, frames of different sizes, or fps <= 0.
    """
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    if not fps > 0:
        raise ValueError(f"{path}: fps must be > 0, found {fps}")
    shapes = {np.shape(f) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"{path}: frames of different shapes {sorted(shapes)}")
    if paths.is_remote(path):  # ffmpeg writes local files: write one, then upload it
        with paths.local_file(path) as local:
            result = write_video(local, frames, fps)
        return VideoResult(paths.as_path(path).parent / result.path.name, result.note)
    path = paths.as_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    video = np.stack([to_uint8(f) for f in frames])
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"{path}: expected (H, W, 3) frames, found {video.shape[1:]}")
    binary = ffmpeg_path()
    if binary is None:
        note = "no ffmpeg found (install ffmpeg or imageio-ffmpeg)"
    else:
        import mediapy

        try:
            mediapy.write_video(path, _even(video), fps=fps)
            return VideoResult(path)
        except (RuntimeError, OSError, ValueError) as error:
            last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            note = f"ffmpeg ({binary}) failed: {last}"
            path.unlink(missing_ok=True)
    gif = write_gif(path.with_suffix(".gif"), list(video), fps)
    return VideoResult(gif, f"{note}; wrote an animated GIF instead")
