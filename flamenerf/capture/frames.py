# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Video -> rgb/ frames, dataset.json and metadata.json: the sharpest frame of each window.

    python -m flamenerf.capture frames VIDEO --out CAPTURE [--max_frames 150] [--val_every 10]

The video (anything ffmpeg decodes; mediapy runs the system's ffmpeg or the imageio-ffmpeg
binary) is decoded twice, streaming, so it never has to fit in memory: the first pass scores
every frame's sharpness, the variance of its Laplacian (as in Nerfies' capture notebook: motion
blur and defocus lower it), the second writes the chosen frames. The video's N frames are split
into `min(max_frames, N)` consecutive windows of equal length (+-1) and the sharpest frame of
each window is kept (the first one on a tie).

Frame ids are the frame's index in the video, zero-padded to 6 digits (more for longer videos):
"000012" is the video's 13th frame. Every `val_every`-th kept frame (the `val_every`-th, the
`2 val_every`-th, ...) is a validation frame; 0 means none.

Writes, all inside CAPTURE:
  rgb/1x/ID.png               the kept frames, 8-bit RGB
  rgb/2x/, rgb/4x/            box-averaged downsamples, when the size divides by 2 or 4
  dataset.json, metadata.json the train/validation split (latent codes in time order)
  frames.png                  a contact sheet of the kept frames (validation frames in blue)

The step owns rgb/: PNGs there that are not kept frames (left by an earlier run with other
arguments) are removed. Rerunning with the same arguments gives the same files; rerun
`cameras` (and the later steps) after changing the frames.
"""

from __future__ import annotations

import argparse
import io as bytes_io
from collections.abc import Iterator, Sequence
from pathlib import Path

import mediapy
import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from flamenerf.capture import io
from flamenerf.capture.io import StepError
from flamenerf.geometry import rasterize
from flamenerf.io.media import ffmpeg_path
from flamenerf.io.paths import local_path_argument

SCALES = (1, 2, 4)  # rgb/{s}x folders written (2x, 4x only when the size divides)
MIN_ID_DIGITS = 6
SHEET_TILE = 160  # contact sheet: longest side of a thumbnail, pixels
SHEET_COLUMNS = 8
TRAIN_COLOUR, VAL_COLOUR = (255, 255, 255), (40, 90, 255)  # contact sheet tile borders


# --------------------------------------------------------------------------------------------
# Pure functions.


def sharpness(image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the luma of an (H, W, 3) uint8 image.

    Luma is 0.299 R + 0.587 G + 0.114 B in [0, 255]; the Laplacian is taken on interior pixels
    (the kernel of OpenCV's `cv2.Laplacian` with ksize 1, which Nerfies uses).
    """
    luma = np.asarray(image, dtype=np.float32)[..., :3] @ np.array(
        [0.299, 0.587, 0.114], dtype=np.float32
    )
    laplacian = (
        luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4.0 * luma[1:-1, 1:-1]
    )
    return float(laplacian.var(dtype=np.float64))


def select_sharpest(scores: np.ndarray, max_frames: int) -> np.ndarray:
    """Indices of the sharpest frame of each window: scores (N,) -> (min(max_frames, N),).

    The N frames are split into consecutive windows whose lengths differ by at most one; the
    result is increasing, and the first maximum of a window wins a tie.
    """
    windows = np.array_split(np.arange(len(scores)), min(max_frames, len(scores)))
    return np.array([w[int(np.argmax(scores[w]))] for w in windows], dtype=np.int64)


def frame_ids(indices: np.ndarray, num_video_frames: int) -> list[str]:
    """Source frame indices (K,) -> ids zero-padded to max(6, digits of the last index)."""
    width = max(MIN_ID_DIGITS, len(str(num_video_frames - 1)))
    return [f"{int(i):0{width}d}" for i in indices]


def split_ids(ids: Sequence[str], val_every: int) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids): kept frame k (0-based) is validation when (k + 1) % val_every == 0."""
    is_val = [val_every > 0 and (k + 1) % val_every == 0 for k in range(len(ids))]
    train = [i for i, v in zip(ids, is_val, strict=True) if not v]
    val = [i for i, v in zip(ids, is_val, strict=True) if v]
    return train, val


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float pixel values in [0, 255] -> rounded uint8."""
    return np.round(image).astype(np.uint8)


def scales_for(size: tuple[int, int]) -> list[int]:
    """The SCALES whose factor divides both the width and the height of `size` (W, H)."""
    return [s for s in SCALES if size[0] % s == 0 and size[1] % s == 0]


# --------------------------------------------------------------------------------------------
# Reading the video and writing images.


def decode(video: Path, description: str) -> Iterator[np.ndarray]:
    """Yields the frames of `video` as (H, W, 3) uint8 arrays, with a progress bar.

    Raises StepError when there is no ffmpeg, the file cannot be decoded, or it has no frames.
    """
    if ffmpeg_path() is None:
        raise StepError(f"{video}: no ffmpeg to decode it (install ffmpeg or imageio-ffmpeg)")
    count = 0
    try:
        with mediapy.VideoReader(video) as reader:
            for image in tqdm(reader, total=reader.num_images, desc=description, unit="frame"):
                count += 1
                yield image
    except (RuntimeError, OSError, ValueError) as error:
        last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise StepError(f"{video}: cannot be decoded as a video (ffmpeg: {last[:200]})") from None
    if count == 0:
        raise StepError(f"{video}: the video has no frames")


def png_bytes(image: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image encoded as PNG (deterministic bytes)."""
    buffer = bytes_io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_frame(capture: Path, frame_id: str, image: np.ndarray) -> None:
    """Writes rgb/{s}x/ID.png, atomically, for every scale in `scales_for` the image's size."""
    height, width = image.shape[:2]
    for s in scales_for((width, height)):
        scaled = image if s == 1 else to_uint8(rasterize.downsample(image, s))
        io.write_bytes_atomic(capture / "rgb" / f"{s}x" / f"{frame_id}.png", png_bytes(scaled))


def remove_stale_frames(capture: Path, keep: set[str]) -> int:
    """Deletes PNGs of rgb/*x/ whose names are not in `keep` (file names); returns how many."""
    stale = [
        path
        for folder in sorted((capture / "rgb").glob("*x"))
        for path in sorted(folder.glob("*.png"))
        if str(path.relative_to(capture / "rgb")) not in keep
    ]
    for path in stale:
        path.unlink()
    return len(stale)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> box-resized so that the longest side is SHEET_TILE pixels."""
    height, width = image.shape[:2]
    factor = SHEET_TILE / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def contact_sheet(
    thumbnails: Sequence[np.ndarray],
    ids: Sequence[str],
    scores: Sequence[float],
    val: set[str],
    size: tuple[int, int],
) -> Image.Image:
    """A grid of (h, w, 3) uint8 thumbnails of frames of `size` (W, H), labelled 'ID sharpness'.

    Validation frames are outlined in blue.
    """
    th, tw = thumbnails[0].shape[:2]
    label_h, pad, title_h = 14, 6, 22
    columns = min(SHEET_COLUMNS, len(thumbnails))
    rows = -(-len(thumbnails) // columns)
    sheet = Image.new(
        "RGB",
        (pad + columns * (tw + pad), title_h + rows * (th + label_h + pad) + pad),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (pad, 5),
        f"{len(thumbnails)} kept frames ({len(val)} validation, outlined in blue), "
        f"{size[0]}x{size[1]}; label: id and sharpness",
        fill=(0, 0, 0),
    )
    for n, (image, frame_id, score) in enumerate(zip(thumbnails, ids, scores, strict=True)):
        x = pad + (n % columns) * (tw + pad)
        y = title_h + (n // columns) * (th + label_h + pad)
        colour = VAL_COLOUR if frame_id in val else TRAIN_COLOUR
        draw.rectangle((x - 3, y - 3, x + tw + 2, y + th + 2), fill=colour)
        sheet.paste(Image.fromarray(image), (x, y))
        draw.text((x, y + th + 2), f"{frame_id}  {score:.0f}", fill=(0, 0, 0))
    return sheet


# --------------------------------------------------------------------------------------------
# The step.


def check_arguments(video: Path, out: Path, max_frames: int, val_every: int) -> None:
    """Raises StepError for a missing video, an --out that is a file, or bad numbers."""
    if not video.exists():
        raise StepError(f"{video}: video file not found")
    if not video.is_file():
        raise StepError(f"{video}: expected a video file, found a folder")
    if out.exists() and not out.is_dir():
        raise StepError(f"{out}: --out must be a capture folder, found a file")
    if max_frames < 1:
        raise StepError(f"--max_frames {max_frames}: expected an integer >= 1")
    if val_every < 0 or val_every == 1:
        raise StepError(
            f"--val_every {val_every}: expected 0 (no validation frames) or an integer >= 2"
        )


def extract_frames(
    video: str | Path, out: str | Path, max_frames: int = 150, val_every: int = 10
) -> tuple[list[str], list[str]]:
    """Runs the step (see the module docstring); returns (train_ids, val_ids)."""
    video, out = Path(video), Path(out)
    check_arguments(video, out, max_frames, val_every)
    scores = np.array([sharpness(image) for image in decode(video, "sharpness")])
    chosen = select_sharpest(scores, max_frames)
    ids = frame_ids(chosen, len(scores))
    out.mkdir(parents=True, exist_ok=True)
    io.check_output_inside(out, out / "rgb")
    thumbnails: list[np.ndarray] = []  # the kept frames themselves could be too many to hold
    wanted = {int(index): frame_id for index, frame_id in zip(chosen, ids, strict=True)}
    for index, image in enumerate(decode(video, "writing frames")):
        if index in wanted:
            write_frame(out, wanted[index], image)
            thumbnails.append(thumbnail(image))
            size = (image.shape[1], image.shape[0])
            if len(thumbnails) == len(ids):
                break
    if len(thumbnails) != len(ids):
        raise StepError(f"{video}: the second decoding pass ended early ({len(thumbnails)} frames)")
    names = {f"{s}x/{i}.png" for s in scales_for(size) for i in ids}
    removed = remove_stale_frames(out, names)
    train, val = split_ids(ids, val_every)
    io.write_split(out, train, val)
    sheet = contact_sheet(thumbnails, ids, list(scores[chosen]), set(val), size)
    io.write_bytes_atomic(out / "frames.png", png_bytes(np.asarray(sheet)))
    print(
        f"{out}: kept {len(ids)} of {len(scores)} frames ({len(train)} train, {len(val)} "
        f"validation), {size[0]}x{size[1]}, scales {scales_for(size)}"
        + (f"; removed {removed} stale PNGs from rgb/" if removed else "")
        + f"; contact sheet {out / 'frames.png'}"
    )
    return train, val


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "video", type=local_path_argument, help="the input video (any format ffmpeg reads)"
    )
    parser.add_argument(
        "--out", type=local_path_argument, required=True, help="the capture folder to write"
    )
    parser.add_argument(
        "--max_frames", type=int, default=150, help="number of windows = frames kept (150)"
    )
    parser.add_argument(
        "--val_every",
        type=int,
        default=10,
        help="every K-th kept frame is a validation frame; 0 = none (10)",
    )


def run(args: argparse.Namespace) -> int:
    extract_frames(args.video, args.out, args.max_frames, args.val_every)
    return 0
