# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The Python render of an avatar asset, as the browser viewer draws it.

`pose` applies the contract's pose maths (`flamenerf.export.rig`: morph weights = expression
coefficients, then glTF's linear blend skinning with the joint matrices world_j @
inverse_bind_j, the neck's local rotation rest * R_y(yaw) * R_x(pitch), the jaw's R_x(jaw)).
`render` draws both meshes with the project's z-buffer rasteriser
(`flamenerf.geometry.rasterize`, pixel centres at +0.5, perspective-correct barycentrics),
interpolates the LINEAR vertex colours, converts them to sRGB per pixel (what three.js's
sRGB output does after an unlit material), and leaves the background black. With
`supersample` k > 1 it renders k x k samples per pixel (the same camera at k times the size:
the samples' centres tile each pixel evenly) and averages their sRGB values, what the viewer's
supersampling pass does (viewer/src/viewer.js): anti-aliasing, as a camera's pixels average
the light over their area. Cameras come in
OpenGL's convention (the contract's): `world_from_camera` (4x4, the camera looks down its -z,
+y up) and a perspective `projection` (4x4 clip matrix); `camera_from_gl` turns them into a
`flamenerf.geometry.camera.Camera` (and `gl_from_camera` back), and the projection's near and
far planes clip: triangles are cut at `near` (`clip_near`, as OpenGL clips them), pixels whose
nearest surface is beyond `far` stay black.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flamenerf.export import rig
from flamenerf.export.gltf import Asset
from flamenerf.geometry import rasterize
from flamenerf.geometry.camera import Camera

GL_FROM_CV = np.diag([1.0, -1.0, -1.0])  # camera axes: OpenCV (x right, y down, z forward)
# The viewer's samples per pixel along each axis for a canvas up to 512 device pixels along
# its longer side (viewer/src/viewer.js: 4, fewer as the canvas passes 2048 / 4 pixels).
VIEWER_SUPERSAMPLE = 4


def pose(asset: Asset, params: rig.Pose) -> tuple[np.ndarray, np.ndarray]:
    """World vertices of both meshes at a pose.

    Args:
      asset: the avatar; params: expression (E,) (morph weights), jaw, yaw, pitch (radians).

    Returns:
      room (Vr, 3) (static: as stored) and head (Vh, 3) (morphed, then skinned), float64.
    """
    matrices = rig.joint_matrices(asset.inverse_bind, asset.skeleton, params)
    return posed(asset, matrices, params.expression)


def pose_animation(asset: Asset, name: str, time: float) -> tuple[np.ndarray, np.ndarray]:
    """World vertices of both meshes at a time of one of the asset's animations (glTF's
    LINEAR sampling, `animation.sample`): room (Vr, 3) and head (Vh, 3), float64.

    Raises:
      KeyError: the asset has no animation of that name.
    """
    from flamenerf.export import animation as animation_lib

    chosen = {a.name: a for a in asset.animations}[name]
    matrices, expression = animation_lib.joint_matrices(
        asset.inverse_bind, asset.skeleton, chosen, time
    )
    return posed(asset, matrices, expression)


def posed(asset: Asset, matrices: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World vertices of both meshes with given skinning matrices (3, 4, 4) (root, neck, jaw:
    world_j @ inverse_bind_j) and morph weights (E,) (missing ones 0): room (Vr, 3), head
    (Vh, 3), float64."""
    expression = np.zeros(asset.num_expression)
    given = np.asarray(weights, np.float64).reshape(-1)[: asset.num_expression]
    expression[: len(given)] = given
    head = asset.head
    posed = rig.skin(
        head.positions,
        head.targets,
        head.joints.astype(np.int64),
        head.weights,
        matrices,
        expression,
    )
    return np.asarray(asset.room.positions, np.float64), posed


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB encoding of linear values clipped to [0, 1] (IEC 61966-2-1, as three.js)."""
    x = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """The inverse of `linear_to_srgb` on [0, 1]."""
    x = np.clip(np.asarray(srgb, np.float64), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def near_far(projection: np.ndarray) -> tuple[float, float]:
    """The near and far distances of an OpenGL perspective clip matrix (4x4)."""
    p = np.asarray(projection, np.float64)
    a, b = p[2, 2], p[2, 3]
    return float(b / (a - 1.0)), float(b / (a + 1.0))


def projection_matrix(camera: Camera, near: float, far: float) -> np.ndarray:
    """(4, 4) the OpenGL clip matrix of a camera's intrinsics (distortion ignored).

    NDC x = 2 u / W - 1 and y = 1 - 2 v / H for the pixel coordinates (u, v) of
    `Camera.project`, so pixel centres at +0.5 match OpenGL's window coordinates.
    """
    width, height = camera.image_size
    fx = camera.focal_length
    fy = fx * camera.pixel_aspect_ratio
    cx, cy = camera.principal_point
    return np.array(
        [
            [2 * fx / width, -2 * camera.skew / width, 1 - 2 * cx / width, 0.0],
            [0.0, 2 * fy / height, 2 * cy / height - 1, 0.0],
            [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def gl_from_camera(camera: Camera) -> np.ndarray:
    """(4, 4) OpenGL world_from_camera of a camera (same frame as the camera's position)."""
    out = np.eye(4)
    out[:3, :3] = camera.orientation.T @ GL_FROM_CV
    out[:3, 3] = camera.position
    return out


def camera_from_gl(
    world_from_camera: np.ndarray, projection: np.ndarray, width: int, height: int
) -> Camera:
    """The `Camera` of an OpenGL world_from_camera and perspective projection (4x4 each).

    Raises:
      ValueError: a projection that is not a pinhole perspective (w_clip = -z_camera, no
        shear between y and x beyond skew), or a pose that is not rigid.
    """
    m = np.asarray(world_from_camera, np.float64).reshape(4, 4)
    p = np.asarray(projection, np.float64).reshape(4, 4)
    rotation = m[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-5) or np.linalg.det(rotation) < 0:
        raise ValueError(f"world_from_camera: found {m.tolist()}, expected a rigid transform")
    perspective = np.allclose(p[3], [0, 0, -1, 0]) and np.allclose([p[1, 0], p[0, 3], p[1, 3]], 0)
    if not perspective or p[0, 0] <= 0 or p[1, 1] <= 0:
        raise ValueError(f"projection: found {p.tolist()}, expected an OpenGL perspective matrix")
    fx, fy = p[0, 0] * width / 2, p[1, 1] * height / 2
    return Camera(
        orientation=(rotation @ GL_FROM_CV).T,
        position=m[:3, 3],
        focal_length=fx,
        principal_point=[(1 - p[0, 2]) * width / 2, (p[1, 2] + 1) * height / 2],
        skew=-p[0, 1] * width / 2,
        pixel_aspect_ratio=fy / fx,
        image_size=(int(width), int(height)),
    )


def clip_near(
    vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, camera: Camera, near: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangles clipped against the near plane (camera z = near), as OpenGL clips them.

    A triangle wholly in front stays; one wholly behind goes; one with one vertex in front
    becomes the triangle cut off by the plane, one with two in front the quadrilateral (two
    triangles). New vertices lie on the edges at the plane, their colours linear along the
    edge in 3-D (what perspective-correct interpolation gives there).

    Args:
      vertices: (V, 3) world; faces: (F, 3); colours: (V, C); camera: its depth axis.

    Returns:
      vertices (V', 3), faces (F', 3), colours (V', C): the kept vertices first, then the new.
    """
    clipped = near_clipping(vertices, faces, camera, near)
    colours = np.asarray(colours, np.float64)
    t = clipped.t[:, None]
    blended = (1.0 - t) * colours[clipped.first] + t * colours[clipped.second]
    return clipped.vertices, clipped.faces, blended


class NearClipping(NamedTuple):
    """Triangles clipped at the near plane (`near_clipping`).

    Attributes:
      vertices: (V', 3); faces: (F', 3) into them.
      first, second: int (V',) and t: (V',): vertex i is the blend (1 - t) * old[first] +
        t * old[second] of the unclipped vertices (first = second, t = 0 for the kept ones).
    """

    vertices: np.ndarray
    faces: np.ndarray
    first: np.ndarray
    second: np.ndarray
    t: np.ndarray


def near_clipping(
    vertices: np.ndarray, faces: np.ndarray, camera: Camera, near: float
) -> NearClipping:
    """`clip_near`'s triangles, with each vertex as a blend of two unclipped ones."""
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    z = camera.depth(vertices)
    front = z[faces] > near  # (F, 3)
    count = front.sum(axis=1)
    kept = [faces[count == 3]]
    indices = np.arange(len(vertices))
    firsts, seconds, ts = [indices], [indices], [np.zeros(len(vertices))]
    total = len(vertices)

    def cut(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Points on the edges a-b (vertex index arrays) where z = near; their new indices.
        nonlocal total
        firsts.append(a)
        seconds.append(b)
        ts.append((near - z[a]) / (z[b] - z[a]))
        index = total + np.arange(len(a))
        total += len(a)
        return index

    for inside in (1, 2):
        chosen = faces[count == inside]
        flags = front[count == inside]
        # Rotate each triangle (keeping its winding) so that vertex 0 is the odd one out.
        odd = np.argmax(flags == (inside == 1), axis=1)
        rotated = np.stack([chosen[np.arange(len(chosen)), (odd + k) % 3] for k in range(3)], 1)
        a, b, c = rotated[:, 0], rotated[:, 1], rotated[:, 2]
        if inside == 1:  # a in front: a, ab, ac
            kept.append(np.stack([a, cut(a, b), cut(a, c)], axis=1))
        else:  # a behind: b, c, ca and b, ca, ab
            ab, ca = cut(b, a), cut(c, a)
            kept.append(np.stack([b, c, ca], axis=1))
            kept.append(np.stack([b, ca, ab], axis=1))
    first, second, t = np.concatenate(firsts), np.concatenate(seconds), np.concatenate(ts)
    blended = (1.0 - t[:, None]) * vertices[first] + t[:, None] * vertices[second]
    return NearClipping(blended, np.concatenate(kept).astype(np.int64), first, second, t)


def render(
    asset: Asset,
    world_from_camera: np.ndarray,
    projection: np.ndarray,
    width: int,
    height: int,
    params: rig.Pose,
    supersample: int = 1,
) -> np.ndarray:
    """The asset at a pose seen by a camera: float (H, W, 3) sRGB in [0, 1], black background.

    Args:
      asset: the avatar.
      world_from_camera, projection: (4, 4) OpenGL camera (the contract's convention).
      width, height: the image size in pixels.
      params: the pose (`rig.Pose`).
      supersample: k: the mean of k x k samples per pixel, each sRGB-encoded (1: one sample
        at the pixel's centre).
    """
    if supersample < 1 or int(supersample) != supersample:
        raise ValueError(f"supersample: found {supersample!r}, expected an integer >= 1")
    k = int(supersample)
    if k > 1:
        fine = render(asset, world_from_camera, projection, k * width, k * height, params)
        return rasterize.downsample(fine, k)
    camera = camera_from_gl(world_from_camera, projection, width, height)
    near, far = near_far(projection)
    room, head = pose(asset, params)
    vertices = np.concatenate([room, head])
    faces = np.concatenate(
        [
            np.asarray(asset.room.faces, np.int64).reshape(-1, 3),
            np.asarray(asset.head.faces, np.int64).reshape(-1, 3) + len(room),
        ]
    )
    colours = np.concatenate([asset.room.colours, asset.head.colours]).astype(np.float64)
    vertices, faces, colours = clip_near(vertices, faces, colours, camera, near)
    fragments = rasterize.rasterize(vertices, faces, camera, near=0.5 * near)
    linear = rasterize.interpolate(fragments, colours)
    visible = (fragments.face_index >= 0) & (fragments.depth <= far)
    return np.where(visible[..., None], linear_to_srgb(linear), 0.0)
