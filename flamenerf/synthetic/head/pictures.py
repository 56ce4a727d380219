# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Pictures: a shaded render of the head and a sheet of its expressions, for plots."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from flamenerf.synthetic.head.constants import NUM_EXPRESSION, NUM_SHAPE, VERSION
from flamenerf.synthetic.head.helpers import _normalize

_REGION_COLORS = np.array(
    [
        [0.87, 0.68, 0.57],  # skin
        [0.74, 0.38, 0.38],  # lips
        [0.30, 0.21, 0.14],  # brow
        [0.95, 0.94, 0.91],  # sclera
        [0.32, 0.48, 0.62],  # iris
        [0.04, 0.04, 0.05],  # pupil
        [0.30, 0.20, 0.12],  # hair
        [0.84, 0.65, 0.55],  # neck
        [0.28, 0.07, 0.08],  # mouth interior
        [0.80, 0.60, 0.52],  # eyelid
        [0.12, 0.08, 0.07],  # eye socket
        [0.35, 0.18, 0.15],  # nostril
        [0.85, 0.64, 0.55],  # ear
    ]
)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], n)
    return _normalize(normals + 1e-12)


def render_image(
    vertices: np.ndarray,
    faces: np.ndarray,
    region: np.ndarray,
    azimuth_deg: float = 0.0,
    elevation_deg: float = 0.0,
    size: int = 256,
    target: Sequence[float] = (0.0, -0.012, 0.0),
    field: float = 0.30,
) -> np.ndarray:
    """A shaded picture of the head (region colours, Lambert lighting), for plots.

    Args:
      vertices: (V, 3) posed vertices (metres).
      faces: (F, 3) triangles.
      region: (V,) region labels.
      azimuth_deg: camera azimuth about +y (0 = in front, 90 = the subject's left).
      elevation_deg: camera elevation (positive looks from above).
      size: image width and height in pixels.
      target: (3,) point at the image centre (metres).
      field: width of the view at the target's distance (metres).

    Returns:
      (size, size, 3) float image in [0, 1].
    """
    from flamenerf.geometry import camera as camera_lib
    from flamenerf.geometry import rasterize

    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    direction = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    target = np.asarray(target, dtype=np.float64)
    distance = 0.9
    cam = camera_lib.look_at(
        target + distance * direction,
        target,
        np.array([0.0, 1.0, 0.0]),
        focal_length=size * distance / field,
        image_size=(size, size),
    )
    fragments = rasterize.rasterize(vertices, faces, cam)
    normals = _normalize(rasterize.interpolate(fragments, _vertex_normals(vertices, faces)) + 1e-12)
    albedo = rasterize.interpolate(fragments, _REGION_COLORS[region])
    right = np.cross(direction, [0.0, 1.0, 0.0])
    right = right / max(np.linalg.norm(right), 1e-9)
    key = _normalize(direction + 0.55 * np.array([0.0, 1.0, 0.0]) - 0.45 * right)
    fill = _normalize(direction + 0.6 * right - 0.2 * np.array([0.0, 1.0, 0.0]))
    lambert = 0.62 * np.clip(normals @ key, 0.0, None) + 0.18 * np.clip(normals @ fill, 0.0, None)
    image = albedo * (0.28 + lambert[..., None])
    covered = fragments.face_index >= 0
    background = np.array([0.93, 0.94, 0.96])
    return np.clip(np.where(covered[..., None], image, background), 0.0, 1.0)


_PLOT_STATES = (
    ("neutral", {}),
    ("smile +1.5", {"expression": 0}),
    ("brow raise +1.5", {"expression": 1}),
    ("cheek puff +1.5", {"expression": 2}),
    ("lip pucker +1.5", {"expression": 3}),
    ("brow lowerer +1.5", {"expression": 4}),
    ("upper-lip raise +1.5", {"expression": 5}),
    ("jaw open 0.3 rad", {"jaw": 0.3}),
    ("eyes closed +1.0", {"expression": 6, "coefficient": 1.0}),
)


def _posed_vertices(arrays: dict[str, np.ndarray], states: Sequence[dict]) -> np.ndarray:
    """Vertices (len(states), V, 3) posed by `flamenerf.geometry.flame.forward`."""
    from flamenerf.geometry import flame

    model = flame.model_from_arrays(arrays, "procedural head")
    expression = np.zeros((len(states), NUM_EXPRESSION), np.float32)
    jaw = np.zeros((len(states), 3), np.float32)
    for i, state in enumerate(states):
        if "expression" in state:
            expression[i, state["expression"]] = state.get("coefficient", 1.5)
        jaw[i, 0] = state.get("jaw", 0.0)
    params = flame.FlameParams(expression=expression, jaw_pose=jaw)
    return np.asarray(flame.forward(model, params).vertices)


def plot_head(arrays: dict[str, np.ndarray], path: str | os.PathLike[str], size: int = 300) -> None:
    """Draws the head with its semantic expressions, jaw opening and closed eyes to `path`.

    Each state is shown from the front and from a three-quarter view (region colours,
    Lambert shading), posed through `flamenerf.geometry.flame.forward`.

    Args:
      arrays: the dict of `build_head` (or a loaded `.npz`).
      path: image file to write (any matplotlib format, e.g. `.png`).
      size: pixels per panel side.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    states = [state for _, state in _PLOT_STATES]
    vertices = _posed_vertices(arrays, states)
    faces, region = arrays["f"], arrays["region"]
    cols = 6
    rows = -(-2 * len(states) // cols)
    fig = Figure(figsize=(cols * 2.2, rows * 2.45), dpi=size / 2.2)
    FigureCanvasAgg(fig)
    for i, (title, _) in enumerate(_PLOT_STATES):
        for k, azimuth in enumerate((0.0, 35.0)):
            ax = fig.add_subplot(rows, cols, 2 * i + k + 1)
            image = render_image(
                vertices[i], faces, region, azimuth, 4.0, size, (0.0, 0.008, 0.0), 0.29
            )
            ax.imshow(image)
            ax.set_axis_off()
            ax.set_title(f"{title}" if k == 0 else "(3/4 view)", fontsize=9)
    fig.suptitle(
        f"flamenerf procedural FLAME-format head v{VERSION}: {len(arrays['v_template'])} "
        f"vertices, {len(faces)} faces, {NUM_SHAPE} shape + {NUM_EXPRESSION} expression bases",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
