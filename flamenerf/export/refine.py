# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Vertex colours fitted to the NeRF's own renders of training frames: the bake's last stage.

The bake colours each vertex from the canonical field, along one camera's ray through it
(`colouring`). That colour is right where the mesh is where the NeRF's surface is, but the
asset, rendered as the viewer renders it, still differs from the NeRF's images: at the
outline (a grazing vertex's ray mixes the face with what lies behind), where the jaw stretches
the lips' seam (the canonical face is closed: its seam's colours are not the open mouth's),
and wherever the mesh is off the NeRF's soft surface. This stage makes the asset's renders
match the NeRF's renders of training frames (their cameras, codes and FLAME parameters), in
the sense of least squares over the pixels.

The asset's render is linear in its vertex colours: a sample of the supersampled render
(`preview.render` with `supersample` k) is a barycentric blend of the three colours of the
triangle it hits, and a pixel the mean of its k x k samples. So for frames f with pixel
matrices A_f (`pixel_matrix`: pixels x vertices) and NeRF renders y_f, the colours

    u = argmin  sum_f |A_f u - y_f|^2 / F  +  weight |u - u0|^2

(u0 the baked colours, F the number of frames) solve (sum_f A_f^T A_f / F + weight I) (u - u0)
= sum_f A_f^T (y_f - A_f u0) / F, a sparse symmetric positive definite system solved by
conjugate gradients, per channel. The weight keeps what no frame sees as baked and spreads a
pixel's correction evenly over the vertices under it (the least-norm correction: the mesh has
several vertices per pixel). Colours are fitted sRGB-encoded, as the images are: the model
blends encoded colours where the renderer blends linear ones and encodes the blend, which is
the same when a triangle's three colours are, and close at the mesh's resolution, where
neighbouring vertices' colours differ little.

Only pixels whose k x k samples all hit a triangle (nearer than `far`) count: a pixel that
shows the black beyond the scene holds no colour of the asset. Vertices at one position (the
border between the head and the room, in both meshes) share one colour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sparse
from scipy.sparse.linalg import cg
from tqdm.auto import tqdm

from flamenerf.export import preview
from flamenerf.export.gltf import Asset
from flamenerf.geometry import rasterize

FRAMES_PER_BATCH = 8  # frames whose pixel matrices are stacked before A^T A is accumulated
CG_TOLERANCE = 1e-6  # relative residual of the conjugate gradients
CG_ITERATIONS = 2000


@dataclasses.dataclass(frozen=True)
class Target:
    """One frame to match: the asset posed and seen as the NeRF rendered `image`.

    Attributes:
      world_from_camera, projection: (4, 4) the OpenGL camera (`preview.gl_from_camera`,
        `preview.projection_matrix`).
      matrices: (3, 4, 4) the skin's joint matrices (root, neck, jaw) at the frame's pose.
      expression: (E,) the morph weights.
      image: (H, W, 3) the NeRF's render, sRGB-encoded in [0, 1].
    """

    world_from_camera: np.ndarray
    projection: np.ndarray
    matrices: np.ndarray
    expression: np.ndarray
    image: np.ndarray


def shared_vertices(asset: Asset) -> tuple[np.ndarray, int]:
    """int (Vr + Vh,) for every vertex (the room's, then the head's) the index of its position
    among the asset's distinct rest positions, and their count."""
    positions = np.concatenate([asset.room.positions, asset.head.positions]).astype(np.float32)
    _, inverse = np.unique(positions, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse.astype(np.int64), int(inverse.max(initial=-1) + 1)


def pixel_matrix(
    asset: Asset,
    world_from_camera: np.ndarray,
    projection: np.ndarray,
    width: int,
    height: int,
    matrices: np.ndarray,
    expression: np.ndarray,
    supersample: int = 1,
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The linear map from vertex colours to the pixels of the asset's render.

    The render is `preview.render`'s (the same clipping at the near plane, the same
    rasteriser), posed by joint matrices and morph weights, with `supersample` k x k samples
    per pixel blended as one colour space (module docstring).

    Args:
      asset: the avatar; world_from_camera, projection: (4, 4) its OpenGL camera.
      width, height: the image's size in pixels.
      matrices: (3, 4, 4) joint matrices; expression: (E,) morph weights.
      supersample: k.

    Returns:
      A float64 (H * W, Vr + Vh), row-major pixels by vertices (the room's, then the head's):
      pixel colour = A @ vertex colours; covered bool (H * W,): every sample of the pixel
      hits a triangle nearer than the far plane.
    """
    k = int(supersample)
    camera = preview.camera_from_gl(world_from_camera, projection, k * width, k * height)
    near, far = preview.near_far(projection)
    room, head = preview.posed(asset, matrices, expression)
    vertices = np.concatenate([room, head])
    faces = np.concatenate(
        [
            np.asarray(asset.room.faces, np.int64).reshape(-1, 3),
            np.asarray(asset.head.faces, np.int64).reshape(-1, 3) + len(room),
        ]
    )
    count = len(vertices)
    clipped = preview.near_clipping(vertices, faces, camera, near)  # as the preview clips
    faces = clipped.faces
    fragments = rasterize.rasterize(clipped.vertices, faces, camera, near=0.5 * near)
    hit = (fragments.face_index >= 0) & (fragments.depth <= far)
    rows, columns = np.nonzero(hit)
    pixel = (rows // k) * width + columns // k
    corners = faces[fragments.face_index[rows, columns]]  # (S, 3) clipped vertex indices
    weights = fragments.barycentric[rows, columns] / (k * k)  # (S, 3)
    # A clipped vertex is a blend of two of the posed ones: (1 - t) first + t second.
    first, second, t = clipped.first[corners], clipped.second[corners], clipped.t[corners]
    matrix = sparse.coo_matrix(
        (
            np.concatenate([(weights * (1.0 - t)).ravel(), (weights * t).ravel()]),
            (
                np.concatenate([np.repeat(pixel, 3), np.repeat(pixel, 3)]),
                np.concatenate([first.ravel(), second.ravel()]).astype(np.int64),
            ),
        ),
        shape=(width * height, count),
    ).tocsr()
    samples = np.bincount(pixel, minlength=width * height)
    return matrix, samples == k * k


def fit_colours(
    asset: Asset,
    targets: Sequence[Target],
    supersample: int = 4,
    weight: float = 0.003,
    show_progress: bool = False,
) -> tuple[Asset, dict[str, float]]:
    """The asset with vertex colours fitted to the targets (module docstring).

    Args:
      asset: the avatar (its colours are u0).
      targets: the frames to match.
      supersample: k of the renders matched (the viewer's and the preview's anti-aliasing).
      weight: how strongly colours keep to u0, against one frame's mean squared error.

    Returns:
      The asset with the fitted colours (linear, clipped to [0, 1]), and a report: "frames",
      "pixels" (covered pixels used), "rmse_before" and "rmse_after" (over those pixels, sRGB).
    """
    if not targets:
        return asset, {"frames": 0, "pixels": 0}
    shared, distinct = shared_vertices(asset)
    # One column per distinct position: vertices at one position share a colour.
    merge = sparse.csr_matrix(
        (np.ones(len(shared)), (np.arange(len(shared)), shared)), shape=(len(shared), distinct)
    )
    linear = np.concatenate([asset.room.colours, asset.head.colours]).astype(np.float64)
    encoded = preview.linear_to_srgb(linear)
    counts = np.asarray(merge.sum(axis=0)).ravel()
    u0 = (merge.T @ encoded) / counts[:, None]
    normal = sparse.csr_matrix((distinct, distinct))
    rhs = np.zeros((distinct, 3))
    pixels, before = 0, 0.0
    batches = [targets[i : i + FRAMES_PER_BATCH] for i in range(0, len(targets), FRAMES_PER_BATCH)]
    for batch in tqdm(batches, desc="colour fit", disable=not show_progress, leave=False):
        stacked_rows, values = [], []
        for target in batch:
            height, width = np.asarray(target.image).shape[:2]
            matrix, covered = pixel_matrix(
                asset,
                target.world_from_camera,
                target.projection,
                width,
                height,
                target.matrices,
                target.expression,
                supersample,
            )
            stacked_rows.append((matrix @ merge)[covered])
            values.append(np.asarray(target.image, np.float64).reshape(-1, 3)[covered])
        a = sparse.vstack(stacked_rows).tocsr()
        residual = np.concatenate(values) - a @ u0
        normal = normal + (a.T @ a).tocsr()
        rhs += a.T @ residual
        pixels += a.shape[0]
        before += float((residual**2).sum())
    frames = len(targets)
    system = (normal / frames + weight * sparse.identity(distinct, format="csr")).tocsr()
    diagonal = system.diagonal()
    preconditioner = sparse.diags(1.0 / np.where(diagonal > 0, diagonal, 1.0))
    change = np.zeros_like(u0)
    for c in range(3):
        change[:, c], _ = cg(
            system,
            rhs[:, c] / frames,
            rtol=CG_TOLERANCE,
            maxiter=CG_ITERATIONS,
            M=preconditioner,
        )
    fitted = np.clip(u0 + change, 0.0, 1.0)
    # The fit's own squared error, from the normal equations' terms (no second pass):
    # |r0 - A d|^2 = |r0|^2 - 2 d.A^T r0 + d.A^T A d, d the unclipped change.
    after = before - 2.0 * float((change * rhs).sum()) + float((change * (normal @ change)).sum())
    colours = preview.srgb_to_linear(fitted[shared]).astype(np.float32)
    rooms = len(asset.room.positions)
    refined = dataclasses.replace(
        asset,
        room=dataclasses.replace(asset.room, colours=colours[:rooms]),
        head=dataclasses.replace(asset.head, colours=colours[rooms:]),
    )
    samples = max(3 * pixels, 1)
    report = {
        "frames": frames,
        "pixels": int(pixels),
        "rmse_before": float(np.sqrt(before / samples)),
        "rmse_after": float(np.sqrt(max(after, 0.0) / samples)),
    }
    return refined, report
