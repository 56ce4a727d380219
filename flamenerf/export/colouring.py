# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Vertex colours of the carved mesh, from the canonical field as the cameras see it.

"camera" (the default): the colour the canonical field renders along the ray from the view
whose surface passes closest to the vertex (`best_views`), through the vertex to a little
beyond it, divided by its opacity: the NeRF's pixel colour there. "point": the radiance at the
vertex, seen from that view. Colours are float32 (V, 3) in [0, 1], sRGB-encoded as the field's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flamenerf.export.carving import View, free_depth
from flamenerf.export.field import CanonicalField

COLOURINGS = ("camera", "point")


def best_views(views: Sequence[View], points: np.ndarray) -> np.ndarray:
    """int (N,) for each point the view whose surface passes closest to it (among the views
    that see it; the first view when none does)."""
    free, seen = free_depth(views, points)
    return np.argmin(np.where(seen, np.abs(free), np.inf), axis=0)


def colour_vertices(
    field: CanonicalField,
    vertices: np.ndarray,
    views: Sequence[View],
    colouring: str,
    behind: float,
    samples: int = 64,
    show_progress: bool = False,
) -> np.ndarray:
    """(V, 3) float32 vertex colours in [0, 1] (the field's, sRGB-encoded).

    Args:
      field: the canonical field; vertices: (V, 3); views: the chosen cameras' views.
      colouring: "camera": the colour rendered along the ray from the vertex's best view
        (`best_views`) through it, from that view's near to `behind` beyond the vertex
        (`CanonicalField.render`, `samples` coarse and fine samples), divided by its opacity
        (the radiance at the vertex where the ray stays transparent): the NeRF's pixel colour
        without what lies farther behind (a wall seen past the edge of a head); "point": the
        radiance at the vertex seen from there.
      behind: that distance (model units).
    """
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    best = best_views(views, vertices)
    eyes = np.array([v.camera.position for v in views]).reshape(-1, 3)[best]
    offset = vertices - eyes
    distance = np.linalg.norm(offset, axis=-1)
    directions = offset / np.maximum(distance, 1e-9)[:, None]
    point_rgb, _ = field.evaluate(vertices, directions)
    if colouring == "point":
        return np.clip(point_rgb, 0.0, 1.0)
    near = np.array([v.near for v in views])[best]
    colours = np.array(point_rgb)
    # One render per distinct near: every view of a capture shares it.
    for start in np.unique(near):
        rows = np.flatnonzero(near == start)
        far = np.maximum(distance[rows] + behind, start * 1.001)
        rgb, acc = field.render(
            eyes[rows], directions[rows], start, far, samples, "vertex colours", show_progress
        )
        opaque = acc > 1e-3
        colours[rows] = np.where(
            opaque[:, None], rgb / np.maximum(acc, 1e-3)[:, None], point_rgb[rows]
        )
    return np.clip(colours, 0.0, 1.0).astype(np.float32)
