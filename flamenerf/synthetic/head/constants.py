# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Constants of the procedural head: counts, region labels, joints, basis names, geometry.

The public names are re-exported by `flamenerf.synthetic.head`; the underscored geometry
constants (metres) are shared by the modules that build the head.
"""

from __future__ import annotations

import numpy as np

VERSION = 1  # bump whenever the generated arrays change (it names the cache file)
NUM_SHAPE = 20
NUM_EXPRESSION = 16

# Region labels of `region` (int8).
SKIN = 0
LIPS = 1
BROW = 2
SCLERA = 3
IRIS = 4
PUPIL = 5
HAIR = 6
NECK = 7
MOUTH_INTERIOR = 8
EYELID = 9
EYE_SOCKET = 10
NOSTRIL = 11
EAR = 12
REGION_NAMES = (
    "skin",
    "lips",
    "brow",
    "sclera",
    "iris",
    "pupil",
    "hair",
    "neck",
    "mouth_interior",
    "eyelid",
    "eye_socket",
    "nostril",
    "ear",
)

JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
PARENTS = (-1, 0, 1, 1, 1)

# Intended joint positions (metres); the left eye is the subject's left, at +x.
EYE_RADIUS = 0.0125
LEFT_EYE = np.array([0.0315, 0.0335, 0.0505])
RIGHT_EYE = LEFT_EYE * np.array([-1.0, 1.0, 1.0])
JOINTS = np.array(
    [
        [0.0, -0.100, -0.020],  # root: base of the neck stub
        [0.0, -0.030, -0.025],  # neck: top of the spine, behind the jaw
        [0.0, -0.006, -0.008],  # jaw: between the temporomandibular joints, below the ears
        LEFT_EYE,
        RIGHT_EYE,
    ]
)

SHAPE_NAMES = (
    "head_size",
    "head_width",
    "face_length",
    "head_depth",
    "nose_size",
    "nose_projection",
    "jaw_width",
    "chin_projection",
    "cheekbone_width",
    "forehead_slope",
    "eye_spacing",
    "lip_fullness",
    "mouth_width",
    "brow_ridge",
    "ear_size",
    "neck_width",
    "crown_height",
    "cheek_fullness",
    "nose_width",
    "face_asymmetry",
)
EXPRESSION_NAMES = (
    "smile",
    "brow_raise",
    "cheek_puff",
    "lip_pucker",
    "brow_lowerer",
    "upper_lip_raise",
    "eyes_close",
    "mouth_stretch",
    "lip_press",
    "nose_wrinkle",
    "mouth_sideways",
    "lip_corner_depressor",
    "chin_raise",
    "lower_lip_depressor",
    "inner_brow_raise",
    "nostril_flare",
)


# Geometry constants (metres); the underscored ones are private to this package.

STAR_CENTER = np.array([0.0, 0.010, -0.030])  # every skin vertex is visible from here
_R_MAX = 0.30  # rays are searched up to this distance from the star centre

_MOUTH_Y = -0.0455  # lip seam height at the midline
_MOUTH_W = 0.0240  # half width of the mouth (corner x)
_BAND_HW = 0.0012  # half height of the lip-seam band at the midline
_BAND_ROWS = (1.0, 0.5, 0.0, -0.5, -1.0)  # band rows, +1 = upper lip's inner edge

_LID_RADIUS = EYE_RADIUS + 0.0016  # lids lie on this sphere about the eye centre
_SOCKET_RADIUS = EYE_RADIUS - 0.0018  # skin inside the eye opening, behind the eyeball
_ALMOND_W = 0.0125  # half width of the eye opening
_ALMOND_UP = 0.0046  # height of the upper lid margin above the eye centre
_ALMOND_LO = 0.0038  # depth of the lower lid margin below the eye centre
_ALMOND_TILT = 0.05  # outer corner higher than the inner one (dy/dx)
_EYE_PLANE = 0.011  # eye-local coordinates are taken on the plane z = eye z + this
_MARGIN = 0.00035  # half width of the lid-margin wall (inside: behind the eye, outside: lid)
