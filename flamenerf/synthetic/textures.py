# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Procedural solid textures (NumPy) for the synthetic captures.

Every texture is a pure function of a point's CANONICAL position (metres, the frame of the
template mesh: y up, the face looks along +z), so a texture sticks to a surface as it
deforms: the renderer interpolates the rest positions of a triangle's vertices with the
rasteriser's barycentrics and evaluates the texture there.

Noise: `gradient_noise` is 3D Perlin-style gradient noise on the integer lattice, with an
integer hash (no tables, no random state), so it is deterministic across processes and
platforms; `fbm` sums octaves of it. Frequencies below are in cycles per metre: a feature of
gradient noise at frequency f is about 1 / (2 f) across. The demo capture sees the head at
about 7 mm per pixel (64x64) and 3.5 mm per pixel (128x128), and the wall at about 2 cm per
pixel, so each texture carries detail at several scales around those sizes.

Materials (`MATERIALS`, the order of the renderer's material index): the 13 head regions
of `flamenerf.synthetic.head` (their label is their index here), then `EYEBALL` (the eyeball
spheres, whose pupil, iris and sclera are drawn per pixel from the angle about the eye's
axis, so they are crisp whatever the mesh resolution),
`SHIRT` (the torso) and `WALL` (the background).
Each material function maps points (N, 3) to linear RGB colours (N, 3) in [0, 1].

Expression appearance (`expression_appearance`, the synthetic generator's
`--expression_appearance`): terms that change the skin's and the mouth's colour with the
frame's expression coefficients and jaw opening, still functions of the canonical position, so
they are what no deformation of the mesh explains: horizontal forehead lines darken as
`brow_raise` rises; nasolabial folds (dark creases with a lit cheek bulge beside them) and
crow's feet deepen with `smile`; the cheeks flush (redder) with `cheek_puff`; and the open
mouth shows upper and lower teeth (light) and the tongue (dark red), of fixed size in metres
whatever the opening, where the plain mouth interior is a uniform dark red. Each term grows
with `activation` of its coefficient (0 below 0.15, 1 from 1.2 on).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flamenerf.synthetic import head

# Material indices: the head's region labels, then three more.
EYEBALL = 13
SHIRT = 14
WALL = 15
NUM_MATERIALS = 16

# Gradients of the lattice: the 12 edge midpoints of a cube, repeated to 16 (Perlin 2002).
_GRADIENTS = np.array(
    [
        [1, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0],
        [1, 0, 1], [-1, 0, 1], [1, 0, -1], [-1, 0, -1],
        [0, 1, 1], [0, -1, 1], [0, 1, -1], [0, -1, -1],
        [1, 1, 0], [-1, 1, 0], [0, -1, 1], [0, -1, -1],
    ],
    dtype=np.float64,
)  # fmt: skip

# Eyeball angles (radians from the eye's +z axis), as `flamenerf.synthetic.head` labels its
# vertices.
PUPIL_ANGLE = 0.215
IRIS_ANGLE = 0.53


# --------------------------------------------------------------------------------------------
# Noise.


_PRIMES = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F))


def _u32(a: np.ndarray) -> np.ndarray:
    return (a & 0xFFFFFFFF).astype(np.uint32)


def _seed_word(seed: int) -> np.uint32:
    return np.uint32((seed * 0x9E3779B9 + 0x85EBCA6B) & 0xFFFFFFFF)


def _finalize(h: np.ndarray) -> np.ndarray:
    """The murmur3 finaliser (uint32 in, uint32 out)."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h


def _hash(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """A well-mixed uint32 hash of integer lattice coordinates (int64 arrays) and a seed."""
    h = _u32(ix) * _PRIMES[0]
    h ^= _u32(iy) * _PRIMES[1]
    h ^= _u32(iz) * _PRIMES[2]
    return _finalize(h ^ _seed_word(seed))


def hash_unit(cells: np.ndarray, seed: int = 0) -> np.ndarray:
    """cells: (..., 3) integer lattice cells -> (...,) deterministic uniform numbers in [0, 1)."""
    cells = np.asarray(cells, dtype=np.int64)
    h = _hash(cells[..., 0], cells[..., 1], cells[..., 2], seed)
    return (h >> np.uint32(8)).astype(np.float64) / float(1 << 24)


def gradient_noise(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """3D gradient noise: points (..., 3) -> (...,) smooth values in about [-1, 1].

    Zero at lattice points, C2 (quintic fade), period-free; `seed` picks an independent field.
    """
    points = np.asarray(points, dtype=np.float64)
    base = np.floor(points)
    f = points - base
    i = base.astype(np.int64)
    u = f * f * f * (f * (f * 6.0 - 15.0) + 10.0)
    # Hash words of each axis at the cell's two corners: h = x-word ^ y-word ^ z-word ^ seed.
    words = [[_u32(i[..., a] + d) * _PRIMES[a] for d in (0, 1)] for a in range(3)]
    seed_word = _seed_word(seed)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    planes = []
    for dx in (0, 1):
        rows = []
        for dy in (0, 1):
            xy = words[0][dx] ^ words[1][dy] ^ seed_word
            ends = []
            for dz in (0, 1):
                g = _GRADIENTS[(_finalize(xy ^ words[2][dz]) & np.uint32(15)).astype(np.intp)]
                ends.append(g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy) + g[..., 2] * (fz - dz))
            rows.append(ends[0] + u[..., 2] * (ends[1] - ends[0]))
        planes.append(rows[0] + u[..., 1] * (rows[1] - rows[0]))
    return planes[0] + u[..., 0] * (planes[1] - planes[0])


def fbm(points: np.ndarray, octaves: int, seed: int = 0, gain: float = 0.5) -> np.ndarray:
    """Fractal sum of `octaves` gradient noises at frequencies 1, 2, 4, ... (normalised).

    points: (..., 3) -> (...,) values in about [-1, 1].
    """
    points = np.asarray(points, dtype=np.float64)
    total, norm, amplitude = 0.0, 0.0, 1.0
    for octave in range(octaves):
        total = total + amplitude * gradient_noise(points * 2.0**octave, seed + 101 * octave)
        norm += amplitude
        amplitude *= gain
    return total / norm


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((np.asarray(x) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-point blend of colours: a, b (N, 3) or (3,), t (N,)."""
    t = np.asarray(t)[..., None]
    return a * (1.0 - t) + b * t


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB: h, s, v (N,) in [0, 1] -> (N, 3)."""
    h6 = (np.asarray(h) % 1.0) * 6.0
    channel = lambda n: np.clip(np.abs((h6 + n) % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    rgb = np.stack([channel(0.0), channel(4.0), channel(2.0)], axis=-1)
    return np.asarray(v)[..., None] * (1.0 - np.asarray(s)[..., None] * (1.0 - rgb))


# --------------------------------------------------------------------------------------------
# Materials: points (N, 3) canonical metres -> colours (N, 3).

_SKIN = np.array([0.86, 0.64, 0.53])
_FRECKLE = np.array([0.58, 0.36, 0.25])
_HAIR_DARK = np.array([0.16, 0.10, 0.06])
_HAIR_LIGHT = np.array([0.52, 0.36, 0.20])
_HAIR_CENTER = np.array([0.0, 0.030, -0.020])  # hair strands run away from above this point


def skin(p: np.ndarray) -> np.ndarray:
    """Skin tone with blotchy low-frequency variation, mottling, freckles and pores."""
    tone = 1.0 + 0.07 * fbm(p * 8.0, 2, seed=11)
    color = _SKIN * tone[:, None]
    red = fbm(p * 14.0, 2, seed=12)
    color = color + np.array([0.06, -0.02, -0.02]) * red[:, None]
    color = color * (1.0 + 0.06 * fbm(p * 45.0, 2, seed=13))[:, None]
    # Freckles: spots about 5 mm across, denser where a slow field says so.
    density = 0.5 + 0.5 * gradient_noise(p * 18.0, seed=14)
    spots = smoothstep(gradient_noise(p * 110.0, seed=15), 0.45 - 0.2 * density, 0.6) * density
    color = _mix(color, _FRECKLE, 0.5 * spots)
    # Pores: a fine, faint grain.
    return color * (1.0 + 0.035 * gradient_noise(p * 650.0, seed=16))[:, None]


def neck(p: np.ndarray) -> np.ndarray:
    return skin(p) * np.array([0.97, 0.95, 0.95])


def ear(p: np.ndarray) -> np.ndarray:
    return skin(p) * np.array([1.0, 0.93, 0.91])


def eyelid(p: np.ndarray) -> np.ndarray:
    return skin(p) * np.array([0.93, 0.85, 0.84])


def lips(p: np.ndarray) -> np.ndarray:
    """Lip red with vertical creases and a slow variation."""
    creases = gradient_noise(p * np.array([700.0, 35.0, 700.0]), seed=21)
    base = np.array([0.70, 0.32, 0.32]) * (1.0 + 0.08 * fbm(p * 60.0, 2, seed=22))[:, None]
    return base * (1.0 + 0.13 * creases)[:, None]


def brow(p: np.ndarray) -> np.ndarray:
    """Brow hair: strands along x (slightly raised towards the temples), clumped."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    across = y - 0.25 * np.abs(x)  # strands slant up towards the temples
    q = np.stack([x * 60.0, across * 520.0, z * 300.0], axis=-1)
    strands = gradient_noise(q, seed=31)
    clumps = gradient_noise(q / 3.5, seed=32)
    t = np.clip(0.45 + 0.35 * strands + 0.3 * clumps, 0.0, 1.0)
    return _mix(np.array([0.10, 0.065, 0.045]), np.array([0.36, 0.25, 0.17]), t)


def hair(p: np.ndarray) -> np.ndarray:
    """Hair: strands radiating from the crown (anisotropic noise), clumps and highlights."""
    d = p - _HAIR_CENTER
    r = np.linalg.norm(d, axis=-1) + 1e-9
    polar = np.arccos(np.clip(d[:, 1] / r, -1.0, 1.0))  # 0 at the crown
    # Strand coordinates: the azimuth on a circle (across the strands, seamless) and the polar
    # angle (along them); noise stretched along the strands at three scales.
    azimuth = np.arctan2(d[:, 0], d[:, 2])
    circle = np.stack([np.cos(azimuth), np.sin(azimuth)], axis=-1)
    strand = lambda across, along, seed: gradient_noise(
        np.concatenate([circle * across, polar[:, None] * along], axis=-1), seed=seed
    )
    fine = strand(50.0, 6.0, 41)  # about 1.5 mm across the strands at the temples
    clumps = strand(14.0, 3.0, 42)
    locks = strand(5.0, 1.5, 43)
    t = np.clip(0.38 + 0.3 * fine + 0.35 * clumps + 0.3 * locks, 0.0, 1.0)
    color = _mix(_HAIR_DARK, _HAIR_LIGHT, t)
    # A soft sheen band across the top of the head.
    sheen = smoothstep(np.cos(polar * 2.2), 0.2, 1.0) * (0.5 + 0.5 * clumps)
    return color + 0.10 * sheen[:, None]


def sclera(p: np.ndarray) -> np.ndarray:
    """White of the eye with faint pink veins."""
    veins = 1.0 - smoothstep(np.abs(gradient_noise(p * 380.0, seed=51)), 0.0, 0.08)
    color = _mix(np.array([0.95, 0.93, 0.89]), np.array([0.86, 0.55, 0.55]), 0.5 * veins)
    return color * (1.0 - 0.04 * gradient_noise(p * 90.0, seed=52))[:, None]


def eyeball(p: np.ndarray) -> np.ndarray:
    """Pupil, iris (radial fibres, darker limbal ring, amber collarette) and sclera.

    The eye is the one on the side of p (x > 0: the left eye at `head.LEFT_EYE`); the angle
    from the eye's +z axis picks pupil (< PUPIL_ANGLE), iris (< IRIS_ANGLE) or sclera.
    """
    center = np.where(p[:, :1] > 0, head.LEFT_EYE, head.RIGHT_EYE)
    d = p - center
    r = np.linalg.norm(d, axis=-1) + 1e-12
    theta = np.arccos(np.clip(d[:, 2] / r, -1.0, 1.0))
    around = d[:, :2] / (np.linalg.norm(d[:, :2], axis=-1, keepdims=True) + 1e-12)
    radial = (theta - PUPIL_ANGLE) / (IRIS_ANGLE - PUPIL_ANGLE)  # 0 at the pupil, 1 at the rim
    q = np.concatenate([around * 9.0, radial[:, None] * 3.0], axis=-1)
    fibres = gradient_noise(q, seed=61) + 0.5 * gradient_noise(q * 2.0, seed=62)
    iris = _mix(
        np.array([0.62, 0.45, 0.20]), np.array([0.26, 0.46, 0.60]), smoothstep(radial, 0.1, 0.5)
    )
    iris = iris * (1.0 + 0.35 * fibres)[:, None]
    iris = iris * (1.0 - 0.6 * smoothstep(radial, 0.72, 1.0))[:, None]
    color = np.where((theta < IRIS_ANGLE)[:, None], iris, sclera(p))
    return np.where((theta < PUPIL_ANGLE)[:, None], np.array([0.025, 0.025, 0.03]), color)


def eye_socket(p: np.ndarray) -> np.ndarray:
    """The lid margin seen inside the eye opening: dark lashes."""
    return (
        np.array([0.08, 0.055, 0.045]) * (1.0 + 0.3 * gradient_noise(p * 400.0, seed=71))[:, None]
    )


def mouth_interior(p: np.ndarray) -> np.ndarray:
    """Dark red, blotchy towards black."""
    t = 0.5 + 0.5 * fbm(p * 220.0, 2, seed=81)
    return _mix(np.array([0.05, 0.01, 0.015]), np.array([0.30, 0.06, 0.07]), t)


def nostril(p: np.ndarray) -> np.ndarray:
    return np.array([0.30, 0.15, 0.12]) * (1.0 + 0.1 * gradient_noise(p * 200.0, seed=91))[:, None]


def shirt(p: np.ndarray) -> np.ndarray:
    """A plaid shirt: navy ground, red and white checks, weave grain and soft folds."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    u = x + 0.35 * z  # wrap the pattern a little round the sides
    band = lambda s, period, width: smoothstep(
        np.abs(((s / period) % 1.0) - 0.5) * period, 0.5 * width + 0.0015, 0.5 * width - 0.0015
    )
    red = np.maximum(band(u, 0.060, 0.022), band(y, 0.060, 0.022))
    white = np.maximum(band(u + 0.030, 0.060, 0.004), band(y + 0.030, 0.060, 0.004))
    color = _mix(np.array([0.12, 0.17, 0.36]), np.array([0.62, 0.14, 0.13]), 0.85 * red)
    color = _mix(color, np.array([0.90, 0.88, 0.82]), 0.8 * white)
    weave = gradient_noise(np.stack([u * 900.0, y * 900.0, z * 300.0], axis=-1), seed=101)
    folds = fbm(p * np.array([12.0, 30.0, 12.0]), 2, seed=102)
    return color * (1.0 + 0.06 * weave + 0.10 * folds)[:, None]


def wall(p: np.ndarray) -> np.ndarray:
    """Coloured tiles (16 cm) with grout lines, blobs and coloured noise at several scales."""
    x, y = p[:, 0], p[:, 1]
    tile = 0.16
    cells = np.stack([np.floor(x / tile), np.floor(y / tile), np.zeros_like(x)], -1)
    hue = hash_unit(cells, seed=111)
    sat = 0.30 + 0.35 * hash_unit(cells, seed=112)
    val = 0.55 + 0.35 * hash_unit(cells, seed=113)
    color = hsv_to_rgb(hue, sat, val)
    # Large soft blobs of another colour, then medium blobs, then fine coloured noise.
    blob_color = hsv_to_rgb(0.5 + 0.5 * gradient_noise(p * 0.8, seed=114), 0.5, 0.8)
    color = _mix(color, blob_color, 0.45 * smoothstep(fbm(p * 2.5, 2, seed=115), 0.0, 0.4))
    medium = smoothstep(gradient_noise(p * 14.0, seed=116), 0.15, 0.35)
    color = color * (1.0 - 0.35 * medium)[:, None]
    fine = np.stack([gradient_noise(p * 45.0, seed=117 + c) for c in range(3)], axis=-1)
    color = color * (1.0 + 0.18 * fine)
    # Grout between tiles, 8 mm wide.
    gx = np.abs(((x / tile) % 1.0) - 0.5) * tile
    gy = np.abs(((y / tile) % 1.0) - 0.5) * tile
    grout = smoothstep(np.maximum(gx, gy), 0.5 * tile - 0.0055, 0.5 * tile - 0.0035)
    return _mix(color, np.array([0.88, 0.87, 0.84]), grout)


MATERIALS: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    skin,  # SKIN
    lips,  # LIPS
    brow,  # BROW
    sclera,  # SCLERA (the skin deep inside the eye opening)
    eyeball,  # IRIS (only on eyeballs, which use EYEBALL)
    eyeball,  # PUPIL (likewise)
    hair,  # HAIR
    neck,  # NECK
    mouth_interior,  # MOUTH_INTERIOR
    eyelid,  # EYELID
    eye_socket,  # EYE_SOCKET
    nostril,  # NOSTRIL
    ear,  # EAR
    eyeball,  # EYEBALL
    shirt,  # SHIRT
    wall,  # WALL
)
assert len(MATERIALS) == NUM_MATERIALS


def shade_materials(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Blended albedo: points (N, 3) canonical, weights (N, NUM_MATERIALS) -> (N, 3) in [0, 1].

    Each material is evaluated only where its weight is non-zero.
    """
    color = np.zeros((len(points), 3))
    for m, material in enumerate(MATERIALS):
        where = np.flatnonzero(weights[:, m] > 1e-6)
        if where.size:
            color[where] += weights[where, m, None] * material(points[where])
    return np.clip(color, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Appearance that follows the expression.

_TEETH = np.array([0.93, 0.91, 0.83])
_TONGUE = np.array([0.42, 0.09, 0.11])
_FLUSH = np.array([1.05, 0.74, 0.76])  # colour factor of a fully flushed cheek
LIP_TRAVEL = 0.095  # metres the lower lip drops per radian of jaw opening (about)


def activation(coefficient: float) -> float:
    """How strongly an expression coefficient shows: 0 below 0.15, 1 from 1.2 (smoothstep)."""
    return float(smoothstep(coefficient, 0.15, 1.2))


def _coefficient(expression: np.ndarray, name: str) -> float:
    k = head.EXPRESSION_NAMES.index(name)
    return float(expression[k]) if k < len(expression) else 0.0


def forehead_lines(p: np.ndarray) -> np.ndarray:
    """Darkening (N,) in [0, 1] of four wavy horizontal forehead lines, 7 mm apart."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    v = y - 1.5 * x * x + 0.0011 * gradient_noise(p * np.array([45.0, 10.0, 45.0]), seed=201)
    phase = (v - 0.0665) / 0.0070
    d = np.abs(phase - np.round(phase)) * 0.0070  # metres to the nearest line
    crease = np.exp(-((d / 0.0011) ** 2))
    length = np.clip(0.75 + 0.6 * gradient_noise(p * np.array([70.0, 20.0, 70.0]), 202), 0, 1)
    window = smoothstep(np.abs(x), 0.050, 0.030) * smoothstep(y, 0.0605, 0.0645)
    window = window * smoothstep(y, 0.091, 0.086) * smoothstep(z, 0.035, 0.055)
    return crease * length * window


def smile_creases(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(darkening, highlight) (N,) of the nasolabial folds and the crow's feet."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    # Nasolabial folds: from beside the nose wings down to beside the mouth corners (where
    # `flamenerf.synthetic.head` carves its shallow grooves), with the cheek bulging beside them.
    fold_x = 0.020 + 0.35 * (-(y + 0.012)) + 0.0008 * gradient_noise(p * 80.0, seed=211)
    along = smoothstep(y, -0.064, -0.054) * smoothstep(y, -0.007, -0.015)
    along = along * smoothstep(z, 0.020, 0.040)
    fold = np.exp(-(((ax - fold_x) / 0.0015) ** 2)) * along
    bulge = np.exp(-(((ax - fold_x - 0.0055) / 0.0035) ** 2)) * along
    # Crow's feet: short lines fanning out from the outer eye corners.
    dx = ax - (head.LEFT_EYE[0] + 0.0150)
    dy = y - (head.LEFT_EYE[1] + 0.0005)
    r = np.hypot(dx, dy)
    angle = np.arctan2(dy, np.maximum(dx, 1e-9))
    phase = angle / 0.30
    across = np.abs(phase - np.round(phase)) * 0.30 * r  # metres to the nearest line
    fan = smoothstep(r, 0.0015, 0.004) * smoothstep(r, 0.016, 0.010)
    fan = fan * smoothstep(np.abs(angle), 0.95, 0.65) * (dx > 0) * smoothstep(z, -0.005, 0.015)
    feet = np.exp(-((across / 0.0007) ** 2)) * fan
    return np.maximum(fold, 0.8 * feet), bulge


def cheek_flush(p: np.ndarray) -> np.ndarray:
    """Flush weight (N,) in [0, 1] on the cheeks' apples."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    blob = np.exp(-0.5 * (((np.abs(x) - 0.043) / 0.016) ** 2 + ((y + 0.012) / 0.015) ** 2))
    return blob * smoothstep(z, 0.015, 0.045)


def mouth_inside(p: np.ndarray, jaw_weight: np.ndarray, jaw: float) -> tuple[np.ndarray, ...]:
    """Teeth and tongue in the mouth opening: (colour (N, 3), opacity (N,)).

    `jaw_weight` (N,) is the jaw's skinning weight of the lip band (0 at the upper lip's
    inner edge, 1 at the lower one's), so a point lies jaw_weight x LIP_TRAVEL x jaw below
    the upper lip and the rest above the lower one: the upper teeth show 8 mm below the
    upper lip, the lower teeth 4 mm above the lower lip and the tongue's dome above them,
    whatever the opening. Only the middle of the mouth (|x| < 2 cm) shows them; they fade in
    as the jaw opens from 0.015 to 0.08 rad.
    """
    x = p[:, 0]
    ax = np.abs(x)
    opening = LIP_TRAVEL * max(float(jaw), 0.0)
    below_upper = jaw_weight * opening
    above_lower = (1.0 - jaw_weight) * opening
    edge = 0.0080 * np.sqrt(np.clip(1.0 - (x / 0.022) ** 2, 0.0, 1.0))  # incisal edge
    upper = smoothstep(below_upper, edge + 0.0004, edge - 0.0004) * (ax < 0.020)
    lower = smoothstep(above_lower, 0.0044, 0.0036) * (ax < 0.016)
    dome = 0.0040 + 0.0085 * np.sqrt(np.clip(1.0 - (x / 0.017) ** 2, 0.0, 1.0))
    tongue = smoothstep(above_lower, dome + 0.0006, dome - 0.0006) * (1.0 - lower)
    # Gaps between the teeth (central incisors 8.5 mm wide, then 6.5 mm), darker sides.
    gaps = np.minimum.reduce([np.abs(ax - g) for g in (0.0, 0.0085, 0.0150)])
    teeth = _TEETH * (1.0 - 0.45 * np.exp(-((gaps / 0.0005) ** 2)))[:, None]
    teeth = teeth * (1.0 - 0.35 * smoothstep(ax, 0.008, 0.020))[:, None]
    teeth = teeth * (1.0 + 0.04 * gradient_noise(p * 300.0, seed=221))[:, None]
    tongue_colour = _TONGUE * (1.0 + 0.15 * fbm(p * 250.0, 2, seed=222))[:, None]
    colour = np.where((upper + lower > 0.0)[:, None], teeth, tongue_colour)
    opacity = np.clip(np.maximum(np.maximum(upper, lower), tongue), 0.0, 1.0)
    return colour, opacity * smoothstep(jaw, 0.015, 0.08)


def expression_appearance(
    points: np.ndarray,
    weights: np.ndarray,
    jaw_weight: np.ndarray,
    albedo: np.ndarray,
    expression: np.ndarray,
    jaw: float,
) -> np.ndarray:
    """The albedo of `shade_materials` with the expression's appearance (module docstring).

    Args:
      points: (N, 3) canonical positions; weights: (N, NUM_MATERIALS) material weights.
      jaw_weight: (N,) the jaw joint's skinning weight at each point.
      albedo: (N, 3) `shade_materials(points, weights)`.
      expression: (E,) the frame's expression coefficients (missing ones count as 0).
      jaw: the jaw opening (radians, rotation about x).

    Returns (N, 3) in [0, 1]. Only SKIN (lines, creases, flush) and MOUTH_INTERIOR (teeth,
    tongue) change, so nothing off the head does.
    """
    expression = np.asarray(expression, dtype=np.float64).ravel()
    color = np.array(albedo, dtype=np.float64)
    skin_w = weights[:, head.SKIN]
    on_skin = np.flatnonzero(skin_w > 1e-6)
    brow, smile = _coefficient(expression, "brow_raise"), _coefficient(expression, "smile")
    puff = _coefficient(expression, "cheek_puff")
    if on_skin.size:
        p, w = points[on_skin], skin_w[on_skin]
        factor = np.ones((len(on_skin), 3))
        if activation(brow) > 0.0:
            lines = forehead_lines(p)
            factor *= (1.0 - 0.62 * activation(brow) * lines)[:, None]
        if activation(smile) > 0.0:
            dark, bulge = smile_creases(p)
            factor *= (1.0 - 0.55 * activation(smile) * dark + 0.10 * activation(smile) * bulge)[
                :, None
            ]
        if activation(puff) > 0.0:
            flush = activation(puff) * cheek_flush(p)
            factor *= 1.0 + (_FLUSH - 1.0) * flush[:, None]
        color[on_skin] *= 1.0 + w[:, None] * (factor - 1.0)
    mouth_w = weights[:, head.MOUTH_INTERIOR]
    inside = np.flatnonzero(mouth_w > 1e-6)
    if inside.size and jaw > 0.0:
        p = points[inside]
        overlay, opacity = mouth_inside(p, jaw_weight[inside], jaw)
        change = opacity[:, None] * (overlay - mouth_interior(p))
        color[inside] += mouth_w[inside, None] * change
    return np.clip(color, 0.0, 1.0)
