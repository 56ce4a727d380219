# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Assembly: the skin and the two eyeballs in one mesh, and every vertex's region label."""

from __future__ import annotations

import numpy as np

from flamenerf.synthetic.head.constants import (
    _ALMOND_W,
    _MARGIN,
    _MOUTH_W,
    BROW,
    EAR,
    EYE_SOCKET,
    EYELID,
    HAIR,
    LEFT_EYE,
    LIPS,
    MOUTH_INTERIOR,
    NECK,
    NOSTRIL,
    RIGHT_EYE,
    SCLERA,
    SKIN,
)
from flamenerf.synthetic.head.eyes import _almond_margins, _almond_signed_distance
from flamenerf.synthetic.head.features import (
    _ear_weight,
    _hairline_y,
    _lower_lip_height,
    _mouth_seam_y,
    _nostril_weight,
    _on_brow,
    _upper_lip_height,
)
from flamenerf.synthetic.head.mesh import _eyeball, _hull_faces, _skin_directions
from flamenerf.synthetic.head.surface import _surface


def _neck_line_y(z: np.ndarray) -> np.ndarray:
    """Height below which the skin is labelled neck, as a function of depth z."""
    return np.interp(z, [-0.10, -0.03, 0.015, 0.10], [-0.050, -0.068, -0.100, -0.100])


def _skin_regions(surface: dict[str, np.ndarray], band_t: np.ndarray) -> np.ndarray:
    """Region label of every skin vertex (N,) int8."""
    base = surface["base"]
    x, y, z = base[:, 0], base[:, 1], base[:, 2]
    front = z > 0.02
    labels = np.full(len(base), SKIN, dtype=np.int8)
    labels[y < _neck_line_y(z)] = NECK
    labels[(y >= _hairline_y(base) - 1e-5) & (_ear_weight(base) < 0.5)] = HAIR
    labels[_ear_weight(base) > 0.5] = EAR
    labels[_on_brow(x, y) & front] = BROW
    q = y - _mouth_seam_y(x)
    lips = (q <= _upper_lip_height(x) + 2e-5) & (q >= -_lower_lip_height(x) - 2e-5)
    lips &= np.abs(x) < _MOUTH_W
    labels[lips & front] = LIPS
    labels[(_nostril_weight(x, y) > 0.35) & front] = NOSTRIL
    u, v = surface["eye_uv"][:, 0], surface["eye_uv"][:, 1]
    upper, _ = _almond_margins(u)
    labels[(surface["lid"] > 0.5) & (v > upper) & (np.abs(u) < _ALMOND_W) & front] = EYELID
    # Inside the opening: the row at the lid margin reads as lashes, deeper skin (hidden by
    # the eyeball unless the lids open wide) as the white of the eye.
    socket = (surface["open"] > 0.5) & front
    sd = _almond_signed_distance(surface["eye_uv"][socket])
    labels[socket] = np.where(sd > -2.5 * _MARGIN, EYE_SOCKET, SCLERA)
    on_band = ~np.isnan(band_t)
    labels[on_band] = LIPS
    labels[on_band & (np.abs(np.nan_to_num(band_t)) < 0.9)] = MOUTH_INTERIOR
    return labels


def _mesh() -> dict[str, np.ndarray]:
    """The neutral mesh: skin then the left and right eyeballs.

    Returns `vertices` (V, 3), `faces` (F, 3), `region` (V,), `eye_index` (V,) = 0 skin,
    1 left, 2 right eyeball; and for the S skin vertices (the first S): `base` (S, 3) base
    points, `band_t` (S,) lip-band row (NaN off the band), `lid`, `open` (S,) eye weights and
    `eye_uv` (S, 2) eye-local coordinates.
    """
    dirs, band_t = _skin_directions()
    faces = _hull_faces(dirs)
    surface = _surface(dirs)
    vertices = [surface["points"]]
    all_faces = [faces]
    regions = [_skin_regions(surface, band_t)]
    eye_index = [np.zeros(len(dirs), dtype=np.int8)]
    offset = len(dirs)
    for k, center in enumerate((LEFT_EYE, RIGHT_EYE)):
        v, f, labels = _eyeball(center)
        vertices.append(v)
        all_faces.append(f + offset)
        regions.append(labels)
        eye_index.append(np.full(len(v), k + 1, dtype=np.int8))
        offset += len(v)
    return {
        "vertices": np.concatenate(vertices),
        "faces": np.concatenate(all_faces),
        "region": np.concatenate(regions),
        "eye_index": np.concatenate(eye_index),
        "base": surface["base"],
        "band_t": band_t,
        "lid": surface["lid"],
        "open": surface["open"],
        "eye_uv": surface["eye_uv"],
    }
