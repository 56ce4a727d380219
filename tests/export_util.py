# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Shared by the tests of flamenerf.export: a tiny hand-made avatar asset, and the contract's
pose maths written out independently (quaternions by hand, no scipy, no flamenerf.export.rig).
"""

import numpy as np

from flamenerf.export import gltf, rig

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
