# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Stand-ins for the licensed FLAME file: random FLAME-layout arrays, an independent float64
brute-force LBS, and official-style (chumpy, Python 2) pickles. Shared by
tests/geometry/test_flame.py and tests/io/test_safe_pickle.py."""

import io
import pickle
import struct

import numpy as np
import scipy.sparse
from scipy.spatial.transform import Rotation

PARENTS = [-1, 0, 1, 1, 1]


def make_raw(rng, num_vertices=40, num_shape=4, num_expression=3, official=False):
    """Random FLAME-layout arrays (a stand-in for the licensed file)."""
    if official:
        num_shape, num_expression = 300, 100
    v = rng.normal(scale=0.05, size=(num_vertices, 3))
    j_reg = rng.random((5, num_vertices)) * (rng.random((5, num_vertices)) < 0.3)
    j_reg[:, 0] += 1e-3
    j_reg /= j_reg.sum(axis=1, keepdims=True)
    weights = rng.dirichlet(np.ones(5) * 0.5, size=num_vertices)
    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    raw = {
        "v_template": v,
        "shapedirs": rng.normal(scale=0.003, size=(num_vertices, 3, num_shape + num_expression)),
        "posedirs": rng.normal(scale=0.002, size=(num_vertices, 3, 36)),
        "J_regressor": j_reg,
        "kintree_table": kintree,
        "weights": weights,
        "f": rng.integers(0, num_vertices, size=(2 * num_vertices, 3)).astype(np.int64),
    }
    if not official:
        raw["num_shape"] = np.array(num_shape)
        raw["num_expression"] = np.array(num_expression)
    return raw


def random_params(rng, num_shape, num_expression, batch=()):
    return {
        "shape": rng.normal(size=batch + (num_shape,)),
        "expression": rng.normal(size=batch + (num_expression,)),
        "global_pose": rng.normal(scale=0.3, size=batch + (3,)),
        "neck_pose": rng.normal(scale=0.3, size=batch + (3,)),
        "jaw_pose": rng.normal(scale=0.3, size=batch + (3,)),
        "eye_pose": rng.normal(scale=0.3, size=batch + (6,)),
        "translation": rng.normal(scale=0.1, size=batch + (3,)),
    }


def brute_force(raw, p, num_shape):
    """Per-vertex float64 LBS with 4x4 homogeneous chains (smplx's formulation)."""
    shapedirs = np.asarray(raw["shapedirs"], np.float64)
    betas = np.zeros(shapedirs.shape[2])
    betas[: len(p["shape"])] = p["shape"]
    betas[num_shape : num_shape + len(p["expression"])] = p["expression"]
    v_shaped = raw["v_template"] + shapedirs @ betas
    j_reg = raw["J_regressor"]
    j_reg = j_reg.toarray() if scipy.sparse.issparse(j_reg) else j_reg
    joints = j_reg @ v_shaped
    rotvecs = [
        p["global_pose"],
        p["neck_pose"],
        p["jaw_pose"],
        p["eye_pose"][:3],
        p["eye_pose"][3:],
    ]
    rots = [Rotation.from_rotvec(r).as_matrix() for r in rotvecs]
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v_shaped + raw["posedirs"] @ feature
    chain = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[PARENTS[j]] if j else 0)
        chain.append(local if j == 0 else chain[PARENTS[j]] @ local)
    skin = []
    for j in range(5):
        undo = np.eye(4)
        undo[:3, 3] = -joints[j]
        skin.append(chain[j] @ undo)
    out = np.zeros_like(v_posed)
    for i in range(len(v_posed)):
        transform = sum(raw["weights"][i, j] * skin[j] for j in range(5))
        out[i] = (transform @ np.append(v_posed[i], 1.0))[:3]
    posed_joints = np.stack([c[:3, 3] for c in chain])
    return out + p["translation"], posed_joints + p["translation"]


class FakeCh:
    """Pickles like chumpy.ch.Ch: its whole __dict__ except `_parents` and `_cache`, i.e. the
    array `x` beside `_dirty_vars` (a set, so the pickle names `__builtin__.set`), `_itr`
    (None), `_depends_on_deps` (a dict), `_make_dense` and `_make_sparse` (bools)."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = {"x"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False
        self._parents = {}
        self._cache = {}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_parents", "_cache")}


class FakeCsc:
    """Pickles like a legacy scipy.sparse.csc.csc_matrix."""

    def __init__(self, matrix):
        m = scipy.sparse.csc_matrix(matrix)
        self._shape, self.indices, self.indptr, self.data = m.shape, m.indices, m.indptr, m.data
        self.maxprint = 50


class Py2Pickler(pickle._Pickler):
    """Writes bytes and ASCII text as Python 2 `str` (SHORT_BINSTRING/BINSTRING), as the
    official Python 2 pickle does for array data, dict keys and names."""

    def save_bytes(self, obj, data=None):
        data = obj if data is None else data
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_str(self, obj):
        if obj.isascii():
            self.save_bytes(obj, obj.encode("ascii"))
        else:
            pickle._Pickler.save_str(self, obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def official_content(raw):
    """The official file's dict: chumpy arrays, a legacy csc J_regressor, extra keys."""
    content = {}
    for key, value in raw.items():
        if key in ("v_template", "shapedirs", "posedirs", "weights"):
            content[key] = FakeCh(value)
        elif key == "J_regressor":
            content[key] = FakeCsc(value)
        else:
            content[key] = value
    if "v_template" in raw and "J_regressor" in raw:
        content["bs_style"] = "lbs"
        content["bs_type"] = "lrotmin"
        content["J"] = FakeCh(raw["J_regressor"] @ raw["v_template"])
    return content


def official_pickle_bytes(raw, content=None, protocol=2, py2=True):
    """A Python-2-style (latin1) protocol-2 pickle naming the official file's globals:
    `chumpy.ch.Ch` with its full state, `__builtin__.set`, legacy `scipy.sparse.csc.csc_matrix`,
    `numpy.core.multiarray._reconstruct`, array data as BINSTRING (never `_codecs.encode`).

    `content` replaces `official_content(raw)`; `py2=False` writes as Python 3 does (protocol
    0, 1 or 2: `copy_reg._reconstructor` below protocol 2, bytes through `_codecs.encode`).
    """
    buffer = io.BytesIO()
    pickler = Py2Pickler if py2 else pickle._Pickler
    pickler(buffer, protocol=protocol).dump(official_content(raw) if content is None else content)
    data = buffer.getvalue()
    module = FakeCh.__module__.encode()
    data = data.replace(module + b"\nFakeCh\n", b"chumpy.ch\nCh\n")
    data = data.replace(module + b"\nFakeCsc\n", b"scipy.sparse.csc\ncsc_matrix\n")
    data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    if content is None:
        assert b"c__builtin__\nset\n" in data and (b"_codecs" not in data or not py2)
        assert b"chumpy.ch\nCh\n" in data and b"scipy.sparse.csc\ncsc_matrix" in data
    return data
