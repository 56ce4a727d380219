# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Triangle meshes from grids: marching cubes on a rectilinear grid and clean-up.

`extract_mesh` runs scikit-image's marching cubes in grid-index space and maps the vertices
through the grid's axes (exact for a rectilinear grid), optionally only in the cells a mask
(`seen_cells`) allows; `drop_small_components` removes floaters; `vertex_normals` gives
area-weighted normals and `grow` moves a surface out along them. Meshes are vertices float64
(V, 3) and faces int64 (F, 3) wound so that the right-hand normal points outwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def extract_mesh(
    grid: np.ndarray, axes: Sequence[np.ndarray], level: float, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The level set {value = level} of a rectilinear grid by marching cubes; inside is where
    the values are higher.

    scikit-image's marching cubes runs in index space (unit cells); a vertex at fractional
    index t on an axis maps to the linear interpolation of that axis' coordinates, which is
    exactly where marching cubes on the real cells puts it (the interpolation along an edge is
    the same fraction). Faces wind so that their right-hand normal points outwards (towards
    lower values).

    Args:
      grid: (Gx, Gy, Gz) values; axes: the coordinates along x, y, z; level: the iso-value.
      mask: bool (Gx, Gy, Gz): cells are meshed only where it is True (None: everywhere),
        scikit-image's convention (`seen_cells`).

    Returns:
      vertices float64 (V, 3), faces int64 (F, 3); empty arrays when the level is not crossed.
    """
    from skimage.measure import marching_cubes

    grid = np.asarray(grid, np.float32)
    empty = np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    if grid.size == 0 or not (grid.min() < level < grid.max()):
        return empty
    try:
        verts, faces, _, _ = marching_cubes(grid, level, mask=mask, allow_degenerate=False)
    except (ValueError, RuntimeError):  # no crossing inside the mask
        return empty
    coords = np.stack(
        [np.interp(verts[:, a], np.arange(len(axes[a])), axes[a]) for a in range(3)], axis=-1
    )
    # scikit-image winds faces with their right-hand normal towards higher values (inwards,
    # for an object of higher values): flipped. The index -> coordinate map keeps orientations.
    return coords, faces[:, ::-1].astype(np.int64)


def seen_cells(seen: np.ndarray) -> np.ndarray:
    """bool (Gx, Gy, Gz): marching cubes' mask of the cells whose eight corners are all seen
    (scikit-image reads a cell's flag at its far corner: mask[i, j, k] for the cell from
    (i - 1, j - 1, k - 1) to (i, j, k)); no surface is made at the edge of what is seen."""
    seen = np.asarray(seen, bool)
    out = np.zeros_like(seen)
    cells = seen[:-1, :-1, :-1].copy()
    for corner in range(1, 8):
        dx, dy, dz = (corner >> 2) & 1, (corner >> 1) & 1, corner & 1
        cells &= seen[dx : dx + cells.shape[0], dy : dy + cells.shape[1], dz : dz + cells.shape[2]]
    out[1:, 1:, 1:] = cells
    return out


def drop_small_components(
    vertices: np.ndarray, faces: np.ndarray, min_faces: int
) -> tuple[np.ndarray, np.ndarray]:
    """The mesh without connected components (sharing vertices) of fewer than `min_faces` faces.

    Args:
      vertices: (V, 3); faces: (F, 3).

    Returns:
      vertices (V', 3) (only those still used) and faces (F', 3) re-indexed.
    """
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if min_faces > 0 and len(faces):
        n = len(vertices)
        rows = np.concatenate([faces[:, 0], faces[:, 1]])
        cols = np.concatenate([faces[:, 1], faces[:, 2]])
        graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        per_face = labels[faces[:, 0]]
        sizes = np.bincount(per_face, minlength=labels.max() + 1)
        faces = faces[sizes[per_face] >= min_faces]
    used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
    return np.asarray(vertices)[used], inverse.reshape(-1, 3).astype(np.int64)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (right-hand rule of the faces' winding);
    zeros for vertices in no (non-degenerate) face."""
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)  # length = twice the area
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(length > 0, normals / np.where(length > 0, length, 1.0), 0.0)


def grow(vertices: np.ndarray, faces: np.ndarray, distance: float) -> np.ndarray:
    """(V, 3) the vertices moved `distance` along their outward normals (`vertex_normals`;
    vertices in no face stay): the surface offset outwards (inwards for a negative distance).
    A sphere of radius r becomes one of radius r + distance."""
    vertices = np.asarray(vertices, np.float64)
    return vertices + distance * vertex_normals(vertices, faces)
