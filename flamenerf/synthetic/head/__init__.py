# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The procedural FLAME-format head: the embedded default model (no licence needed).

The real FLAME model cannot be redistributed, so flamenerf builds, deterministically and
without randomness, a head in the FLAME file layout (`docs/capture-format.md`, "FLAME model
file") that `flamenerf.geometry.flame.load_model` reads like the official one:

    path = default_head_path()       # $FLAMENERF_CACHE/head/procedural_head_v1.npz, built once
    model = flame.load_model(path)
    arrays = build_head()            # the same arrays as a dict

Geometry (metres; y up, the face looks along +z, the origin inside the head just above the jaw
joint, between the ears, FLAME-like; about 0.17 m across the ears, 0.30 m from the neck stub's
base to the crown). The skin is one closed surface that is star-shaped about `STAR_CENTER`: every
vertex is `STAR_CENTER + r(d) d` for a unit direction d. The radius r(d) is that of a smooth
signed-distance "base head" (cranium, face, mandible, chin and a neck stub, blended with a
smooth minimum) plus height fields in face coordinates for the nose, brow ridge, cheekbones,
lips, chin, ears and hair; around each eye the skin follows a sphere just in front of the
eyeball (the lids) and, inside the almond-shaped opening, a sphere just behind it, so the
separate eyeball shows through. The directions are a graded point set relaxed with DistMesh
(Persson and Strang 2004) on the unit sphere and triangulated by their convex hull, which makes
the surface a closed, consistently oriented 2-manifold whose every triangle faces away from
the star centre. Rows of fixed directions resolve the lid margins and the lip seam: the seam
is a band of `MOUTH_INTERIOR` vertices whose jaw weights go from 0 (upper lip) to 1 (lower
lip), so opening the jaw stretches it into a dark mouth opening, deepened by a jaw pose
corrective. The two eyeballs are separate closed UV spheres (pupil at the front pole),
skinned rigidly to the eye joints.

Bases. 20 identity components (`SHAPE_NAMES`: head size and proportions, nose, jaw, chin,
lips, ...) and 16 expression components (`EXPRESSION_NAMES`; the first six are semantic:
smile, brow raise, cheek puff, lip pucker, brow lowerer, upper-lip raise). Each is a smooth,
localised displacement field; a coefficient of 1 moves vertices by a few millimetres up to
about 1 cm, and over -1..2 the skin stays star-shaped (so it never intersects itself); the
exception is `eyes_close`, whose 1 is closed and which is meant for about -0.5 (wide-eyed)
to 1. Around the eyes displacements blend into the eyeball's own (rigid) motion so the lids
never cut into it. The jaw (positive x rotation opens the mouth, 0.35 rad is wide open) and
the eyes are FLAME joints as usual.

Vertex labels (`region`, int8; the names are in `REGION_NAMES`) tell a renderer how to
texture each vertex: `SKIN`, `LIPS`, `BROW`, `SCLERA`, `IRIS`, `PUPIL`, `HAIR`, `NECK`,
`MOUTH_INTERIOR`, `EYELID` (upper lid), `EYE_SOCKET` (the row of skin just inside the eye
opening, behind the eyeball: the strip at the lid margin reads as lashes; the skin deeper
inside is labelled `SCLERA`, so wide-open lids show white), `NOSTRIL`, `EAR`.

CLI: `python -m flamenerf.synthetic.head --out head.npz [--plot head.png]`.

Modules (`__all__` below is the public API, re-exported here; the rest is private by name):

    constants    counts, region labels, joints, basis names, private geometry constants
    helpers      small numeric helpers (smoothstep, Gaussians, smooth minimum, ellipsoid)
    base_head    the base head's signed distance and the radial function
    features     face coordinates and the height fields (nose, brows, lips, ears, hair)
    eyes         the almond-shaped eye opening and the lids
    surface      the skin along unit directions (base + features + eyes)
    mesh         graded directions relaxed on the sphere, convex-hull triangles, eyeballs
    assembly     skin + eyeballs in one mesh, region labels
    skinning     LBS weights, joint regressor, pose correctives
    bases        identity and expression displacement fields
    landmarks    the 51 inner iBUG landmarks embedded in the skin
    model_file   `build_head`, `write_npz`, `write_head`, `default_head_path`
    pictures     `render_image`, `plot_head`
    cli          `main`, the command line (`__main__` runs it)
"""

from flamenerf.synthetic.head.cli import main
from flamenerf.synthetic.head.constants import (
    BROW,
    EAR,
    EXPRESSION_NAMES,
    EYE_RADIUS,
    EYE_SOCKET,
    EYELID,
    HAIR,
    IRIS,
    JOINT_NAMES,
    JOINTS,
    LEFT_EYE,
    LIPS,
    MOUTH_INTERIOR,
    NECK,
    NOSTRIL,
    NUM_EXPRESSION,
    NUM_SHAPE,
    PARENTS,
    PUPIL,
    REGION_NAMES,
    RIGHT_EYE,
    SCLERA,
    SHAPE_NAMES,
    SKIN,
    STAR_CENTER,
    VERSION,
)
from flamenerf.synthetic.head.model_file import (
    build_head,
    default_head_path,
    write_head,
    write_npz,
)
from flamenerf.synthetic.head.pictures import plot_head, render_image

__all__ = [
    "BROW",
    "EAR",
    "EXPRESSION_NAMES",
    "EYE_RADIUS",
    "EYE_SOCKET",
    "EYELID",
    "HAIR",
    "IRIS",
    "JOINT_NAMES",
    "JOINTS",
    "LEFT_EYE",
    "LIPS",
    "MOUTH_INTERIOR",
    "NECK",
    "NOSTRIL",
    "NUM_EXPRESSION",
    "NUM_SHAPE",
    "PARENTS",
    "PUPIL",
    "REGION_NAMES",
    "RIGHT_EYE",
    "SCLERA",
    "SHAPE_NAMES",
    "SKIN",
    "STAR_CENTER",
    "VERSION",
    "build_head",
    "default_head_path",
    "main",
    "plot_head",
    "render_image",
    "write_head",
    "write_npz",
]
