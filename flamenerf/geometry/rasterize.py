# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""A vectorised z-buffer triangle rasteriser and silhouettes (NumPy, host side).

Used to rasterise FLAME-silhouette masks for captures without masks and by the synthetic
capture generator (render at k x resolution with `camera.scale(1 / k)`, then `downsample`).

Method: vertices are projected with `Camera.project` (distortion included) and triangles are
drawn with straight edges between the projected vertices. Each triangle's pixel bounding box
is cut into tiles of at most `_TILE` x `_TILE` pixels; tiles are grouped by power-of-two
width and height, and each group enumerates its candidate pixel centres as one
(tiles, rows, columns) array. Covered centres are depth-sorted per chunk and merged into the
z-buffer, so there is no Python loop per triangle.

Conventions:
- Pixel index (i, j) has its centre at continuous coordinate (i + 0.5, j + 0.5) (see
  `flamenerf.geometry.camera`). A pixel is covered by a triangle when its centre is inside the
  triangle or on its boundary (inclusive test, no tie rule): pixels whose centre is on an
  edge shared by two triangles are covered by both and the z-buffer picks one, so closed
  meshes have no cracks. Ties in depth are broken arbitrarily (but deterministically).
- Triangles with a vertex at camera z <= `near` are dropped whole (no clipping); so are
  triangles with a vertex beyond the radius where the radial distortion stops being
  monotonic (such vertices would fold back into the image). Subdivide large geometry (a
  background wall) if it crosses the near plane or, with distortion, the image border.
- Barycentrics are perspective-correct and depth is camera z: exact for cameras without
  distortion. With distortion, edges are straight in the distorted image (an approximation
  that is good for triangles of a few pixels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flamenerf.geometry.camera import Camera

_TILE = 256  # largest tile side in pixels; bigger triangle bounding boxes are split
_CHUNK = 1 << 19  # candidate pixel centres evaluated per vectorised step (memory bound)


@dataclasses.dataclass(frozen=True, eq=False)
class Fragments:
    """The nearest triangle at each pixel centre of an (H, W) image.

    Attributes:
      face_index: (H, W) int32 index into `faces`, -1 where no triangle covers the pixel.
      barycentric: (H, W, 3) perspective-correct weights of the face's vertices (zeros where
        empty): the surface point is sum_k barycentric[..., k] * vertices[faces[f, k]].
      depth: (H, W) camera z of the surface point, inf where empty.
      faces: (F, 3) the faces that were rasterised (kept for `interpolate`).
    """

    face_index: np.ndarray
    barycentric: np.ndarray
    depth: np.ndarray
    faces: np.ndarray


def _max_monotonic_radius2(camera: Camera) -> float:
    """Largest r^2 (normalised coordinates) below which r (1 + k1 r^2 + k2 r^4 + k3 r^6) grows.

    Its derivative is 1 + 3 k1 u + 5 k2 u^2 + 7 k3 u^3 with u = r^2: the answer is the
    smallest positive real root (inf when there is none, e.g. without distortion).
    """
    k1, k2, k3 = camera.radial_distortion
    roots = np.roots([7.0 * k3, 5.0 * k2, 3.0 * k1, 1.0])  # leading zeros are dropped
    real = roots.real[np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots.real))]
    real = real[real > 0]
    return float(real.min()) if real.size else np.inf


def _next_pow2_exponent(n: np.ndarray) -> np.ndarray:
    """Smallest e with 2**e >= n, for integer arrays n >= 1."""
    return np.ceil(np.log2(n)).astype(np.int64)


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices: found shape {vertices.shape}, expected (V, 3)")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces: found {faces.dtype} {faces.shape}, expected integer (F, 3)")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(
            f"faces: found indices in [{faces.min()}, {faces.max()}], "
            f"expected [0, {len(vertices) - 1}]"
        )
    return vertices, faces.astype(np.int64)


def _visible_faces(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    near: float,
    cull_backfaces: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face ids kept, their projected vertices (T, 3, 2) and vertex camera depths (T, 3)."""
    local = camera.points_to_local(vertices)
    z = local[:, 2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pixels = camera.project(vertices)
        radius2 = (local[:, 0] ** 2 + local[:, 1] ** 2) / z**2
    vertex_ok = (z > near) & np.all(np.isfinite(pixels), axis=1)
    vertex_ok &= radius2 < _max_monotonic_radius2(camera)
    keep = np.all(vertex_ok[faces], axis=1)
    if cull_backfaces:
        # Front faces wind counter-clockwise seen from the camera: their right-hand normal
        # points towards the camera centre.
        v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
        normal = np.cross(v1 - v0, v2 - v0)
        keep &= np.einsum("fi,fi->f", normal, camera.position - v0) > 0
    face_ids = np.flatnonzero(keep)
    return face_ids, pixels[faces[face_ids]], z[faces[face_ids]]


def _tiles(
    p: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tiles covering the candidate pixels of each triangle.

    p: (T, 3, 2) projected vertices. Candidate pixels of a triangle are those whose centre
    lies in its bounding box, clipped to the image. Returns per tile: triangle (row of p),
    first column, first row, number of columns, number of rows (all (N,) int64).
    """
    lo = np.clip(np.ceil(p.min(axis=1) - 0.5), -1, [width, height]).astype(np.int64)
    hi = np.clip(np.floor(p.max(axis=1) - 0.5), -1, [width, height]).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    size = hi - lo + 1
    tri = np.flatnonzero(np.all(size > 0, axis=1))
    lo, size = lo[tri], size[tri]
    n_x, n_y = -(-size[:, 0] // _TILE), -(-size[:, 1] // _TILE)
    count = n_x * n_y
    tile_tri = np.repeat(tri, count)
    within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    tile_x = np.repeat(lo[:, 0], count) + (within % np.repeat(n_x, count)) * _TILE
    tile_y = np.repeat(lo[:, 1], count) + (within // np.repeat(n_x, count)) * _TILE
    end = np.repeat(lo + size, count, axis=0)
    tile_w = np.minimum(end[:, 0] - tile_x, _TILE)
    tile_h = np.minimum(end[:, 1] - tile_y, _TILE)
    return tile_tri, tile_x, tile_y, tile_w, tile_h


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    *,
    near: float = 1e-3,
    cull_backfaces: bool = False,
) -> Fragments:
    """Rasterises a triangle mesh with a z-buffer at the pixel centres of `camera`'s image.

    Args:
      vertices: (V, 3) world positions.
      faces: (F, 3) integer vertex indices.
      camera: image size, projection (with distortion) and depth.
      near: triangles with a vertex at camera z <= near are dropped (no clipping).
      cull_backfaces: drop faces whose vertices wind clockwise as seen from the camera
        (their right-hand normal points away from it).

    Returns:
      Fragments with (H, W) arrays, H, W = camera.image_shape.
    """
    vertices, faces = _check_mesh(vertices, faces)
    width, height = camera.image_size
    face_ids, p, tri_z = _visible_faces(vertices, faces, camera, near, cull_backfaces)

    # Screen-space barycentric of vertex k at q: l_k(q) = a_k q_x + b_k q_y + c_k, the edge
    # function of the opposite edge (e, f) = (k + 1, k + 2) over twice the signed area.
    e, f = np.roll(p, -1, axis=1), np.roll(p, -2, axis=1)
    d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    area2 = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    nondegenerate = np.abs(area2) > 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_area2 = np.where(nondegenerate, 1.0 / area2, 0.0)[:, None]
    a = -(f[..., 1] - e[..., 1]) * inv_area2  # (T, 3)
    b = (f[..., 0] - e[..., 0]) * inv_area2
    c = ((f[..., 1] - e[..., 1]) * e[..., 0] - (f[..., 0] - e[..., 0]) * e[..., 1]) * inv_area2

    zbuffer = np.full(height * width, np.inf)
    face_index = np.full(height * width, -1, dtype=np.int32)
    barycentric = np.zeros((height * width, 3))

    nd = np.flatnonzero(nondegenerate)
    tile_tri, tile_x, tile_y, tile_w, tile_h = _tiles(p[nd], width, height)
    tile_tri = nd[tile_tri]
    exp_x, exp_y = _next_pow2_exponent(tile_w), _next_pow2_exponent(tile_h)
    buckets = exp_x * 64 + exp_y
    for bucket in np.unique(buckets):
        sx, sy = 1 << int(bucket // 64), 1 << int(bucket % 64)
        members = np.flatnonzero(buckets == bucket)
        step = max(1, _CHUNK // (sx * sy))
        for start in range(0, len(members), step):
            m = members[start : start + step]
            tri = tile_tri[m]
            cols = tile_x[m, None] + np.arange(sx)  # (n, sx)
            rows = tile_y[m, None] + np.arange(sy)  # (n, sy)
            # lam: (n, 3, sy, sx) barycentrics at the candidate centres.
            lam = (
                a[tri, :, None, None] * (cols[:, None, None, :] + 0.5)
                + b[tri, :, None, None] * (rows[:, None, :, None] + 0.5)
                + c[tri, :, None, None]
            )
            inside = np.all(lam >= 0, axis=1)
            inside &= (np.arange(sx) < tile_w[m, None])[:, None, :]
            inside &= (np.arange(sy) < tile_h[m, None])[:, :, None]
            n, iy, ix = np.nonzero(inside)
            if n.size == 0:
                continue
            weights = lam[n, :, iy, ix] / tri_z[tri[n]]  # (N, 3) perspective correction
            inv_depth = weights.sum(axis=1)
            depth = 1.0 / inv_depth
            pixel = rows[n, iy] * width + cols[n, ix]
            # Nearest fragment per pixel in this chunk, then merge into the z-buffer.
            order = np.lexsort((depth, pixel))
            sorted_pixel = pixel[order]
            first = np.ones(order.size, dtype=bool)
            first[1:] = sorted_pixel[1:] != sorted_pixel[:-1]
            win = order[first]
            win = win[depth[win] < zbuffer[pixel[win]]]
            zbuffer[pixel[win]] = depth[win]
            face_index[pixel[win]] = face_ids[tri[n[win]]]
            barycentric[pixel[win]] = weights[win] / inv_depth[win, None]

    return Fragments(
        face_index=face_index.reshape(height, width),
        barycentric=barycentric.reshape(height, width, 3),
        depth=zbuffer.reshape(height, width),
        faces=faces,
    )


def silhouette(
    vertices: np.ndarray, faces: np.ndarray, camera: Camera, *, near: float = 1e-3
) -> np.ndarray:
    """(H, W) bool: pixel centres covered by the mesh (vertices (V, 3), faces (F, 3))."""
    return rasterize(vertices, faces, camera, near=near).face_index >= 0


def interpolate(fragments: Fragments, attributes: np.ndarray) -> np.ndarray:
    """Interpolates attributes at each pixel with the fragments' barycentrics.

    Args:
      fragments: from `rasterize`.
      attributes: (V, C) per vertex, or (F, 3, C) per face corner (e.g. UVs with seams).

    Returns:
      (H, W, C) float64, zeros where no face covers the pixel.
    """
    attributes = np.asarray(attributes, dtype=np.float64)
    faces = fragments.faces
    if attributes.ndim == 3 and attributes.shape[:2] == (len(faces), 3):
        corner = lambda f: attributes[f]  # (N, 3, C)
    elif attributes.ndim == 2:
        corner = lambda f: attributes[faces[f]]
    else:
        raise ValueError(
            f"attributes: found shape {attributes.shape}, expected (V, C) or ({len(faces)}, 3, C)"
        )
    height, width = fragments.face_index.shape
    out = np.zeros((height, width, attributes.shape[-1]))
    covered = fragments.face_index >= 0
    values = corner(fragments.face_index[covered])
    out[covered] = np.einsum("nk,nkc->nc", fragments.barycentric[covered], values)
    return out


def downsample(image: np.ndarray, k: int) -> np.ndarray:
    """Box filter: (H * k, W * k, ...) -> (H, W, ...) means over k x k blocks.

    With the pixel-centre convention, rendering with `camera.scale(1 / k)` and downsampling
    by k is exact anti-aliasing for `camera` (each k x k block tiles one output pixel).
    Bool images give coverage fractions. Raises ValueError if k does not divide H and W.
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    if k < 1 or height % k or width % k:
        raise ValueError(
            f"downsample: found image {height}x{width} and k = {k}, expected k >= 1 dividing both"
        )
    blocks = image.reshape(height // k, k, width // k, k, *image.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float64)


def outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool boundary of a bool mask: inside pixels with an outside 4-neighbour."""
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior
