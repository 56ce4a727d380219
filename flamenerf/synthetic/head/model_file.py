# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The model file: the head's arrays in the FLAME `.npz` layout, written and cached."""

from __future__ import annotations

import os
import pathlib
import tempfile
import zipfile
from typing import Any

import numpy as np

from flamenerf.io import paths
from flamenerf.synthetic.head.assembly import _mesh
from flamenerf.synthetic.head.bases import _bases
from flamenerf.synthetic.head.constants import (
    EXPRESSION_NAMES,
    JOINT_NAMES,
    JOINTS,
    NUM_EXPRESSION,
    NUM_SHAPE,
    REGION_NAMES,
    SHAPE_NAMES,
    VERSION,
)
from flamenerf.synthetic.head.landmarks import _landmark_embedding
from flamenerf.synthetic.head.skinning import _joint_regressor, _posedirs, _skinning_weights


def build_head() -> dict[str, np.ndarray]:
    """Builds the procedural head in the spec's FLAME `.npz` layout (deterministic).

    Returns:
      A dict with `v_template` (V, 3) float32, `shapedirs` (V, 3, 36) float32 (20 identity
      then 16 expression columns), `posedirs` (V, 3, 36) float32, `J_regressor` (5, V)
      float32, `kintree_table` (2, 5) uint32, `weights` (V, 5) float32, `f` (F, 3) int32,
      scalar int64 `num_shape` (20) and `num_expression` (16), `lmk_faces_idx` (51,) int32,
      `lmk_bary_coords` (51, 3) float32 (iBUG points 17-67), `region` (V,) int8 (labels
      `SKIN`...`EAR`), and the extra keys `region_names`, `shape_names`, `expression_names`,
      `joint_names` (strings), `joints` (5, 3) float32 (the intended joint positions) and
      `version` (int64).
    """
    mesh = _mesh()
    shapedirs, exprdirs = _bases(mesh)
    lmk_faces_idx, lmk_bary_coords = _landmark_embedding(mesh)
    kintree = np.array([[0, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    kintree[0, 0] = np.iinfo(np.uint32).max
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return {
        "v_template": f32(mesh["vertices"]),
        "shapedirs": f32(np.concatenate([shapedirs, exprdirs], axis=2)),
        "posedirs": f32(_posedirs(mesh)),
        "J_regressor": f32(_joint_regressor(mesh["vertices"], mesh["eye_index"])),
        "kintree_table": kintree,
        "weights": f32(_skinning_weights(mesh)),
        "f": np.ascontiguousarray(mesh["faces"], dtype=np.int32),
        "num_shape": np.array(NUM_SHAPE, dtype=np.int64),
        "num_expression": np.array(NUM_EXPRESSION, dtype=np.int64),
        "lmk_faces_idx": lmk_faces_idx.astype(np.int32),
        "lmk_bary_coords": f32(lmk_bary_coords),
        "region": mesh["region"].astype(np.int8),
        "region_names": np.array(REGION_NAMES),
        "shape_names": np.array(SHAPE_NAMES),
        "expression_names": np.array(EXPRESSION_NAMES),
        "joint_names": np.array(JOINT_NAMES),
        "joints": f32(JOINTS),
        "version": np.array(VERSION, dtype=np.int64),
    }


def write_npz(file: Any, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez`, but byte-deterministic (fixed timestamps in the zip, no pickles)."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def write_head(path: str | os.PathLike[str]) -> pathlib.Path:
    """Builds the head and writes it to `path` as an `.npz` (no pickles), atomically.

    Returns the path written. The parent folder must exist.
    """
    path = pathlib.Path(path)
    arrays = build_head()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write_npz(f, arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a cache is shared
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def default_head_path() -> pathlib.Path:
    """Path of the cached procedural head, `$FLAMENERF_CACHE/head/procedural_head_v1.npz`.

    Built on first use (atomically, so concurrent callers never see a partial file); the
    version in the name changes whenever the generator's output does.
    """
    path = paths.cache_root() / "head" / f"procedural_head_v{VERSION}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_head(path)
    return path
