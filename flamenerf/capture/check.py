# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The capture validator plus pictures of the fit: contact sheet, landmark errors, frames to drop.

    python -m flamenerf.capture check CAPTURE [--flame_model P] [--landmark_embedding F]
        [--out PNG] [--max_error_px X] [--mad_k K]

1. Loads the capture exactly as training does (`flamenerf.datasets.capture.load_capture`);
   an invalid capture prints one line per problem and exits 1.
2. Projects every frame's model landmarks (the FLAME model's landmark embedding, or
   --landmark_embedding) with its camera and compares them with the landmarks in
   CAPTURE/landmarks/ID.json (written by `fit`): the mean distance in pixels at 1x.
3. Frames to drop: those whose landmark file says no face was found, and those whose error
   is above min(robust, absolute), where robust = max(median + K * 1.4826 * MAD,
   2 * median, 0.5% of the image diagonal) over the frames and absolute = --max_error_px
   (default 2% of the image diagonal).
4. Writes CAPTURE/check.json (per-frame errors, the threshold, the frames to drop) and a
   contact sheet (default CAPTURE/check.png): frames with the FLAME mesh's silhouette outlined
   in yellow, the projected model landmarks in green and the detected ones as red crosses;
   the frames to drop first, then frames spread evenly in time.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from flamenerf.capture import io, landmarks
from flamenerf.capture.io import StepError
from flamenerf.datasets.capture import Capture, CaptureError, load_capture
from flamenerf.datasets.validate import summary
from flamenerf.errors import EXIT_CHECK_FAILED
from flamenerf.geometry import flame, rasterize
from flamenerf.geometry.camera import Camera
from flamenerf.io.paths import local_path_argument

MAD_K = 5.0  # robust threshold: median + MAD_K * 1.4826 * MAD
RELATIVE_FLOOR = 0.005  # the robust threshold is at least this fraction of the image diagonal
ABSOLUTE_FRACTION = 0.02  # default --max_error_px as a fraction of the image diagonal
TILE = 192  # longest side of a contact-sheet tile, pixels
COLUMNS, ROWS = 6, 4  # contact-sheet grid (at most COLUMNS * ROWS frames)
OUTLINE, MODEL, DETECTED = (255, 230, 0), (40, 220, 60), (235, 30, 30)


# --------------------------------------------------------------------------------------------
# Errors and the frames to drop.


def model_landmarks_px(capture: Capture, model: flame.FlameModel, frame_id: str) -> np.ndarray:
    """(L, 2) the frame's model landmarks projected by its camera, pixels at the capture's
    scale (the capture's vertices and cameras share the normalised frame)."""
    points = flame.barycentric_points(
        capture.vertices(frame_id), model.faces, model.lmk_faces_idx, model.lmk_bary_coords
    )
    return capture.cameras[frame_id].project(np.asarray(points))


def read_detections(
    capture: Capture, layout: landmarks.LandmarkLayout
) -> dict[str, np.ndarray | None]:
    """{id: (L, 2) landmark pixels or None (no face)} for frames with CAPTURE/landmarks/ID.json."""
    found = {}
    for frame_id in capture.ids:
        path = capture.root / "landmarks" / f"{frame_id}.json"
        if path.is_file():
            detection = landmarks.detection_from_dict(io.read_json(path), str(path))
            found[frame_id] = landmarks.model_points(detection, layout, str(path))
    return found


def drop_threshold(
    errors: np.ndarray, diagonal: float, max_error_px: float | None, mad_k: float = MAD_K
) -> float:
    """The error (pixels) above which a frame is dropped; errors: (N,) per-frame means."""
    median = float(np.median(errors))
    mad = float(np.median(np.abs(errors - median)))
    robust = max(median + mad_k * 1.4826 * mad, 2.0 * median, RELATIVE_FLOOR * diagonal)
    absolute = ABSOLUTE_FRACTION * diagonal if max_error_px is None else max_error_px
    return min(robust, absolute)


def frame_checks(
    model_px: dict[str, np.ndarray],
    detected: dict[str, np.ndarray | None],
    diagonal: float,
    max_error_px: float | None,
    mad_k: float = MAD_K,
) -> tuple[dict[str, dict[str, Any]], float | None]:
    """Per-frame status and mean landmark error, and the drop threshold (None: no errors).

    Args:
      model_px: {id: (L, 2)} projected model landmarks of every frame.
      detected: {id: (L, 2) or None} landmarks of the frames that have a landmark file.
      diagonal: image diagonal in pixels; max_error_px: the absolute threshold or None;
      mad_k: the robust threshold's K.

    Returns:
      {id: {"status": "ok" | "drop" | "no face" | "no landmarks", "error_px": float | None}}
      and the threshold.
    """
    errors = {
        i: float(np.linalg.norm(model_px[i] - points, axis=-1).mean())
        for i, points in detected.items()
        if points is not None
    }
    threshold = None
    if errors:
        values = np.array(list(errors.values()))
        threshold = drop_threshold(values, diagonal, max_error_px, mad_k)
    checks = {}
    for frame_id in model_px:
        if frame_id not in detected:
            checks[frame_id] = {"status": "no landmarks", "error_px": None}
        elif frame_id not in errors:
            checks[frame_id] = {"status": "no face", "error_px": None}
        else:
            error = errors[frame_id]
            status = "drop" if error > threshold else "ok"
            checks[frame_id] = {"status": status, "error_px": error}
    return checks, threshold


# --------------------------------------------------------------------------------------------
# The contact sheet.


def tile_image(
    image: np.ndarray,
    camera: Camera,
    vertices: np.ndarray,
    faces: np.ndarray,
    model_px: np.ndarray | None,
    detected_px: np.ndarray | None,
) -> Image.Image:
    """One contact-sheet tile: the frame resized to TILE pixels (longest side), the mesh's
    silhouette outlined and the landmarks drawn.

    Args:
      image: uint8 (H, W, 3) frame; camera: its camera (vertices' frame, image size W x H);
      vertices: (V, 3), faces: (F, 3) the FLAME mesh; model_px, detected_px: (L, 2) pixels
      at the frame's size, or None.
    """
    zoom = TILE / max(camera.image_size)
    view = camera.scale(1.0 / zoom)
    resample = Image.Resampling.BOX if zoom < 1 else Image.Resampling.NEAREST
    tile = np.asarray(Image.fromarray(image).resize(view.image_size, resample)).copy()
    tile[rasterize.outline(rasterize.silhouette(vertices, faces, view))] = OUTLINE
    picture = Image.fromarray(tile)
    draw = ImageDraw.Draw(picture)
    for u, v in [] if model_px is None else model_px * zoom:
        draw.ellipse([u - 1.5, v - 1.5, u + 1.5, v + 1.5], fill=MODEL)
    for u, v in [] if detected_px is None else detected_px * zoom:
        draw.line([u - 2, v - 2, u + 2, v + 2], fill=DETECTED)
        draw.line([u - 2, v + 2, u + 2, v - 2], fill=DETECTED)
    return picture


def sheet_frames(ids: Sequence[str], drop: Sequence[str], count: int) -> list[str]:
    """Up to `count` frames: those to drop first, then others spread evenly; in id order."""
    chosen = list(drop[:count])
    others = [i for i in ids if i not in chosen]
    room = count - len(chosen)
    if others and room > 0:
        picks = np.unique(np.round(np.linspace(0, len(others) - 1, min(room, len(others)))))
        chosen += [others[int(k)] for k in picks]
    return sorted(chosen)


def contact_sheet(tiles: Sequence[tuple[Image.Image, str, bool]], title: str) -> Image.Image:
    """A grid of (tile, label, flagged) with a title line; flagged labels are red."""
    pad, label_h, title_h = 6, 14, 22
    width = max(t.width for t, _, _ in tiles)
    height = max(t.height for t, _, _ in tiles)
    columns = min(COLUMNS, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    title_w = math.ceil(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title)) + 2 * pad
    sheet = Image.new(
        "RGB",
        (
            max(pad + columns * (width + pad), title_w),
            title_h + rows * (height + label_h + pad) + pad,
        ),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 5), title, fill=(0, 0, 0))
    for n, (tile, label, flagged) in enumerate(tiles):
        x = pad + (n % columns) * (width + pad)
        y = title_h + (n // columns) * (height + label_h + pad)
        sheet.paste(tile, (x, y))
        draw.text((x, y + height + 1), label, fill=DETECTED if flagged else (0, 0, 0))
    return sheet


# --------------------------------------------------------------------------------------------
# The step.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", type=local_path_argument, help="the capture folder")
    parser.add_argument(
        "--flame_model",
        type=local_path_argument,
        default=None,
        help="FLAME model overriding scene.json's",
    )
    parser.add_argument(
        "--landmark_embedding",
        type=local_path_argument,
        default=None,
        help="landmark embedding overriding the model's (as for fit)",
    )
    parser.add_argument(
        "--out",
        type=local_path_argument,
        default=None,
        help="contact sheet PNG (default CAPTURE/check.png)",
    )
    parser.add_argument(
        "--max_error_px",
        type=float,
        default=None,
        help="drop frames whose mean landmark error exceeds this (default: 2%% of the image "
        "diagonal)",
    )
    parser.add_argument(
        "--mad_k", type=float, default=MAD_K, help="robust threshold: median + K * 1.4826 * MAD"
    )


def _landmark_model(
    capture: Capture, embedding: Path | None
) -> tuple[flame.FlameModel, landmarks.LandmarkLayout | None]:
    """The capture's model with `embedding` if given, and its layout (None: no landmarks)."""
    model = capture.flame_model
    if embedding is not None:
        try:
            model = flame.with_landmark_embedding(model, embedding)
        except (FileNotFoundError, ValueError) as error:
            raise StepError(str(error)) from None
    if not model.has_landmarks:
        return model, None
    return model, landmarks.model_layout(model, embedding or capture.scene.flame_model)


def run(args: argparse.Namespace) -> int:
    root = Path(args.capture)
    out = root / "check.png" if args.out is None else Path(args.out)
    io.check_output_inside(root, out)
    try:
        capture = load_capture(root, 1, args.flame_model)
    except CaptureError as error:
        print(f"{root}: the capture is invalid:", file=sys.stderr)
        for line in error.problems:
            print(line, file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(summary(capture))
    model, layout = _landmark_model(capture, args.landmark_embedding)
    ids = sorted(capture.ids)
    model_px = {} if layout is None else {i: model_landmarks_px(capture, model, i) for i in ids}
    detected = {} if layout is None else read_detections(capture, layout)
    diagonal = float(np.median([math.hypot(*capture.image_size(i)) for i in ids]))
    checks, threshold = frame_checks(model_px, detected, diagonal, args.max_error_px, args.mad_k)
    drop = [i for i in ids if checks.get(i, {}).get("status") in ("drop", "no face")]

    faces = np.asarray(capture.flame_model.faces)
    tiles = []
    for frame_id in sheet_frames(ids, drop, COLUMNS * ROWS):
        check = checks.get(frame_id, {"status": "", "error_px": None})
        error = "" if check["error_px"] is None else f"  {check['error_px']:.2f} px"
        flag = f"  {check['status']}" if frame_id in drop else ""
        label = f"{frame_id}{error}{flag}"
        picture = tile_image(
            capture.image(frame_id),
            capture.cameras[frame_id],
            capture.vertices(frame_id),
            faces,
            model_px.get(frame_id),
            detected.get(frame_id),
        )
        tiles.append((picture, label, frame_id in drop))
    title = (
        f"{root.name}: {len(ids)} frames, {len(drop)} to drop; FLAME silhouette yellow, "
        "model landmarks green, detected red"
    )
    io.write_bytes_atomic(out, _png(contact_sheet(tiles, title)))

    errors = [c["error_px"] for c in checks.values() if c["error_px"] is not None]
    report = {
        "valid": True,
        "summary": summary(capture),
        "landmarks": "none" if layout is None else layout.name,
        "median_px": float(np.median(errors)) if errors else None,
        "threshold_px": threshold,
        "drop": drop,
        "contact_sheet": str(out),
        "frames": checks,
    }
    io.write_json(root / "check.json", report)
    print(_report_text(ids, checks, threshold, layout is None))
    print(f"{root}: wrote {out} and check.json; {len(drop)} frame(s) to drop: {', '.join(drop)}")
    return 0


def _png(picture: Image.Image) -> bytes:
    buffer = BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _report_text(
    ids: Sequence[str], checks: dict[str, dict[str, Any]], threshold: float | None, none: bool
) -> str:
    """The per-frame error table: every frame when there are few, else the flagged ones."""
    if none:
        return "no landmark embedding in the FLAME model: landmark errors skipped"
    if threshold is None:
        return "no CAPTURE/landmarks/ (run fit): landmark errors skipped"
    shown = [i for i in ids if len(ids) <= COLUMNS * ROWS or checks[i]["status"] != "ok"]
    lines = [f"{'frame':>12}  {'error px':>8}  status"]
    for frame_id in shown:
        check = checks[frame_id]
        error = "-" if check["error_px"] is None else f"{check['error_px']:.2f}"
        lines.append(f"{frame_id:>12}  {error:>8}  {check['status']}")
    errors = [c["error_px"] for c in checks.values() if c["error_px"] is not None]
    lines.append(
        f"landmark error: median {np.median(errors):.2f} px over {len(errors)} frames; "
        f"drop threshold {threshold:.2f} px"
    )
    return "\n".join(lines)
