# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Synthetic captures: the project's default dataset and the ground truth for expressions.

    python -m flamenerf.synthetic --out DIR [--size 64] [--train_frames 120] [--val 16]
        [--seed 0] [--head_motion [DEGREES]] [--num_expression 10] [--vrig N]
        [--normalisation head|room] [--expression_appearance] [--specular]
        [--head_joint root|neck] [--contact_sheet PNG]
        [--overwrite]

    generate(out, size=64, frames=120, val=16, seed=0, ...) -> out
    default_capture(**kwargs) -> $FLAMENERF_CACHE/captures/<key>  (generated once)

The defaults are the pinned demo capture (docs/architecture.md#the-demo-capture): 64x64 at 1x, 120
training and 16 validation frames, seed 0, static head. The output follows `docs/capture-format.md`
and is self-contained (the procedural head is written into it as `flame_model.npz`); the same
arguments give byte-identical files. Every option added later (`vrig`, a head motion's
magnitude, `normalisation`, `expression_appearance`, `specular`, `head_joint`) leaves the files
of the captures made without it unchanged, and out of their cache key.

Scene (metres; world = FLAME space, `flame.to_world` is the identity; y up, the face looks
along +z):
- the procedural head of `flamenerf.synthetic.head`, with an identity `shape` drawn from the seed
  (N(0, 0.7) on the 20 coefficients, clipped to [-1, 1.5]) and per-frame expression and jaw;
- a static torso: a closed superellipsoid (half axes 0.21 x 0.19 x 0.11, exponent 3)
  centred at (0, -0.31, -0.03), whose top (y = -0.12) swallows the neck stub, in a plaid
  shirt; it does not follow the expression or the head's motion;
- a wall: a 6 m x 6 m grid of quads at z = -1.0, coloured tiles and blobs;
- Lambert shading with ambient light 0.38 and a fixed directional light (0.62) from the
  front, upper left; no shadows, so nothing outside the head depends on the expression.
  With `specular` the head (skin, hair, eyes, lips) also gets a white Blinn-Phong highlight
  of that light (strength 0.25, exponent 24), which moves over the face as the camera moves:
  view-dependent colour, as real skin shows and a Lambertian scene never asks a model for.

Textures (`flamenerf.synthetic.textures`) are solid textures of each surface point's canonical
position (the rest vertex positions interpolated with the rasteriser's barycentrics), so they
stick to the skin as it deforms. Images are rendered by the z-buffer rasteriser at 4x the
size (2x above 128 px) and box-downsampled; `rgb/2x`, `rgb/4x` (and the matching masks) are
written when the size is divisible and leaves at least 8 pixels.
With `expression_appearance` the skin and the mouth also change colour with the frame's
expression, as no deformation of the mesh explains (`textures.expression_appearance`):
forehead lines with brow_raise, nasolabial folds and crow's feet with smile, flushed cheeks
with cheek_puff, teeth and tongue (of fixed size in metres) in the open mouth.
`expression_appearance_sheet` draws them (docs/synthetic_expression_appearance.png).

Timeline: `frames + val` time samples t in [0, 1]. Validation frames are evenly spread
held-out samples, so their cameras and expressions are not in training; each names the codes
of the nearest training frame in time. Ids are the zero-padded time index.
- Camera: a handheld phone at 0.56 +- 0.04 m from the point (0, -0.045, 0) (between chin and
  neck, so head and shoulders fit), yaw +-20 degrees, pitch +-8 degrees, roll +-2 degrees,
  each a normalised sum of low-frequency sinusoids, plus jitter (1.5 mm in position, 2 mm in
  the aim point, 0.4 degrees of roll); field of view 40 degrees, principal point at the
  centre, no distortion.
- Expression: the first `num_expression` coefficients, each a smooth random curve (sum of
  sinusoids around a random rest level, plus a few bursts) clipped to [-0.5, 1.5]; eyes_close
  (coefficient 6) stays near 0 and blinks to 1 (clipped to [-0.5, 1]). Jaw: 0..0.35 rad about
  x, smooth. Eye pose zero. With `head_motion`: global pose up to 3 degrees and translation up
  to 5 mm, smooth; `head_motion=DEGREES` (0..30) scales the same curves: nods, turns and
  tilts up to DEGREES (peaks 0.5, 0.83, 0.33 x DEGREES), translation up to
  max(1 mm x DEGREES, min(5 mm, 5 mm x DEGREES / 3)) (1 cm at 10 degrees, 2 cm at 20).
  The whole FLAME mesh turns about its root joint and shifts, the neck's base included, while
  the torso stays (the neck slides through the collar). With `head_joint="neck"` the same
  rotation curves turn the head through FLAME's neck joint instead (`neck_pose`, no global
  pose or translation): the neck's base stays with the torso, as a person's does, and the
  head still moves by centimetres about the neck.
- Vrig (`vrig=N`, Nerfies' second phone): N more validation frames at the times of N evenly
  spread training frames (so with their expression, jaw and head pose), seen by a second
  phone held like the first (same motion statistics) but moving independently (seed stream
  5): its views lie in the range the training views cover, while its camera at that time is
  anywhere from beside the training camera to about 40 cm away. Ids
  "vrig_" + the time index (e.g. "vrig_0012"), appended to val_ids; their metadata names the
  codes of the training frame of the same time, with camera_id 1.

scene.json, `normalisation="head"` (default): `center` (0, -0.02, -0.01) (the head's centre),
`scale` 3.5 (1 normalised unit = 0.286 m: the head lies within 0.5 units of the centre, head
and shoulders within about 1.1, the wall at z = -3.5). `normalisation="room"`: the same world,
cameras and images, but the center and scale a tool that knows nothing of the head would
choose (Nerfies' convention): the box around the frames' camera positions and the wall they
see, centred (about 0.2 m behind the head) with its diagonal scaled to 1 (scale about 0.3).
Either way `near` / `far` are computed from the cameras (80% of the nearest distance to the
head or torso, 105% of the farthest distance to the wall along an image corner's ray, for the
frames and the orbit path) and `bbox` is the normalised box around head and shoulders
(grown to hold the posed head when a large head motion takes it out).
`camera-paths/orbit`: 60 cameras swinging +-30 degrees of yaw at the mean distance.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from flamenerf import cli_args, errors, help_format, threads
from flamenerf.geometry import flame, rasterize
from flamenerf.geometry.camera import Camera, look_at, look_at_rotation
from flamenerf.geometry.subject import pose_flame
from flamenerf.io import paths
from flamenerf.synthetic import head, textures

GENERATOR_VERSION = f"1-head{head.VERSION}"  # bump when the output of the same arguments changes
VRIG_VERSION = 2  # bump when the second phone's cameras change (only captures with vrig > 0)

# Defaults: the demo capture (docs/architecture.md#the-demo-capture).
DEFAULTS: dict[str, Any] = {
    "size": 64,
    "frames": 120,
    "val": 16,
    "seed": 0,
    "head_motion": False,
    "num_expression": 10,
    "vrig": 0,
    "normalisation": "head",
    "expression_appearance": False,
    "specular": False,
    "head_joint": "root",
}
MIN_SIZE = 8
NORMALISATIONS = ("head", "room")
# What turns the head (with head motion): "root": the whole FLAME mesh turns about its root
# joint and shifts, the neck's base included, while the torso stays (the neck slides through
# the collar); "neck": FLAME's neck joint turns the head, no translation, and the neck's base
# stays with the torso, as a person's does.
HEAD_JOINTS = ("root", "neck")

# Scene (metres, world = FLAME space).
SCENE_CENTER = np.array([0.0, -0.02, -0.01])  # scene.json center: the head's centre
SCENE_SCALE = 3.5  # scene.json scale: 1 normalised unit = 1 / 3.5 = 0.286 m
BBOX_WORLD = np.array([[-0.23, -0.30, -0.16], [0.23, 0.17, 0.15]])  # head and shoulders
TORSO_CENTER = np.array([0.0, -0.31, -0.03])
TORSO_RADII = np.array([0.21, 0.19, 0.11])
TORSO_EXPONENT = 3.0
WALL_Z = -1.0  # the wall plane, about 1 m behind the head
WALL_HALF = 3.0  # the wall spans [-3, 3] m in x and y
LIGHT = np.array([-0.35, 0.55, 0.75]) / np.linalg.norm([-0.35, 0.55, 0.75])  # towards the light
AMBIENT, DIFFUSE = 0.38, 0.62
SPECULAR, SHININESS = 0.25, 24.0  # the head's Blinn-Phong highlight (with `specular`)
BACKGROUND = np.array([0.5, 0.5, 0.5])  # pixels no surface covers (none in practice)

# Cameras.
TARGET = np.array([0.0, -0.045, 0.0])  # the point the phone aims at
DISTANCE, DISTANCE_SWING = 0.56, 0.04  # metres from TARGET
YAW_DEG, PITCH_DEG, ROLL_DEG = 20.0, 8.0, 2.0  # amplitudes of the smooth motion
POSITION_JITTER, TARGET_JITTER, ROLL_JITTER_DEG = 0.0015, 0.002, 0.4  # per-frame noise (std)
FOV_DEG = 40.0  # horizontal (= vertical) field of view
ORBIT_FRAMES, ORBIT_YAW_DEG = 60, 30.0

# Expressions and motion.
SHAPE_STD, SHAPE_RANGE = 0.7, (-1.0, 1.5)
EXPRESSION_RANGE = (-0.5, 1.5)
EYES_CLOSE, EYES_CLOSE_RANGE = 6, (-0.5, 1.0)
JAW_MAX = 0.35  # radians
HEAD_ROTATION_DEG, HEAD_TRANSLATION = 3.0, 0.005  # bounds of the bare --head_motion
MAX_HEAD_MOTION_DEG = 30.0  # the largest --head_motion DEGREES
DECIMALS = 6  # FLAME parameters are rounded to this many decimals (what is written is used)

_GRID = np.linspace(0.0, 1.0, 2001)  # where smooth signals are normalised


# --------------------------------------------------------------------------------------------
# Arguments.


def _check_arguments(
    size: int,
    frames: int,
    val: int,
    seed: int,
    head_motion: bool | float,
    num_expression: int,
    vrig: int = 0,
    normalisation: str = "head",
    expression_appearance: bool = False,
    specular: bool = False,
    head_joint: str = "root",
) -> dict[str, Any]:
    """Validated generator arguments (ValueError names the argument).

    `head_motion` comes back as degrees (float): False is 0, True is HEAD_ROTATION_DEG.
    """

    def integer(name: str, value: Any, lo: int, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"--{name}: found {value!r}, expected an integer")
        if value < lo or (hi is not None and value > hi):
            expected = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ValueError(f"--{name}: found {value}, expected an integer {expected}")
        return int(value)

    frames = integer("train_frames", frames, 2)
    if not isinstance(expression_appearance, bool | np.bool_):
        raise ValueError(
            f"--expression_appearance: found {expression_appearance!r}, expected true or false"
        )
    if not isinstance(specular, bool | np.bool_):
        raise ValueError(f"--specular: found {specular!r}, expected true or false")
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"--normalisation: found {normalisation!r}, expected one of {list(NORMALISATIONS)}"
        )
    _check_head_joint(head_joint)
    degrees = head_motion_degrees(head_motion)
    if head_joint != DEFAULTS["head_joint"] and degrees == 0.0:
        raise ValueError(f"--head_joint {head_joint}: needs --head_motion (the head is static)")
    return {
        "size": integer("size", size, MIN_SIZE),
        "frames": frames,
        "val": integer("val", val, 0, frames),
        "seed": integer("seed", seed, 0),
        "head_motion": degrees,
        "num_expression": integer("num_expression", num_expression, 0, head.NUM_EXPRESSION),
        "vrig": integer("vrig", vrig, 0, frames),
        "normalisation": str(normalisation),
        "expression_appearance": bool(expression_appearance),
        "specular": bool(specular),
        "head_joint": str(head_joint),
    }


def _check_head_joint(head_joint: Any) -> None:
    """ValueError naming --head_joint unless it is one of HEAD_JOINTS."""
    if not isinstance(head_joint, str) or head_joint not in HEAD_JOINTS:
        raise ValueError(f"--head_joint: found {head_joint!r}, expected one of {list(HEAD_JOINTS)}")


def head_motion_degrees(head_motion: Any) -> float:
    """`head_motion` as degrees: False -> 0, True -> HEAD_ROTATION_DEG, a number in
    [0, MAX_HEAD_MOTION_DEG] -> itself (ValueError otherwise, naming --head_motion)."""
    if isinstance(head_motion, bool | np.bool_):
        return HEAD_ROTATION_DEG if head_motion else 0.0
    if isinstance(head_motion, int | float | np.integer | np.floating):
        degrees = float(head_motion)
        if math.isfinite(degrees) and 0.0 <= degrees <= MAX_HEAD_MOTION_DEG:
            return degrees
    raise ValueError(
        f"--head_motion: found {head_motion!r}, expected degrees in [0, "
        f"{MAX_HEAD_MOTION_DEG:g}] (or true/false: {HEAD_ROTATION_DEG:g} / 0)"
    )


def capture_key(**kwargs: Any) -> str:
    """The cache key of `default_capture(**kwargs)`: readable arguments, version and a digest.

    Options at their defaults (vrig 0, head normalisation, no expression appearance, no specular
    highlight, the head turning about the root joint) are left out of the key, and head motion
    of 0 or HEAD_ROTATION_DEG degrees is keyed as the bool it was before it took a magnitude, so
    the captures generated before those options existed keep their keys (their files are
    unchanged).
    """
    args = _check_arguments(**{**DEFAULTS, **kwargs})
    degrees = args["head_motion"]
    keyed: dict[str, Any] = {k: args[k] for k in ("size", "frames", "val", "seed")}
    keyed["head_motion"] = degrees if degrees not in (0.0, HEAD_ROTATION_DEG) else degrees > 0
    keyed["num_expression"] = args["num_expression"]
    extras = ""
    if args["vrig"]:
        keyed["vrig"] = args["vrig"]
        keyed["vrig_version"] = VRIG_VERSION
        extras += f"-vrig{args['vrig']}v{VRIG_VERSION}"
    if args["normalisation"] != DEFAULTS["normalisation"]:
        keyed["normalisation"] = args["normalisation"]
        extras += f"-{args['normalisation']}"
    if args["expression_appearance"]:
        keyed["expression_appearance"] = True
        extras += "-appearance"
    if args["specular"]:
        keyed["specular"] = True
        extras += "-specular"
    if args["head_joint"] != DEFAULTS["head_joint"]:
        keyed["head_joint"] = args["head_joint"]
        extras += f"-{args['head_joint']}joint"
    text = json.dumps({**keyed, "version": GENERATOR_VERSION}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    if degrees == 0.0:
        motion = "static"
    elif degrees == HEAD_ROTATION_DEG:
        motion = "motion"
    else:
        motion = f"motion{degrees:g}deg"
    return (
        f"synthetic-{args['size']}px-{args['frames']}train-{args['val']}val-seed{args['seed']}-{motion}-"
        f"e{args['num_expression']}{extras}-v{GENERATOR_VERSION}-{digest}"
    )


# --------------------------------------------------------------------------------------------
# Smooth random signals.


def _smooth(rng: np.random.Generator, t: np.ndarray, terms: int, f_lo: float, f_hi: float):
    """A sum of `terms` sinusoids (frequencies in cycles per timeline), peak |value| 1.

    t: (T,) times in [0, 1] -> (T,). The peak is taken over a fixed fine grid, so the curve
    does not depend on how many frames sample it.
    """
    freq = rng.uniform(f_lo, f_hi, terms)
    phase = rng.uniform(0.0, 2.0 * np.pi, terms)
    amp = rng.uniform(0.5, 1.0, terms)
    curve = lambda s: (amp * np.sin(2.0 * np.pi * freq * s[:, None] + phase)).sum(axis=-1)
    return curve(t) / np.abs(curve(_GRID)).max()


def _bursts(
    rng: np.random.Generator,
    t: np.ndarray,
    count: tuple[int, int],
    width: tuple[float, float],
    height: tuple[float, float],
) -> np.ndarray:
    """Gaussian bumps at random times: t (T,) -> (T,)."""
    n = int(rng.integers(count[0], count[1] + 1))
    centers = rng.uniform(0.0, 1.0, n)
    widths = rng.uniform(*width, n)
    heights = rng.uniform(*height, n)
    bumps = heights * np.exp(-0.5 * ((t[:, None] - centers) / widths) ** 2)
    return bumps.sum(axis=-1)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """Independent streams: changing one part of the scene leaves the others unchanged."""
    return np.random.default_rng([seed, *stream])


def identity_shape(seed: int) -> np.ndarray:
    """(20,) identity coefficients of the subject drawn from the seed."""
    shape = _rng(seed, 0).normal(0.0, SHAPE_STD, head.NUM_SHAPE)
    return np.clip(shape, *SHAPE_RANGE)


def expression_curves(seed: int, t: np.ndarray, num_expression: int) -> np.ndarray:
    """(T, num_expression) smooth expression coefficients at times t (T,)."""
    curves = np.zeros((len(t), num_expression))
    for k in range(num_expression):
        rng = _rng(seed, 2, k)
        if k == EYES_CLOSE:
            wander = _smooth(rng, t, 3, 0.5, 3.0)
            blinks = _bursts(rng, t, (3, 6), (0.012, 0.02), (0.9, 1.15))
            curves[:, k] = np.clip(0.12 * wander + blinks, *EYES_CLOSE_RANGE)
        else:
            rest = rng.uniform(0.0, 0.45)
            swing = rng.uniform(0.35, 0.75)
            wander = _smooth(rng, t, 3, 0.8, 4.5)
            bursts = _bursts(rng, t, (0, 3), (0.01, 0.03), (0.4, 1.0))
            curves[:, k] = np.clip(rest + swing * wander + bursts, *EXPRESSION_RANGE)
    return curves


def jaw_curve(seed: int, t: np.ndarray) -> np.ndarray:
    """(T,) jaw opening in [0, JAW_MAX] radians (rotation about x), smooth."""
    rng = _rng(seed, 3)
    x = 0.3 + 0.55 * _smooth(rng, t, 4, 1.5, 7.0)
    x = x + _bursts(rng, t, (1, 3), (0.01, 0.025), (0.3, 0.6))
    return JAW_MAX * _smoothstep(x, -0.1, 1.1)


def head_translation_bound(degrees: float) -> float:
    """Metres of head translation that go with `degrees` of head rotation.

    HEAD_TRANSLATION (5 mm) at HEAD_ROTATION_DEG (3 degrees) and 1 mm per degree from 5
    degrees on (1 cm at 10, 2 cm at 20): max(1 mm/degree, min(5 mm, 5 mm x degrees / 3)).
    """
    return HEAD_TRANSLATION * max(degrees / 5.0, min(1.0, degrees / HEAD_ROTATION_DEG))


def head_motion_curves(
    seed: int, t: np.ndarray, degrees: float = HEAD_ROTATION_DEG
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) global pose (axis-angle, |.| <= degrees), (T, 3) translation (metres).

    Nods (x), turns (y) and tilts (z) are smooth curves with peaks 0.5, 0.83 and 0.33 x
    `degrees`; the translation's peaks are 0.6, 0.5, 0.5 x `head_translation_bound(degrees)`,
    which bounds its norm (5 mm at the default 3 degrees). Scaling changes only the bounds:
    the curves' shapes depend on the seed alone.
    """
    rng = _rng(seed, 4)
    scale = degrees / HEAD_ROTATION_DEG  # exactly 1 for the default
    shift = head_translation_bound(degrees) / HEAD_TRANSLATION
    amplitude = np.radians([1.5, 2.5, 1.0]) * scale  # nod, turn, tilt
    rotation = np.stack([a * _smooth(rng, t, 3, 0.5, 2.5) for a in amplitude], axis=-1)
    translation = np.stack(
        [a * shift * _smooth(rng, t, 3, 0.5, 2.5) for a in (0.003, 0.0025, 0.0025)], axis=-1
    )

    def bound(v: np.ndarray, limit: float) -> np.ndarray:
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        return v * np.minimum(1.0, limit / np.maximum(norm, 1e-12))

    return (
        bound(rotation, np.radians(degrees)),
        bound(translation, HEAD_TRANSLATION * shift),
    )


# --------------------------------------------------------------------------------------------
# Cameras.


def focal_length(size: int) -> float:
    """Focal length in pixels of a size x size image with a FOV_DEG field of view."""
    return 0.5 * size / math.tan(math.radians(FOV_DEG) / 2.0)


def _orbit_position(yaw: float, pitch: float, distance: float) -> np.ndarray:
    direction = np.array(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
    )
    return TARGET + distance * direction


def _camera(position: np.ndarray, target: np.ndarray, roll: float, size: int) -> Camera:
    up = np.array([0.0, 1.0, 0.0])
    c, s = math.cos(roll), math.sin(roll)
    rotation = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) @ look_at_rotation(
        position, target, up
    )
    return Camera(
        orientation=rotation,
        position=position,
        focal_length=focal_length(size),
        principal_point=np.array([size / 2.0, size / 2.0]),
        image_size=(size, size),
    )


def camera_trajectory(seed: int, t: np.ndarray, size: int) -> list[Camera]:
    """The handheld trajectory: one camera per time in t (T,)."""
    return _handheld(_rng(seed, 1), t, size)


def vrig_cameras(seed: int, t: np.ndarray, size: int) -> list[Camera]:
    """The second phone: one camera per time in t (T,).

    It is held like the first (the same motion statistics: yaw, pitch, distance, roll and
    jitter) but moves independently (seed stream 5), so its views lie in the range the
    training views cover while its camera at a given time may be anywhere in that range:
    from beside the first phone to about 40 cm away.
    """
    return _handheld(_rng(seed, 5), t, size)


def _handheld(rng: np.random.Generator, t: np.ndarray, size: int) -> list[Camera]:
    yaw = np.radians(YAW_DEG) * _smooth(rng, t, 3, 0.6, 2.5)
    pitch = np.radians(PITCH_DEG) * _smooth(rng, t, 3, 0.6, 2.5)
    distance = DISTANCE + DISTANCE_SWING * _smooth(rng, t, 2, 0.5, 2.0)
    roll = np.radians(ROLL_DEG) * _smooth(rng, t, 2, 0.5, 2.0)
    position_jitter = rng.normal(0.0, POSITION_JITTER, (len(t), 3))
    target_jitter = rng.normal(0.0, TARGET_JITTER, (len(t), 3))
    roll_jitter = rng.normal(0.0, np.radians(ROLL_JITTER_DEG), len(t))
    return [
        _camera(
            _orbit_position(yaw[i], pitch[i], distance[i]) + position_jitter[i],
            TARGET + target_jitter[i],
            roll[i] + roll_jitter[i],
            size,
        )
        for i in range(len(t))
    ]


def orbit_cameras(size: int) -> list[Camera]:
    """`camera-paths/orbit`: ORBIT_FRAMES cameras swinging +-ORBIT_YAW_DEG at DISTANCE."""
    cameras = []
    for n in range(ORBIT_FRAMES):
        yaw = math.radians(ORBIT_YAW_DEG) * math.sin(2.0 * math.pi * n / ORBIT_FRAMES)
        position = _orbit_position(yaw, 0.0, DISTANCE)
        cameras.append(
            look_at(
                position,
                TARGET,
                np.array([0.0, 1.0, 0.0]),
                focal_length=focal_length(size),
                image_size=(size, size),
            )
        )
    return cameras


# --------------------------------------------------------------------------------------------
# The timeline.


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Every frame of a capture: the time samples in time order, then the vrig frames.

    Attributes:
      ids: (T,) frame ids (zero-padded time index; "vrig_" + it for the second phone's).
      is_val: (T,) bool, held-out validation frames.
      params: per frame, the FLAME parameters as written to flame/ID.json.
      cameras: per frame, the camera (world, 1x).
      time_index: (T,) the frame's time sample (a vrig frame's is its training frame's).
      camera_ids: (T,) the phone: 0 (the training trajectory) or 1 (the vrig phone).
    """

    ids: list[str]
    is_val: np.ndarray
    params: list[dict[str, list[float]]]
    cameras: list[Camera]
    time_index: np.ndarray
    camera_ids: np.ndarray

    @property
    def train_ids(self) -> list[str]:
        return [i for i, v in zip(self.ids, self.is_val, strict=True) if not v]

    @property
    def val_ids(self) -> list[str]:
        return [i for i, v in zip(self.ids, self.is_val, strict=True) if v]


def validation_indices(frames: int, val: int) -> np.ndarray:
    """Time indices of the `val` held-out frames among `frames + val`, evenly spread."""
    total = frames + val
    return np.floor((np.arange(val) + 0.5) * total / max(val, 1)).astype(np.int64)


def vrig_training_positions(frames: int, vrig: int) -> np.ndarray:
    """Positions (in train_ids) of the `vrig` training frames the second phone shares."""
    return np.floor((np.arange(vrig) + 0.5) * frames / max(vrig, 1)).astype(np.int64)


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), DECIMALS) + 0.0 for v in np.asarray(values).ravel()]


def make_timeline(
    size: int,
    frames: int,
    val: int,
    seed: int,
    head_motion: bool | float,
    num_expression: int,
    vrig: int = 0,
    head_joint: str = "root",
) -> Timeline:
    """Cameras and FLAME parameters of every frame (see the module docstring).

    `head_motion`: degrees (see `head_motion_curves`); True is HEAD_ROTATION_DEG.
    `head_joint` (`HEAD_JOINTS`): "root" writes the rotation curves as `global_pose` with the
    translation; "neck" writes them as `neck_pose`, with zero global pose and translation.
    """
    degrees = head_motion_degrees(head_motion)
    _check_head_joint(head_joint)
    total = frames + val
    t = np.linspace(0.0, 1.0, total)
    is_val = np.zeros(total, dtype=bool)
    is_val[validation_indices(frames, val)] = True
    width = max(4, len(str(total - 1)))
    ids = [f"{i:0{width}d}" for i in range(total)]
    shape = identity_shape(seed)
    expression = expression_curves(seed, t, num_expression)
    jaw = jaw_curve(seed, t)
    global_pose, neck_pose = np.zeros((total, 3)), np.zeros((total, 3))
    translation = np.zeros((total, 3))
    if degrees > 0.0:
        rotation, shift = head_motion_curves(seed, t, degrees)
        if head_joint == "neck":
            neck_pose = rotation
        else:
            global_pose, translation = rotation, shift
    params = [
        {
            "shape": _rounded(shape),
            "expression": _rounded(expression[i]),
            "global_pose": _rounded(global_pose[i]),
            "neck_pose": _rounded(neck_pose[i]),
            "jaw_pose": _rounded([jaw[i], 0.0, 0.0]),
            "eye_pose": [0.0] * 6,
            "translation": _rounded(translation[i]),
        }
        for i in range(total)
    ]
    cameras = camera_trajectory(seed, t, size)
    time_index = np.arange(total)
    shared = np.flatnonzero(~is_val)[vrig_training_positions(frames, vrig)]
    second = vrig_cameras(seed, t[shared], size)
    return Timeline(
        ids=ids + [f"vrig_{ids[i]}" for i in shared],
        is_val=np.concatenate([is_val, np.ones(len(shared), dtype=bool)]),
        params=params + [dict(params[i]) for i in shared],
        cameras=cameras + second,
        time_index=np.concatenate([time_index, shared]),
        camera_ids=np.concatenate([np.zeros(total, np.int64), np.ones(len(shared), np.int64)]),
    )


# --------------------------------------------------------------------------------------------
# The scene and its renderer.


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals: vertices (V, 3), faces (F, 3) -> (V, 3)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def torso_mesh(n_polar: int = 64, n_azimuth: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The closed torso: a superellipsoid (TORSO_*) as a UV sphere, outward-facing triangles.

    Returns vertices (M, 3) and faces (G, 3).
    """
    polar = np.pi * (np.arange(1, n_polar) / n_polar)
    azimuth = 2.0 * np.pi * np.arange(n_azimuth) / n_azimuth
    pp, aa = np.meshgrid(polar, azimuth, indexing="ij")
    ring = np.stack([np.sin(pp) * np.sin(aa), np.cos(pp), np.sin(pp) * np.cos(aa)], axis=-1)
    dirs = np.concatenate([[[0.0, 1.0, 0.0]], ring.reshape(-1, 3), [[0.0, -1.0, 0.0]]])
    p = TORSO_EXPONENT
    radius = (np.abs(dirs / TORSO_RADII) ** p).sum(axis=-1) ** (-1.0 / p)
    vertices = TORSO_CENTER + radius[:, None] * dirs
    index = lambda r, s: 1 + r * n_azimuth + (s % n_azimuth)
    last = len(dirs) - 1
    faces = []
    for s in range(n_azimuth):
        faces.append([0, index(0, s), index(0, s + 1)])
        faces.append([last, index(n_polar - 2, s + 1), index(n_polar - 2, s)])
        for r in range(n_polar - 2):
            a, b = index(r, s), index(r, s + 1)
            c, d = index(r + 1, s), index(r + 1, s + 1)
            faces += [[a, c, d], [a, d, b]]
    faces = np.array(faces, dtype=np.int64)
    # Orient outwards: the signed volume must be positive.
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    if np.einsum("fi,fi->f", v0, np.cross(v1, v2)).sum() < 0:
        faces = faces[:, ::-1].copy()
    return vertices, faces


def wall_mesh(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The wall: an n x n grid of quads on z = WALL_Z over [-WALL_HALF, WALL_HALF]^2, facing +z."""
    s = np.linspace(-WALL_HALF, WALL_HALF, n + 1)
    xx, yy = np.meshgrid(s, s, indexing="xy")
    vertices = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, WALL_Z)], axis=-1)
    faces = []
    for j in range(n):
        for i in range(n):
            a = j * (n + 1) + i
            b, c, d = a + 1, a + n + 1, a + n + 2
            faces += [[a, b, d], [a, d, c]]  # counter-clockwise seen from +z
    return vertices, np.array(faces, dtype=np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticScene:
    """The head model and the static geometry, with everything the renderer needs.

    Attributes:
      arrays: the procedural head's arrays (as in its .npz).
      model: the head as a FlameModel.
      head_faces: (F, 3) faces of the FLAME mesh.
      static_vertices: (S, 3) torso then wall vertices (world).
      num_torso_vertices: how many of static_vertices are the torso's.
      static_faces: (G, 3) their faces (indices into static_vertices).
      static_normals: (S, 3) their unit vertex normals.
      canonical: (V + S, 3) canonical (texture) positions: head template, then static.
      materials: (V + S, NUM_MATERIALS) one-hot material of every vertex.
      jaw_weights: (V + S,) the jaw joint's skinning weight (0 off the head): where a point
        of the lip band lies across the mouth opening (`textures.expression_appearance`).
    """

    arrays: dict[str, np.ndarray]
    model: flame.FlameModel
    head_faces: np.ndarray
    static_vertices: np.ndarray
    num_torso_vertices: int
    static_faces: np.ndarray
    static_normals: np.ndarray
    canonical: np.ndarray
    materials: np.ndarray
    jaw_weights: np.ndarray

    @property
    def num_head_vertices(self) -> int:
        return len(self.arrays["v_template"])

    def pose(self, params: Sequence[dict[str, Any] | flame.FlameParams]) -> np.ndarray:
        """Posed head vertices (N, V, 3) float64 (world) of N parameter sets.

        Dicts are in the flame/ID.json form; posing is the capture reader's
        (`flamenerf.geometry.subject.pose_flame`: `flame.forward` in float32).
        """
        params = [
            p if isinstance(p, flame.FlameParams) else flame.FlameParams.from_dict(p)
            for p in params
        ]
        return pose_flame(self.model, params)

    def silhouette(self, camera: Camera, head_vertices: np.ndarray) -> np.ndarray:
        """(H, W) bool FLAME silhouette (head mesh only, eyes included) of (V, 3) vertices."""
        return rasterize.silhouette(head_vertices, self.head_faces, camera)

    def render(
        self,
        camera: Camera,
        head_vertices: np.ndarray,
        supersample: int,
        expression: Sequence[float] | np.ndarray | None = None,
        jaw: float = 0.0,
        specular: bool = False,
    ) -> np.ndarray:
        """Renders the scene with the head posed as head_vertices (V, 3), anti-aliased.

        Returns (H, W, 3) float64 linear colours in [0, 1] for `camera` (H, W its image
        shape): the image at `supersample` times the resolution, box-downsampled.
        With `expression` (E,) coefficients (and the `jaw` opening, radians) the skin and
        mouth also get `textures.expression_appearance`; None (default): the plain textures.
        `specular` adds the head's Blinn-Phong highlight (seen from `camera`).
        """
        nv = self.num_head_vertices
        vertices = np.concatenate([head_vertices, self.static_vertices])
        faces = np.concatenate([self.head_faces, self.static_faces + nv])
        normals = np.concatenate(
            [_vertex_normals(head_vertices, self.head_faces), self.static_normals]
        )
        fine = camera.scale(1.0 / supersample) if supersample != 1 else camera
        fragments = rasterize.rasterize(vertices, faces, fine)
        covered = fragments.face_index >= 0
        image = np.broadcast_to(BACKGROUND, covered.shape + (3,)).copy()
        if covered.any():
            face = fragments.face_index[covered]
            bary = fragments.barycentric[covered]  # (N, 3)
            corners = faces[face]  # (N, 3)
            blend = lambda a: np.einsum("nk,nkc->nc", bary, a[corners])
            points = blend(self.canonical)
            weights = blend(self.materials)
            normal = blend(normals)
            normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
            albedo = textures.shade_materials(points, weights)
            if expression is not None:
                albedo = textures.expression_appearance(
                    points, weights, blend(self.jaw_weights[:, None])[:, 0], albedo, expression, jaw
                )
            light = AMBIENT + DIFFUSE * np.clip(normal @ LIGHT, 0.0, None)
            image[covered] = albedo * light[:, None]
            if specular:
                on_head = face < len(self.head_faces)
                to_eye = camera.position - blend(vertices)
                half = LIGHT + to_eye / np.linalg.norm(to_eye, axis=-1, keepdims=True)
                half /= np.linalg.norm(half, axis=-1, keepdims=True)
                lit = (normal @ LIGHT > 0.0) & on_head
                facing = np.clip(np.sum(normal * half, axis=-1), 0.0, None)
                highlight = np.where(lit, facing**SHININESS, 0.0)
                image[covered] += SPECULAR * highlight[:, None]
        image = np.clip(image, 0.0, 1.0)
        return rasterize.downsample(image, supersample) if supersample != 1 else image


def _head_arrays() -> dict[str, np.ndarray]:
    with np.load(head.default_head_path(), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@functools.lru_cache(maxsize=1)
def build_scene() -> SyntheticScene:
    """The scene (cached per process): head from `head.default_head_path()`, torso, wall."""
    arrays = _head_arrays()
    model = flame.model_from_arrays(arrays, "procedural head")
    template = arrays["v_template"].astype(np.float64)
    region = arrays["region"].astype(np.int64)
    # Eyeball vertices (rigid on an eye joint, on the eye sphere) get the per-pixel eye texture.
    material = region.copy()
    eye_weight = arrays["weights"][:, 3:].sum(axis=1)
    for center in (head.LEFT_EYE, head.RIGHT_EYE):
        on_sphere = np.abs(np.linalg.norm(template - center, axis=-1) - head.EYE_RADIUS) < 1e-4
        material[on_sphere & (eye_weight > 0.99)] = textures.EYEBALL
    torso_v, torso_f = torso_mesh()
    wall_v, wall_f = wall_mesh()
    static_vertices = np.concatenate([torso_v, wall_v])
    static_faces = np.concatenate([torso_f, wall_f + len(torso_v)])
    static_normals = np.concatenate(
        [_vertex_normals(torso_v, torso_f), np.tile([0.0, 0.0, 1.0], (len(wall_v), 1))]
    )
    material = np.concatenate(
        [material, np.full(len(torso_v), textures.SHIRT), np.full(len(wall_v), textures.WALL)]
    )
    return SyntheticScene(
        arrays=arrays,
        model=model,
        head_faces=arrays["f"].astype(np.int64),
        static_vertices=static_vertices,
        num_torso_vertices=len(torso_v),
        static_faces=static_faces,
        static_normals=static_normals,
        canonical=np.concatenate([template, static_vertices]),
        materials=np.eye(textures.NUM_MATERIALS)[material],
        jaw_weights=np.concatenate(
            [
                arrays["weights"][:, head.JOINT_NAMES.index("jaw")].astype(np.float64),
                np.zeros(len(static_vertices)),
            ]
        ),
    )


def supersampling(size: int) -> int:
    """Anti-aliasing factor: 4 up to 128 px, else 2."""
    return 4 if size <= 128 else 2


def extra_scales(size: int) -> list[int]:
    """The downsampled scales written besides 1x (divisible, at least MIN_SIZE pixels)."""
    return [s for s in (2, 4) if size % s == 0 and size // s >= MIN_SIZE]


# --------------------------------------------------------------------------------------------
# Writing.


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


_OUTPUTS = (
    "dataset.json",
    "metadata.json",
    "scene.json",
    "flame_model.npz",
    "camera",
    "rgb",
    "mask",
    "flame",
    "camera-paths",
)


def _prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: found a file, expected a folder (or a new path)")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"--out {out}: folder is not empty (pass --overwrite to replace)")
        for name in _OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _wall_hits(cameras: Sequence[Camera]) -> np.ndarray:
    """(4 C, 3) where the rays through the image corners of C cameras meet the wall plane."""
    hits = []
    for c in cameras:
        w, h = c.image_size
        corners = np.array([[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]], dtype=np.float64)
        origins, directions = c.pixels_to_rays(corners)
        hits.append(origins + ((WALL_Z - origins[:, 2]) / directions[:, 2])[:, None] * directions)
    return np.concatenate(hits)


def room_normalisation(cameras: Sequence[Camera]) -> tuple[np.ndarray, float]:
    """(center (3,), scale) of scene.json with --normalisation room.

    What a tool that knows nothing of the head would choose (the convention of Nerfies'
    capture notebook, with the visible wall for its point cloud): the box around the
    capture's camera positions and the part of the wall they see (where their image corners'
    rays meet it) is centred, and its diagonal scaled to 1, so it lies inside the ball of
    radius 0.5 (and the unit box). The centre is rounded to 0.1 mm and the scale down to
    4 decimals.
    """
    points = np.concatenate([np.array([c.position for c in cameras]), _wall_hits(cameras)])
    lo, hi = points.min(axis=0), points.max(axis=0)
    center = np.round(0.5 * (lo + hi), 4) + 0.0
    return center, math.floor(1e4 / float(np.linalg.norm(hi - lo))) / 1e4


def _scene_json(
    timeline: Timeline,
    scene: SyntheticScene,
    num_expression: int,
    head_vertices: np.ndarray | None = None,
    normalisation: str = "head",
) -> dict:
    """scene.json, with near and far from the cameras (frames and orbit path).

    head_vertices: (N, V, 3) the posed heads of the frames: the bbox grows to hold them
    when the head motion takes them out of BBOX_WORLD.
    """
    size = timeline.cameras[0].width
    cameras = timeline.cameras + orbit_cameras(size)
    solid = np.concatenate(
        [
            scene.arrays["v_template"].astype(np.float64),
            scene.static_vertices[: scene.num_torso_vertices],
        ]
    )
    nearest = min(np.linalg.norm(solid - c.position, axis=-1).min() for c in cameras)
    corners = np.array([[0.0, 0.0], [size, 0.0], [0.0, size], [size, size]])
    farthest = 0.0
    for c in cameras:
        origins, directions = c.pixels_to_rays(corners)
        farthest = max(farthest, ((WALL_Z - origins[:, 2]) / directions[:, 2]).max())
    if normalisation == "room":
        center, scale = room_normalisation(timeline.cameras)  # the frames' cameras only
    else:
        center, scale = SCENE_CENTER, SCENE_SCALE
    box = BBOX_WORLD
    if head_vertices is not None:
        margin = 0.002
        box = np.stack(
            [
                np.minimum(box[0], head_vertices.min(axis=(0, 1)) - margin),
                np.maximum(box[1], head_vertices.max(axis=(0, 1)) + margin),
            ]
        )
    bbox = (box - center) * scale
    return {
        "center": center.tolist(),
        "scale": scale,
        "near": math.floor(0.8 * nearest * scale * 100) / 100,
        "far": math.ceil(1.05 * farthest * scale * 100) / 100,
        "flame": {
            "model": "flame_model.npz",
            "to_world": {
                "scale": 1.0,
                "rotation": np.eye(3).tolist(),
                "translation": [0.0, 0.0, 0.0],
            },
            "num_expression": num_expression,
        },
        "bbox": np.round(bbox, 4).tolist(),
    }


def generate(
    out: str | os.PathLike[str],
    size: int = 64,
    frames: int = 120,
    val: int = 16,
    seed: int = 0,
    head_motion: bool | float = False,
    num_expression: int = 10,
    vrig: int = 0,
    normalisation: str = "head",
    expression_appearance: bool = False,
    specular: bool = False,
    head_joint: str = "root",
    show_progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Writes a synthetic capture to `out` (see the module docstring) and returns its path.

    Raises ValueError for bad arguments (naming the flag) or an existing non-empty `out`
    (unless `overwrite`, which replaces the capture's files and folders there).
    """

    args = _check_arguments(
        size,
        frames,
        val,
        seed,
        head_motion,
        num_expression,
        vrig,
        normalisation,
        expression_appearance,
        specular,
        head_joint,
    )
    out = Path(out)
    _prepare_folder(out, overwrite)
    scene = build_scene()
    timeline = make_timeline(
        size,
        frames,
        val,
        seed,
        args["head_motion"],
        num_expression,
        args["vrig"],
        args["head_joint"],
    )
    vertices = scene.pose(timeline.params)
    scales = extra_scales(size)
    k = supersampling(size)
    for folder in ("camera", "flame"):
        (out / folder).mkdir()
    for folder in ("rgb", "mask"):
        for s in [1, *scales]:
            (out / folder / f"{s}x").mkdir(parents=True)

    def write_frame(i: int) -> None:
        frame_id, camera = timeline.ids[i], timeline.cameras[i]
        appearance = {}
        if args["expression_appearance"]:
            params = timeline.params[i]
            appearance = {"expression": params["expression"], "jaw": params["jaw_pose"][0]}
        image = scene.render(camera, vertices[i], k, specular=args["specular"], **appearance)
        _write_png(out / "rgb" / "1x" / f"{frame_id}.png", _to_uint8(image))
        _write_png(
            out / "mask" / "1x" / f"{frame_id}.png",
            scene.silhouette(camera, vertices[i]).astype(np.uint8) * 255,
        )
        for s in scales:
            _write_png(
                out / "rgb" / f"{s}x" / f"{frame_id}.png",
                _to_uint8(rasterize.downsample(image, s)),
            )
            mask = scene.silhouette(camera.scale(s), vertices[i])
            _write_png(out / "mask" / f"{s}x" / f"{frame_id}.png", mask.astype(np.uint8) * 255)
        camera.to_json(out / "camera" / f"{frame_id}.json")
        _write_json(out / "flame" / f"{frame_id}.json", timeline.params[i])

    # Frames are independent (each writes its own files): one thread per core, 1.46x faster
    # than a loop on 2 cores (numpy's rasteriser releases the GIL).
    threads.map_threads(
        write_frame, range(len(timeline.ids)), "synthetic frames", show_progress, unit="frame"
    )

    train, val_ids = timeline.train_ids, timeline.val_ids
    _write_json(
        out / "dataset.json",
        {
            "count": len(timeline.ids),
            "num_exemplars": len(train),
            "ids": train + val_ids,
            "train_ids": train,
            "val_ids": val_ids,
        },
    )
    code = {frame_id: n for n, frame_id in enumerate(train)}
    train_time = np.flatnonzero(~timeline.is_val[: frames + val])
    metadata = {}
    for i, frame_id in enumerate(timeline.ids):
        # The nearest training frame in time (the earlier one on a tie); a vrig frame's is
        # the training frame of its time.
        time = timeline.time_index[i]
        nearest = train_time[np.argmin(np.abs(train_time - time))]
        n = code[timeline.ids[nearest]]
        camera_id = int(timeline.camera_ids[i])
        metadata[frame_id] = {"warp_id": n, "appearance_id": n, "camera_id": camera_id}
    _write_json(out / "metadata.json", metadata)
    scene_json = _scene_json(
        timeline, scene, args["num_expression"], vertices, args["normalisation"]
    )
    _write_json(out / "scene.json", scene_json)
    head.write_npz(out / "flame_model.npz", scene.arrays)
    orbit = out / "camera-paths" / "orbit"
    orbit.mkdir(parents=True)
    for n, camera in enumerate(orbit_cameras(size)):
        camera.to_json(orbit / f"{n:04d}.json")
    return out


# --------------------------------------------------------------------------------------------
# The cached default capture.


def cache_dir() -> Path:
    """`$FLAMENERF_CACHE/captures` (FLAMENERF_CACHE defaults to ~/.cache/flamenerf)."""
    return paths.cache_root() / "captures"


def default_capture(**kwargs: Any) -> Path:
    """The capture of `generate(**kwargs)` (defaults: the demo capture), cached.

    Lives in `$FLAMENERF_CACHE/captures/<capture_key(**kwargs)>`; generated on first use into
    a temporary folder beside it and renamed into place, so other processes never see a
    partial capture (when two generate at once, the first rename wins and both use it).
    `show_progress` (default True) is passed to `generate` and is not part of the key.
    """
    show_progress = kwargs.pop("show_progress", True)
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"default_capture: unknown arguments {unknown}; expected {list(DEFAULTS)}")
    args = _check_arguments(**{**DEFAULTS, **kwargs})
    final = cache_dir() / capture_key(**args)
    if (final / "dataset.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        generate(tmp, show_progress=show_progress, **args)
        os.chmod(tmp, 0o755)  # mkdtemp makes the folder private; a cache is shared
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "dataset.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------------------------
# Contact sheet.


def contact_sheet(
    capture: str | os.PathLike[str],
    path: str | os.PathLike[str],
    columns: int = 6,
    rows: int = 4,
    tile: int = 192,
) -> Path:
    """A PNG grid of training frames evenly spread in time, FLAME silhouettes outlined.

    Each frame is upscaled (nearest) by an integer factor to about `tile` pixels, outlined in
    yellow, and labelled with its id and jaw opening.
    """
    from flamenerf.datasets import capture as capture_lib

    capture, path = Path(capture), Path(path)
    split = capture_lib.read_json(capture / "dataset.json")
    train = split["train_ids"]
    count = min(len(train), columns * rows)
    chosen = [train[int(round(j))] for j in np.linspace(0, len(train) - 1, count)]
    first = np.asarray(Image.open(capture / "rgb" / "1x" / f"{chosen[0]}.png"))
    height, width = first.shape[:2]
    factor = max(1, tile // max(height, width))
    tw, th = width * factor, height * factor
    label_h, pad, title_h = 14, 6, 22
    columns = min(columns, count)
    rows = -(-count // columns)
    sheet = Image.new(
        "RGB",
        (pad + columns * (tw + pad), title_h + rows * (th + label_h + pad) + pad),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    scene = capture_lib.read_json(capture / "scene.json")
    draw.text(
        (pad, 5),
        f"synthetic capture: {len(train)} training frames, {width}x{height}, "
        f"{scene['flame']['num_expression']} expressions + jaw; FLAME silhouette in yellow",
        fill=(0, 0, 0),
    )
    for n, frame_id in enumerate(chosen):
        image = np.asarray(Image.open(capture / "rgb" / "1x" / f"{frame_id}.png"))[..., :3]
        mask = np.asarray(Image.open(capture / "mask" / "1x" / f"{frame_id}.png")) > 127
        big = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1).copy()
        big_mask = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
        big[rasterize.outline(big_mask)] = (255, 230, 0)
        x = pad + (n % columns) * (tw + pad)
        y = title_h + (n // columns) * (th + label_h + pad)
        sheet.paste(Image.fromarray(big), (x, y))
        params = capture_lib.read_json(capture / "flame" / f"{frame_id}.json")
        jaw = params.get("jaw_pose", [0.0])[0]
        draw.text((x, y + th + 1), f"{frame_id}  jaw {jaw:.2f}", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


APPEARANCE_SHEET_ROWS: tuple[tuple[str, dict[str, float], float], ...] = (
    ("brow_raise 1.3", {"brow_raise": 1.3}, 0.0),
    ("smile 1.3", {"smile": 1.3}, 0.0),
    ("cheek_puff 1.2", {"cheek_puff": 1.2}, 0.0),
    ("jaw 0.12", {}, 0.12),
    ("jaw 0.3", {}, 0.3),
)


def expression_appearance_sheet(
    path: str | os.PathLike[str], size: int = 160, num_expression: int = 10
) -> Path:
    """A PNG of what `expression_appearance` adds: per row an expression (brow raise, smile,
    cheek puff, jaw opening), rendered plain | with the expression appearance | their
    difference (x4), by a camera 0.4 m in front of the face; the identity of seed 0."""
    scene = build_scene()
    camera = look_at(
        np.array([0.06, 0.0, 0.40]),
        np.array([0.0, -0.015, 0.0]),
        np.array([0.0, 1.0, 0.0]),
        focal_length=focal_length(size),
        image_size=(size, size),
    )
    shape = _rounded(identity_shape(0))
    label_h, pad = 14, 4
    rows = len(APPEARANCE_SHEET_ROWS)
    sheet = Image.new(
        "RGB", (3 * size + 4 * pad, rows * (size + label_h + pad) + pad), (255, 255, 255)
    )
    draw = ImageDraw.Draw(sheet)
    for r, (label, values, jaw) in enumerate(APPEARANCE_SHEET_ROWS):
        expression = np.zeros(num_expression)
        for name, value in values.items():
            expression[head.EXPRESSION_NAMES.index(name)] = value
        params = {"shape": shape, "expression": expression.tolist(), "jaw_pose": [jaw, 0.0, 0.0]}
        vertices = scene.pose([params])[0]
        k = supersampling(size)
        plain = scene.render(camera, vertices, k)
        styled = scene.render(camera, vertices, k, expression=expression, jaw=jaw)
        difference = np.clip(4.0 * np.abs(styled - plain), 0.0, 1.0)
        y = pad + r * (size + label_h + pad)
        for c, image in enumerate((plain, styled, difference)):
            sheet.paste(Image.fromarray(_to_uint8(image)), (pad + c * (size + pad), y + label_h))
        draw.text((pad, y), f"{label}: plain | expression appearance | difference x4", fill=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


# --------------------------------------------------------------------------------------------
# Command line.


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(errors.EXIT_USER_ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m flamenerf.synthetic",
        formatter_class=help_format.HelpFormatter,
        description=(
            "Write a synthetic capture (docs/capture-format.md): the procedural FLAME head with "
            "a smooth random expression sequence, a static torso and a textured wall, seen by "
            "a handheld-phone camera. The defaults are the pinned demo capture."
        ),
    )
    parser.add_argument(
        "--out",
        required=True,
        type=paths.local_path_argument,
        help="output capture folder (new or empty; local)",
    )
    parser.add_argument(
        "--size", type=int, default=DEFAULTS["size"], help="image width and height at 1x (>= 8)"
    )
    parser.add_argument(
        "--train_frames",
        type=int,
        default=DEFAULTS["frames"],
        metavar="N",
        help="training frames (>= 2)",
    )
    parser.add_argument(
        "--val",
        type=int,
        default=DEFAULTS["val"],
        help="validation frames, held-out time samples (0..train_frames)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS["seed"], help="random seed (identity, motion; >= 0)"
    )
    parser.add_argument(
        "--head_motion",
        nargs="?",
        type=float,
        const=HEAD_ROTATION_DEG,
        default=DEFAULTS["head_motion"],
        metavar="DEGREES",
        help=(
            "move the head, smoothly: turns, nods and tilts up to DEGREES (0..30; the bare "
            "flag: 3) and translation up to 5 mm at 3 degrees, 1 mm per degree from 5 "
            "degrees on (1 cm at 10); default: static head"
        ),
    )
    parser.add_argument(
        "--num_expression",
        type=int,
        default=DEFAULTS["num_expression"],
        help=f"expression coefficients animated and written (0..{head.NUM_EXPRESSION})",
    )
    parser.add_argument(
        "--vrig",
        type=int,
        default=DEFAULTS["vrig"],
        metavar="N",
        help=(
            "add N validation frames seen by a second phone (Nerfies vrig): at the times of N "
            "evenly spread training frames (their expression and head pose; their codes), "
            "held like the first phone but moving independently (0 to about 40 cm from the "
            "training camera of that time); ids vrig_<time>, camera_id 1 "
            "(0..train_frames; default 0)"
        ),
    )
    parser.add_argument(
        "--normalisation",
        choices=NORMALISATIONS,
        default=DEFAULTS["normalisation"],
        help=(
            "scene.json's center and scale: 'head' (default: the head's centre, scale 3.5) or "
            "'room' (as a tool that knows nothing of the head would, Nerfies' convention: the "
            "box around the cameras and the wall they see, centred, its diagonal scaled to 1; "
            "scale about 0.3); images and cameras are the same"
        ),
    )
    parser.add_argument(
        "--expression_appearance",
        action="store_true",
        help=(
            "appearance that follows the expression and that no mesh deformation explains: "
            "forehead lines with brow_raise, nasolabial folds and crow's feet with smile, "
            "flushed cheeks with cheek_puff, teeth and tongue in the open mouth"
        ),
    )
    parser.add_argument(
        "--specular",
        action="store_true",
        help=(
            "a white Blinn-Phong highlight on the head that moves with the camera "
            "(view-dependent colour, as real skin shows)"
        ),
    )
    parser.add_argument(
        "--head_joint",
        choices=HEAD_JOINTS,
        default=DEFAULTS["head_joint"],
        help=(
            "what turns the head (with --head_motion): 'root' (default: the whole FLAME mesh "
            "turns about its root joint and shifts, neck included, while the torso stays, so "
            "the neck slides through the collar) or 'neck' (FLAME's neck joint turns the head, "
            "no translation: the neck's base stays with the torso, as a person's does)"
        ),
    )
    parser.add_argument(
        "--contact_sheet",
        default=None,
        metavar="PNG",
        help="also write a grid of training frames with their masks outlined to this PNG",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the capture's files in an existing non-empty --out folder",
    )
    cli_args.add_quiet(parser, "no progress bar")  # one bar
    args = parser.parse_args(argv)
    try:
        out = generate(
            args.out,
            size=args.size,
            frames=args.train_frames,
            val=args.val,
            seed=args.seed,
            head_motion=args.head_motion,
            num_expression=args.num_expression,
            vrig=args.vrig,
            normalisation=args.normalisation,
            expression_appearance=args.expression_appearance,
            specular=args.specular,
            head_joint=args.head_joint,
            show_progress=not args.quiet,
            overwrite=args.overwrite,
        )
        if args.contact_sheet:
            contact_sheet(out, args.contact_sheet)
    except (ValueError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    vrig = f" + {args.vrig} vrig validation frames" if args.vrig else ""
    print(f"{out}: wrote {args.train_frames} training + {args.val} validation frames{vrig}")
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
