# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Shared by the tests of flamenerf.export: a tiny hand-made avatar asset, the contract's
pose maths written out independently (quaternions by hand, no scipy, no flamenerf.export.rig),
an analytic soft sphere standing in for the canonical field, rings of cameras around it, and
the export of a tiny trained experiment (`tiny_export`).
"""

import json
from pathlib import Path

import numpy as np

from flamenerf.export import gltf, rig
from flamenerf.geometry.camera import Camera, look_at_rotation

NUM_EXPRESSION = 2


def quaternion_matrix(q):
    """3x3 rotation of a unit quaternion (x, y, z, w), by the textbook formula."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def affine(rotation, translation):
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def contract_pose(asset, expression, jaw, yaw, pitch):
    """(room, head) world vertices by the contract's text, written out by hand."""
    skel = asset.skeleton
    rest = quaternion_matrix(skel.neck_rotation)
    neck = affine(rest @ rotation_y(yaw) @ rotation_x(pitch), skel.neck_translation)
    jaw_world = neck @ affine(rotation_x(jaw), skel.jaw_translation)
    worlds = [np.eye(4), neck, jaw_world]
    head = asset.head
    out = np.zeros((len(head.positions), 3))
    for v in range(len(head.positions)):
        p = head.positions[v].astype(np.float64)
        for e in range(asset.num_expression):
            p = p + expression[e] * head.targets[e, v]
        for k in range(4):
            j = int(head.joints[v, k])
            m = worlds[j] @ asset.inverse_bind[j].astype(np.float64)
            out[v] += head.weights[v, k] * (m @ np.append(p, 1.0))[:3]
    return asset.room.positions.astype(np.float64), out


def tiny_asset(animations=True):
    """A quad of room behind a skinned, morphed little pyramid; 2 expressions (one target
    all zeros, one with zero and non-zero rows), a tilted FLAME frame."""
    room = gltf.Mesh(
        positions=np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1]], np.float32),
        colours=np.array(
            [[0.2, 0.1, 0.0], [0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.0, 0.0, 1.0]], np.float32
        ),
        faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
    )
    positions = np.array(
        [[-0.2, -0.2, 0.0], [0.2, -0.2, 0.0], [0.2, 0.2, 0.0], [-0.2, 0.2, 0.0], [0.0, 0.0, 0.3]],
        np.float32,
    )
    weights = np.array(
        [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.25, 0.75, 0], [0, 1, 0, 0], [0.1, 0.3, 0.6, 0]],
        np.float32,
    )
    targets = np.zeros((NUM_EXPRESSION, 5, 3), np.float32)
    targets[1, 2] = [0.0, 0.05, 0.01]
    targets[1, 4] = [0.02, 0.0, -0.03]
    head = gltf.SkinnedMesh(
        positions=positions,
        colours=np.array(
            [[1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0.3, 0.6, 0.9]], np.float32
        ),
        faces=np.array(
            [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4], [0, 2, 1], [0, 3, 2]], np.uint32
        ),
        joints=np.where(weights > 0, np.array([0, 1, 2, 0]), 0).astype(np.uint8),
        weights=weights,
        targets=targets,
    )
    tilt = np.array([np.sin(0.1), 0.0, 0.0, np.cos(0.1)])  # 0.2 rad about x
    skel = rig.Skeleton(
        neck_translation=np.array([0.0, -0.1, 0.05]),
        neck_rotation=tilt,
        jaw_translation=np.array([0.0, 0.02, 0.04]),
    )
    info = {
        "expression_ranges": [[-1.0, 1.0], [-2.0, 2.0]],
        "jaw_range": [0.0, 0.4],
        "yaw_range": [-0.5, 0.5],
        "pitch_range": [-0.5, 0.5],
        "default_camera": {
            "world_from_camera": np.eye(4).reshape(-1).tolist(),
            "projection": np.eye(4).reshape(-1).tolist(),
            "width": 16,
            "height": 12,
            "frame_id": "t00",
        },
        "near": 0.05,
        "far": 10.0,
    }
    anims = []
    if animations:
        anims.append(
            gltf.Animation(
                name="drive",
                times=np.array([0.0, 0.5, 1.0], np.float32),
                expression=np.array([[0, 0], [0.5, -1], [1, 2]], np.float32),
                neck=np.array(
                    [rig.neck_rotation(tilt, y, p) for y, p in [(0, 0), (0.2, 0), (0, -0.1)]],
                    np.float32,
                ),
                jaw=np.array([rig.jaw_rotation(j) for j in (0.0, 0.1, 0.3)], np.float32),
            )
        )
    return gltf.Asset(
        room=room,
        head=head,
        skeleton=skel,
        inverse_bind=skel.inverse_bind().astype(np.float32),
        info=info,
        animations=anims,
    )


class SoftSphere:
    """A duck-typed canonical field (`flamenerf.export.bake.CanonicalField`'s methods): a soft
    sphere (density `sigma` inside, ramping to 0 over `ramp` about `radius`; colour 0.5 + 0.5
    x the outward direction), optionally a wall (density 50 for z < wall_z), rendered by
    dense uniform sampling: an independent reference renderer."""

    def __init__(
        self,
        centre=(0.0, 0.0, 0.0),
        radius=0.5,
        sigma=60.0,
        ramp=0.02,
        wall_z=None,
        wall_colour=(0.2, 0.3, 0.9),
    ):
        self.centre, self.radius = np.asarray(centre, np.float64), radius
        self.sigma, self.ramp = sigma, ramp
        self.wall_z, self.wall_colour = wall_z, np.asarray(wall_colour, np.float64)
        self.calls = 0

    def _fields(self, points):
        points = np.asarray(points, np.float64).reshape(-1, 3)
        offset = points - self.centre
        r = np.linalg.norm(offset, axis=-1)
        sigma = self.sigma * np.clip((self.radius + self.ramp / 2 - r) / self.ramp, 0, 1)
        colour = 0.5 + 0.5 * offset / np.maximum(r, 1e-9)[:, None]
        if self.wall_z is not None:
            wall = points[:, 2] < self.wall_z
            sigma = sigma + 50.0 * wall
            colour = np.where(wall[:, None], self.wall_colour, colour)
        return colour, sigma

    def density(self, points):
        self.calls += 1
        return self._fields(points)[1].astype(np.float32)

    def evaluate(self, points, viewdirs=None):
        colour, sigma = self._fields(points)
        return colour.astype(np.float32), sigma.astype(np.float32)

    def _composite(self, origins, directions, z, exclude=None):
        points = origins[:, None] + z[..., None] * directions[:, None]
        colour, sigma = self._fields(points.reshape(-1, 3))
        sigma = sigma.reshape(z.shape)
        if exclude is not None:
            inside = np.all((points >= exclude[0]) & (points <= exclude[1]), axis=-1)
            sigma = np.where(inside, 0.0, sigma)
        delta = np.diff(z, axis=1, append=z[:, -1:])
        optical = np.concatenate([np.zeros((len(z), 1)), np.cumsum(sigma * delta, 1)[:, :-1]], 1)
        weights = (1 - np.exp(-sigma * delta)) * np.exp(-optical)
        return weights, colour.reshape(z.shape + (3,))

    def weights(self, origins, directions, z_vals, desc=None, show_progress=False):
        return self._composite(
            np.asarray(origins), np.asarray(directions), np.asarray(z_vals, np.float64)
        )[0]

    def render(
        self,
        origins,
        directions,
        near,
        far,
        samples=64,
        desc=None,
        show_progress=False,
        exclude=None,
    ):
        far = np.broadcast_to(np.asarray(far, np.float64), (len(origins),))
        z = near + np.linspace(0, 1, 2048)[None] * (far[:, None] - near)
        weights, colour = self._composite(np.asarray(origins), np.asarray(directions), z, exclude)
        rgb = np.einsum("ns,nsc->nc", weights, colour)
        return rgb.astype(np.float32), weights.sum(axis=1).astype(np.float32)


def ring_cameras(count=10, distance=3.0, size=24):
    """`count` cameras around the origin at `distance`, alternately above and below it."""
    cameras = []
    for k in range(count):
        azimuth = 2 * np.pi * k / count
        elevation = 0.5 if k % 2 else -0.5
        position = distance * np.array(
            [
                np.sin(azimuth) * np.cos(elevation),
                np.sin(elevation),
                np.cos(azimuth) * np.cos(elevation),
            ]
        )
        cameras.append(
            Camera(
                orientation=look_at_rotation(position, np.zeros(3), np.array([0, 1.0, 0])),
                position=position,
                focal_length=size * 1.2,
                principal_point=[size / 2, size / 2],
                image_size=(size, size),
            )
        )
    return cameras


def front_cameras(size=24):
    """Cameras in front of a wall at z < 0 (at z = 3), looking at the origin."""
    cameras = []
    for x, y in [(0, 0), (-0.6, 0.1), (0.6, -0.1), (0.2, 0.4), (-0.2, -0.4)]:
        position = np.array([x, y, 3.0])
        cameras.append(
            Camera(
                orientation=look_at_rotation(position, np.zeros(3), np.array([0, 1.0, 0])),
                position=position,
                focal_length=size * 1.2,
                principal_point=[size / 2, size / 2],
                image_size=(size, size),
            )
        )
    return cameras


# A driving file with everything FLAME's head pose holds: global rotation (with roll) about the
# root joint, a neck rotation, a translation (metres, FLAME space).
HEAD_MOTION = {
    "expression": [1.0, -0.5],
    "jaw_pose": [0.15, 0.0, 0.0],
    "global_pose": [0.05, 0.2, 0.1],
    "neck_pose": [-0.1, 0.05, 0.15],
    "translation": [0.01, -0.005, 0.02],
}
_EXPORTS: dict[tuple[int, bool], Path] = {}
# The head sphere's bake: small frustum grids (the defaults are sized for real captures).
SPHERE_BAKE = dict(
    resolution=20,
    body_resolution=0,
    head_resolution=24,
    views=4,
    view_pixels=24,
    view_samples=64,
    colour_samples=16,
    backdrop_pixels=16,
)


def head_sphere(exp):
    """A soft sphere through the tiny FLAME octahedron's vertices (its head), in front of a
    wall: a canonical field with a head to rig (the 20-step NeRF has none)."""
    capture = exp.capture
    rest = rig.flame_rest(capture.subject, capture.flame_params["t00"], 3)
    centre, _ = rest.ball()
    radius = float(np.linalg.norm(rest.vertices - centre, axis=1).mean())
    return SoftSphere(centre=centre, radius=radius, wall_z=-1.0)


def tiny_export(tmp_path_factory, head: bool = False) -> Path:
    """DIR written by `pipeline.export` for test_eval's tiny trained experiment, with one
    driving animation "driving" of three files (two expressions and jaws, then HEAD_MOTION);
    made once per session and kind (test_gltf_validator.py, test_viewer_browser.py,
    test_blender.py).

    head False: the trained field, coarsely baked (its 20 steps leave no head: the head mesh
    is empty, everything is room); True: the canonical field replaced by `head_sphere`, baked
    with SPHERE_BAKE: a rigged head with morph targets.
    """
    key = (id(tmp_path_factory), head)
    if key not in _EXPORTS:
        import pytest
        import views_util
        from test_eval import tiny_experiment

        from flamenerf.export import bake, field, pipeline
        from flamenerf.training import experiment

        folder = tiny_experiment(tmp_path_factory)
        driving = views_util.write_driving(tmp_path_factory.mktemp("tiny") / "driving")
        (driving / "c.json").write_text(json.dumps(HEAD_MOTION))
        coarse = bake.BakeOptions(
            **SPHERE_BAKE
            if head
            else dict(
                resolution=24,
                head_resolution=16,
                views=2,
                view_pixels=16,
                view_samples=16,
                min_component_faces=0,
                colour_samples=8,
            )
        )
        out = tmp_path_factory.mktemp("tiny_head_export" if head else "tiny_export")
        options = pipeline.ExportOptions(bake=coarse, animations=(str(driving),))
        with experiment.Experiment.restore(folder) as restored, pytest.MonkeyPatch.context() as m:
            if head:
                sphere = head_sphere(restored.exp)
                m.setattr(field, "CanonicalField", lambda *args, **kwargs: sphere)
            pipeline.export(restored, out, options)
        _EXPORTS[key] = out
    return _EXPORTS[key]
