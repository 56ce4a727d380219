# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""A second, independent writer of the avatar asset format (avatar.glb), for tests.

`tiny_avatar()` builds a small scene by hand, with numpy only - a coloured box "room" and a
skinned, morph-targeted sphere "head" (joints root, neck, jaw; a non-trivial rest rotation of
the neck; an off-centre principal point in the default camera) - and `glb_bytes()` writes it
following the avatar asset contract directly from the glTF 2.0 specification, sharing no code
with `flamenerf.export.gltf`. The viewer, the Python preview, the reader and the Khronos
validator are all run on it, so a convention shared by mistake between the project's writer
and its readers shows up as a disagreement here.

Conventions written out: quaternions (x, y, z, w); matrices column-major (`M.T.ravel()`);
cameras OpenGL (looking down -Z, +Y up); pixel (u, v) from the top-left corner.
"""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np

ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
FLOAT, UNSIGNED_BYTE, UNSIGNED_INT = 5126, 5121, 5125


# --------------------------------------------------------------------------------------------
# Small rotation maths (independent of scipy and of the project)


def quat_about(axis, angle: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation by `angle` radians about `axis`."""
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    return np.array([*(np.sin(angle / 2) * axis), np.cos(angle / 2)])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (x, y, z, w) quaternions (apply b first, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a unit (x, y, z, w) quaternion."""
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def trs(translation, rotation) -> np.ndarray:
    """4x4 matrix of a translation (3,) and an (x, y, z, w) rotation."""
    m = np.eye(4)
    m[:3, :3] = quat_matrix(rotation)
    m[:3, 3] = translation
    return m


def look_at(eye, target, up) -> np.ndarray:
    """4x4 world_from_camera (OpenGL: the camera looks down its -Z, +Y up)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, eye
    return m


def projection(fx, fy, cx, cy, width, height, near, far) -> np.ndarray:
    """4x4 OpenGL clip matrix of pinhole intrinsics (pixels, origin top-left): a camera point
    (x, y, z), z < 0, lands on pixel u = cx + fx x / -z, v = cy - fy y / -z."""
    return np.array(
        [
            [2 * fx / width, 0, 1 - 2 * cx / width, 0],
            [0, 2 * fy / height, 2 * cy / height - 1, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ]
    )


def column_major(m: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(m, np.float64).T.ravel()]


# --------------------------------------------------------------------------------------------
# The tiny scene


@dataclasses.dataclass
class TinyAvatar:
    """The scene, in world units (metres), as plain arrays.

    room_positions (R, 3), room_colours (R, 3) linear, room_triangles (T, 3);
    head_positions (H, 3), head_colours (H, 3) linear, head_triangles (S, 3),
    head_joints (H, 4) uint8, head_weights (H, 4) rows summing to 1,
    expression_deltas (E, H, 3) per unit coefficient;
    neck_translation (3,) and neck_rotation (4,) (rest, local = world: root is the identity),
    jaw_translation (3,) (rest, local to the neck); extras: asset.extras.flamenerf;
    animation: None or (name, times (K,), weights (K, E), neck (K, 4), jaw (K, 4)).
    """

    room_positions: np.ndarray
    room_colours: np.ndarray
    room_triangles: np.ndarray
    head_positions: np.ndarray
    head_colours: np.ndarray
    head_triangles: np.ndarray
    head_joints: np.ndarray
    head_weights: np.ndarray
    expression_deltas: np.ndarray
    neck_translation: np.ndarray
    neck_rotation: np.ndarray
    jaw_translation: np.ndarray
    extras: dict
    animation: tuple | None = None

    def rest_world(self) -> np.ndarray:
        """(3, 4, 4) rest world matrices of root, neck, jaw."""
        neck = trs(self.neck_translation, self.neck_rotation)
        jaw = neck @ trs(self.jaw_translation, np.array([0.0, 0, 0, 1]))
        return np.stack([np.eye(4), neck, jaw])

    def posed(
        self, expression, jaw: float, yaw: float, pitch: float, *, order: str = "contract"
    ) -> np.ndarray:
        """(H, 3) world head vertices for the parameters: the contract's pose maths in numpy
        (morphs, then linear blend skinning). order="world" applies yaw and pitch before the
        rest rotation (R_y R_x rest instead of rest R_y R_x): the mistake tests must catch."""
        rest = self.rest_world()
        turn = quat_mul(quat_about([0, 1, 0], yaw), quat_about([1, 0, 0], pitch))
        if order == "contract":
            neck_rot = quat_mul(self.neck_rotation, turn)
        elif order == "world":
            neck_rot = quat_mul(turn, self.neck_rotation)
        else:
            raise ValueError(f"order: found {order!r}, expected 'contract' or 'world'")
        neck = trs(self.neck_translation, neck_rot)
        jaw_m = neck @ trs(self.jaw_translation, quat_about([1, 0, 0], jaw))
        world = np.stack([np.eye(4), neck, jaw_m]) @ np.linalg.inv(rest)
        coeff = np.zeros(len(self.expression_deltas))
        coeff[: len(expression)] = expression
        v = self.head_positions + np.einsum("e,evc->vc", coeff, self.expression_deltas)
        vh = np.concatenate([v, np.ones((len(v), 1))], axis=1)
        per_joint = np.einsum("jab,vb->vja", world, vh)[..., :3]  # (H, 3, 3)
        w = np.zeros((len(v), 3))
        for k in range(4):
            np.add.at(w, (np.arange(len(v)), self.head_joints[:, k]), self.head_weights[:, k])
        return np.einsum("vj,vja->va", w, per_joint)


def _box(lo, hi, face_colours, cells: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An axis-aligned box, each face a grid of cells x cells quads (colour gradients).

    Fine cells keep every triangle that crosses the camera's near plane out of view: the Python
    preview drops such triangles (its rasteriser does not clip), three.js clips them."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    faces = [  # (fixed axis, side, the two running axes)
        (0, 0, 1, 2), (0, 1, 1, 2), (1, 0, 0, 2), (1, 1, 0, 2), (2, 0, 0, 1), (2, 1, 0, 1),
    ]  # fmt: skip
    t = np.linspace(0, 1, cells + 1)
    positions, colours, triangles = [], [], []
    for f, (axis, side, a, b) in enumerate(faces):
        base = len(positions)
        for i in t:
            for j in t:
                point = lo.copy()
                point[axis] = (lo if side == 0 else hi)[axis]
                point[a] = lo[a] + i * (hi[a] - lo[a])
                point[b] = lo[b] + j * (hi[b] - lo[b])
                positions.append(point)
                shade = 0.7 + 0.2 * i + 0.1 * np.cos(6 * j)
                colours.append(np.clip(np.asarray(face_colours[f]) * shade, 0, 1))
        n = cells + 1
        for i in range(cells):
            for j in range(cells):
                q = base + i * n + j
                triangles += [(q, q + n, q + n + 1), (q, q + n + 1, q + 1)]
    return np.array(positions), np.array(colours), np.array(triangles)


def _sphere(centre, radius, rings: int, segments: int):
    """A UV sphere: (V, 3) positions, (T, 3) triangles."""
    positions = []
    for i in range(rings + 1):
        theta = np.pi * i / rings
        for j in range(segments):
            phi = 2 * np.pi * j / segments
            positions.append(
                [np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)]
            )
    triangles = []
    for i in range(rings):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = a + segments, b + segments
            if i > 0:
                triangles.append((a, c, b))
            if i < rings - 1:
                triangles.append((b, c, d))
    return np.asarray(centre) + radius * np.array(positions), np.array(triangles)


# The world frame's origin is away from the head, as in a capture (a viewer that orbits around
# the origin instead of the head shows it).
ORIGIN = np.array([0.4, 1.3, -0.7])


def tiny_avatar(*, expressions: int = 3, animation: bool = True) -> TinyAvatar:
    """The hand-made test avatar (about 300 head and 500 room vertices), centred on ORIGIN."""
    room_p, room_c, room_t = _box(
        ORIGIN + [-0.8, -0.5, -0.9],
        ORIGIN + [0.8, 0.9, 0.9],
        [[0.8, 0.2, 0.1], [0.1, 0.6, 0.2], [0.3, 0.3, 0.3], [0.9, 0.9, 0.7], [0.1, 0.2, 0.8],
         [0.5, 0.1, 0.6]],
    )  # fmt: skip
    centre = ORIGIN + [0.0, 0.05, 0.0]
    radius = 0.09
    head_p, head_t = _sphere(centre, radius, rings=14, segments=20)
    unit = (head_p - centre) / radius
    # Colours: a skin tone with bands in latitude and longitude (so motion shows).
    bands = 0.5 + 0.5 * np.sign(np.sin(6 * np.arctan2(unit[:, 0], unit[:, 2])))
    head_c = np.stack(
        [0.55 + 0.35 * unit[:, 1] ** 2, 0.25 + 0.2 * bands, 0.15 + 0.3 * (unit[:, 2] > 0)],
        axis=1,
    ).clip(0, 1)
    # The FLAME frame is tilted in the world: rest rotation of the neck.
    neck_rotation = quat_mul(quat_about([0, 0, 1], 0.12), quat_about([1, 0, 0], -0.25))
    neck_translation = ORIGIN + [0.0, -0.03, -0.01]
    jaw_translation = np.array([0.0, 0.04, 0.015])  # in the FLAME frame, from the neck
    # Skin weights: root below the head (the fade), jaw in the lower front, neck elsewhere.
    lower = np.clip((-unit[:, 1] - 0.55) / 0.35, 0, 1)
    jaw = np.clip((-unit[:, 1] - 0.05) / 0.4, 0, 1) * np.clip(unit[:, 2] / 0.3, 0, 1) * (1 - lower)
    weights = np.stack([lower, 1 - lower - jaw, jaw, np.zeros_like(jaw)], axis=1).astype(np.float32)
    # Rows sum to 1 in float32 with no negative weight (the validator's ACCESSOR_WEIGHTS_NEGATIVE):
    # the largest weight takes the rounding.
    rows, big = np.arange(len(weights)), weights.argmax(1)
    weights[rows, big] = 0
    weights[rows, big] = np.float32(1) - weights.sum(1, dtype=np.float32)
    # A slot of zero weight names joint 0 (the validator's ACCESSOR_JOINTS_USED_ZERO_WEIGHT).
    joints = np.where(weights > 0, np.array([0, 1, 2, 0], np.uint8), 0).astype(np.uint8)
    # Expression targets (per unit coefficient, metres): smooth, distinct displacements.
    rng = np.random.default_rng(0)
    deltas = []
    for e in range(expressions):
        if e == 0:  # "smile": the front widens
            d = np.stack([unit[:, 0], 0.3 * unit[:, 1], 0 * unit[:, 2]], 1) * (unit[:, 2:3] > 0)
        elif e == 1:  # "brows": the upper front moves up
            d = np.stack([0 * unit[:, 0], np.ones(len(unit)), 0.2 * unit[:, 2]], 1)
            d *= (np.clip(unit[:, 1], 0, 1) * np.clip(unit[:, 2], 0, 1))[:, None]
        else:
            a = rng.normal(size=(3, 3))
            d = np.tanh(unit @ a) * 0.5
        deltas.append(0.02 * d)
    deltas = np.array(deltas)
    width = height = 64
    camera = look_at(ORIGIN + [0.12, 0.1, 0.55], ORIGIN + [0.0, 0.04, 0.0], [0.05, 1.0, 0.0])
    near, far = 0.05, 5.0
    proj = projection(1.5 * width, 1.5 * height, 35.5, 29.0, width, height, near, far)
    extras = {
        "version": 1,
        "expression_names": [f"expression_{e:02d}" for e in range(expressions)],
        "expression_ranges": [[-3.0, 3.0]] * expressions,
        "jaw_range": [0.0, 0.5],
        "yaw_range": [-0.8, 0.8],
        "pitch_range": [-0.6, 0.6],
        "default_camera": {
            "world_from_camera": column_major(camera),
            "projection": column_major(proj),
            "width": width,
            "height": height,
            "frame_id": "tiny_000",
        },
        "near": near,
        "far": far,
    }
    anim = None
    if animation:
        times = np.array([0.0, 0.5, 1.0])
        w = np.zeros((3, expressions))
        w[1, 0] = 2.0
        neck = np.stack(
            [
                quat_mul(
                    quat_mul(neck_rotation, quat_about([0, 1, 0], y)), quat_about([1, 0, 0], p)
                )
                for y, p in [(0, 0), (0.4, -0.2), (0, 0)]
            ]
        )
        jaws = np.stack([quat_about([1, 0, 0], a) for a in (0, 0.3, 0)])
        anim = ("tiny_wave", times, w, neck, jaws)
    return TinyAvatar(
        room_positions=room_p,
        room_colours=room_c,
        room_triangles=room_t,
        head_positions=head_p,
        head_colours=head_c,
        head_triangles=head_t,
        head_joints=joints,
        head_weights=weights,
        expression_deltas=deltas,
        neck_translation=neck_translation,
        neck_rotation=neck_rotation,
        jaw_translation=jaw_translation,
        extras=extras,
        animation=anim,
    )


# --------------------------------------------------------------------------------------------
# The glb writer


class _Buffer:
    """The single binary buffer, its bufferViews and accessors."""

    def __init__(self):
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array, component, kind, *, target=None, min_max=False, normalized=False):
        array = np.ascontiguousarray(array)
        while len(self.data) % 4:
            self.data.append(0)
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": array.nbytes}
        if target is not None:
            view["target"] = target
        self.data += array.tobytes()
        self.views.append(view)
        count = array.shape[0]
        accessor = {
            "bufferView": len(self.views) - 1,
            "componentType": component,
            "count": int(count),
            "type": kind,
        }
        if normalized:
            accessor["normalized"] = True
        if min_max:
            flat = array.reshape(count, -1)
            accessor["min"] = [float(x) for x in flat.min(0)]
            accessor["max"] = [float(x) for x in flat.max(0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def glb_bytes(avatar: TinyAvatar) -> bytes:
    """avatar.glb for the scene, written from the glTF 2.0 specification and the contract."""
    buf = _Buffer()
    f32 = np.float32

    def vec3(a, **kw):
        return buf.add(np.asarray(a, f32), FLOAT, "VEC3", target=ARRAY_BUFFER, **kw)

    def indices(t):
        return buf.add(np.asarray(t, np.uint32).ravel(), UNSIGNED_INT, "SCALAR",
                       target=ELEMENT_ARRAY_BUFFER)  # fmt: skip

    room = {
        "name": "room",
        "primitives": [
            {
                "attributes": {
                    "POSITION": vec3(avatar.room_positions, min_max=True),
                    "COLOR_0": vec3(avatar.room_colours),
                },
                "indices": indices(avatar.room_triangles),
                "material": 0,
            }
        ],
    }
    targets = [{"POSITION": vec3(d, min_max=True)} for d in avatar.expression_deltas]
    names = [f"expression_{e:02d}" for e in range(len(targets))]
    head = {
        "name": "head",
        "primitives": [
            {
                "attributes": {
                    "POSITION": vec3(avatar.head_positions, min_max=True),
                    "COLOR_0": vec3(avatar.head_colours),
                    "JOINTS_0": buf.add(
                        avatar.head_joints.astype(np.uint8),
                        UNSIGNED_BYTE,
                        "VEC4",
                        target=ARRAY_BUFFER,
                    ),  # fmt: skip
                    "WEIGHTS_0": buf.add(
                        avatar.head_weights.astype(f32), FLOAT, "VEC4", target=ARRAY_BUFFER
                    ),  # fmt: skip
                },
                "indices": indices(avatar.head_triangles),
                "material": 0,
                "targets": targets,
            }
        ],
        "weights": [0.0] * len(targets),
        "extras": {"targetNames": names},
    }
    inverse_bind = np.stack([np.linalg.inv(m).T for m in avatar.rest_world()]).astype(f32)
    skin = {
        "name": "flame",
        "joints": [2, 3, 4],
        "inverseBindMatrices": buf.add(inverse_bind, FLOAT, "MAT4"),
        "skeleton": 2,
    }
    nodes = [
        {"name": "room", "mesh": 0},
        {"name": "head", "mesh": 1, "skin": 0},
        {"name": "root", "children": [3]},
        {
            "name": "neck",
            "translation": [float(x) for x in avatar.neck_translation],
            "rotation": [float(x) for x in avatar.neck_rotation],
            "children": [4],
        },
        {"name": "jaw", "translation": [float(x) for x in avatar.jaw_translation]},
    ]
    gltf = {
        "asset": {
            "version": "2.0",
            "generator": "flamenerf tests/glb_util.py (independent test writer)",
            "extras": {"flamenerf": avatar.extras},
        },
        "extensionsUsed": ["KHR_materials_unlit"],
        "scene": 0,
        "scenes": [{"name": "avatar", "nodes": [0, 1, 2]}],
        "nodes": nodes,
        "meshes": [room, head],
        "skins": [skin],
        "materials": [
            {
                "name": "unlit",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                    "metallicFactor": 0.0,
                },
                "extensions": {"KHR_materials_unlit": {}},
                "doubleSided": True,
            }
        ],
    }
    if avatar.animation is not None:
        name, times, weights, neck, jaw = avatar.animation
        t = buf.add(np.asarray(times, f32), FLOAT, "SCALAR", min_max=True)
        outputs = [
            buf.add(np.asarray(weights, f32).ravel(), FLOAT, "SCALAR"),
            buf.add(np.asarray(neck, f32), FLOAT, "VEC4"),
            buf.add(np.asarray(jaw, f32), FLOAT, "VEC4"),
        ]
        gltf["animations"] = [
            {
                "name": name,
                "samplers": [{"input": t, "output": o, "interpolation": "LINEAR"} for o in outputs],
                "channels": [
                    {"sampler": 0, "target": {"node": 1, "path": "weights"}},
                    {"sampler": 1, "target": {"node": 3, "path": "rotation"}},
                    {"sampler": 2, "target": {"node": 4, "path": "rotation"}},
                ],
            }
        ]
    while len(buf.data) % 4:
        buf.data.append(0)
    gltf["buffers"] = [{"byteLength": len(buf.data)}]
    gltf["bufferViews"] = buf.views
    gltf["accessors"] = buf.accessors
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(buf.data)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(text), b"JSON"),
            text,
            struct.pack("<I4s", len(buf.data), b"BIN\0"),
            bytes(buf.data),
        ]
    )


def camera_arrays(avatar: TinyAvatar) -> tuple[np.ndarray, np.ndarray]:
    """The default camera's (world_from_camera, projection) as 4x4 arrays."""
    cam = avatar.extras["default_camera"]
    return (
        np.asarray(cam["world_from_camera"], np.float64).reshape(4, 4).T,
        np.asarray(cam["projection"], np.float64).reshape(4, 4).T,
    )


def as_export_asset(avatar: TinyAvatar):
    """The same scene as the project's `flamenerf.export.gltf.Asset` (for `write_glb` and the
    preview): the one bridge between this module and the project's writer."""
    from flamenerf.export import gltf, rig

    f32 = np.float32
    room = gltf.Mesh(
        avatar.room_positions.astype(f32),
        avatar.room_colours.astype(f32),
        avatar.room_triangles.astype(np.uint32),
    )
    head = gltf.SkinnedMesh(
        avatar.head_positions.astype(f32),
        avatar.head_colours.astype(f32),
        avatar.head_triangles.astype(np.uint32),
        avatar.head_joints.astype(np.uint8),
        avatar.head_weights.astype(f32),
        avatar.expression_deltas.astype(f32),
    )
    skeleton = rig.Skeleton(avatar.neck_translation, avatar.neck_rotation, avatar.jaw_translation)
    info = {k: v for k, v in avatar.extras.items() if k not in ("version", "expression_names")}
    animations = []
    if avatar.animation is not None:
        name, times, weights, neck, jaw = avatar.animation
        animations.append(
            gltf.Animation(
                name, times.astype(f32), weights.astype(f32), neck.astype(f32), jaw.astype(f32)
            )
        )
    inverse_bind = np.linalg.inv(avatar.rest_world()).astype(f32)
    return gltf.Asset(room, head, skeleton, inverse_bind, info, animations)
