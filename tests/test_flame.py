# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.geometry.flame against an independent float64 brute-force LBS."""

import io
import os
import pickle
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from scipy.spatial.transform import Rotation

from flamenerf.geometry import flame

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


@pytest.fixture(scope="module")
def raw():
    return make_raw(np.random.default_rng(0))


@pytest.fixture(scope="module")
def model(raw):
    return flame.model_from_arrays(raw)


@pytest.fixture(scope="module")
def jit_forward():
    return jax.jit(flame.forward)


def test_zero_params_give_template(model, raw, jit_forward):
    out = jit_forward(model, flame.FlameParams())
    np.testing.assert_allclose(out.vertices, raw["v_template"], atol=1e-7)
    np.testing.assert_allclose(out.joints, raw["J_regressor"] @ raw["v_template"], atol=1e-7)
    assert out.landmarks is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forward_matches_brute_force(model, raw, jit_forward, seed):
    p = random_params(np.random.default_rng(seed), 4, 3)
    expected_v, expected_j = brute_force(raw, p, num_shape=4)
    out = jit_forward(model, flame.FlameParams(**p))
    np.testing.assert_allclose(out.vertices, expected_v, atol=1e-5)
    np.testing.assert_allclose(out.joints, expected_j, atol=1e-5)


def test_shorter_vectors_are_zero_padded(model, raw, jit_forward):
    p = random_params(np.random.default_rng(4), 2, 1)
    expected_v, _ = brute_force(raw, p, num_shape=4)
    out = jit_forward(model, flame.FlameParams(**p))
    np.testing.assert_allclose(out.vertices, expected_v, atol=1e-5)


def test_jaw_rotation_moves_only_jaw_vertices_about_the_jaw_joint():
    rng = np.random.default_rng(5)
    raw = make_raw(rng)
    raw["posedirs"] = np.zeros_like(raw["posedirs"])
    labels = rng.integers(0, 5, size=len(raw["v_template"]))
    labels[:5] = [0, 1, 2, 3, 4]
    raw["weights"] = np.eye(5)[labels]
    model = flame.model_from_arrays(raw)
    angle = 0.3
    out = flame.forward(model, flame.FlameParams(jaw_pose=[angle, 0.0, 0.0]))
    jaw = raw["J_regressor"][2] @ raw["v_template"]
    c, s = np.cos(angle), np.sin(angle)
    rot_x = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # analytic rotation about x
    v = raw["v_template"]
    expected = np.where((labels == 2)[:, None], (v - jaw) @ rot_x.T + jaw, v)
    np.testing.assert_allclose(out.vertices, expected, atol=1e-6)
    assert np.any(labels == 2) and np.any(labels != 2)


def test_pose_corrective_features_are_row_major_r_minus_i():
    rng = np.random.default_rng(6)
    raw = make_raw(rng)
    raw["posedirs"] = np.zeros_like(raw["posedirs"])
    raw["weights"] = np.tile(np.eye(5)[0], (len(raw["v_template"]), 1))
    # Vertex 0 x-coordinate reads feature 9 (jaw R[0,0] - 1), vertex 1 y reads feature 13
    # (jaw R[1,1] - 1) and vertex 2 z reads feature 14 (jaw R[1,2]).
    raw["posedirs"][0, 0, 9] = raw["posedirs"][1, 1, 13] = raw["posedirs"][2, 2, 14] = 1.0
    model = flame.model_from_arrays(raw)
    angle = 0.4
    out = flame.forward(model, flame.FlameParams(jaw_pose=[angle, 0.0, 0.0]))
    offset = np.asarray(out.vertices) - raw["v_template"]
    np.testing.assert_allclose(offset[0, 0], 0.0, atol=1e-7)  # R[0,0] - 1 = 0 about x
    np.testing.assert_allclose(offset[1, 1], np.cos(angle) - 1.0, atol=1e-6)
    np.testing.assert_allclose(offset[2, 2], -np.sin(angle), atol=1e-6)


def test_batched_equals_looped(model, raw):
    p = random_params(np.random.default_rng(7), 4, 3, batch=(2, 3))
    out = flame.forward(model, flame.FlameParams(**p))
    assert out.vertices.shape == (2, 3, len(raw["v_template"]), 3)
    for i in range(2):
        for j in range(3):
            single = flame.forward(model, flame.FlameParams(**{k: v[i, j] for k, v in p.items()}))
            np.testing.assert_allclose(out.vertices[i, j], single.vertices, atol=1e-6)
            np.testing.assert_allclose(out.joints[i, j], single.joints, atol=1e-6)


def test_grad_finite_at_zero_pose(model):
    def loss(pose):
        out = flame.forward(
            model,
            flame.FlameParams(
                global_pose=pose[:3], jaw_pose=pose[3:6], neck_pose=pose[6:9], eye_pose=pose[9:]
            ),
        )
        return jnp.sum(out.vertices**2)

    grad = jax.jit(jax.grad(loss))(jnp.zeros(15))
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_rodrigues_matches_scipy_and_is_exact_at_zero():
    rotvecs = np.random.default_rng(8).normal(size=(10, 3))
    rotvecs[0] = 0.0
    rotvecs[1] = [1e-6, 0.0, 0.0]
    np.testing.assert_allclose(
        flame.rodrigues(jnp.asarray(rotvecs, jnp.float32)),
        Rotation.from_rotvec(rotvecs).as_matrix(),
        atol=1e-6,
    )


def test_landmarks_are_barycentric_points(raw):
    raw = dict(
        raw,
        lmk_faces_idx=np.array([0, 3, 5]),
        lmk_bary_coords=np.array([[1.0, 0, 0], [0.2, 0.3, 0.5], [0, 0, 1.0]]),
    )
    model = flame.model_from_arrays(raw)
    out = flame.forward(model, flame.FlameParams(jaw_pose=[0.2, 0, 0]))
    v = np.asarray(out.vertices)
    f = raw["f"]
    np.testing.assert_allclose(out.landmarks[0], v[f[0, 0]], atol=1e-6)
    np.testing.assert_allclose(
        out.landmarks[1], 0.2 * v[f[3, 0]] + 0.3 * v[f[3, 1]] + 0.5 * v[f[3, 2]], atol=1e-6
    )


# ---------------------------------------------------------------------------------------------
# Files: official-style pickles, npz, landmark embeddings.


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


def test_official_pickle_and_npz_give_identical_models(tmp_path):
    raw = make_raw(np.random.default_rng(9), num_vertices=12, official=True)
    pkl = tmp_path / "generic_model.pkl"
    pkl.write_bytes(official_pickle_bytes(raw))
    npz = tmp_path / "model.npz"
    np.savez(npz, **raw)
    from_pkl, from_npz = flame.load_model(pkl), flame.load_model(npz)
    assert (from_pkl.num_shape, from_pkl.num_expression) == (300, 100)
    for a, b in zip(jax.tree.leaves(from_pkl), jax.tree.leaves(from_npz), strict=True):
        np.testing.assert_array_equal(a, b)
    p = random_params(np.random.default_rng(10), 300, 100)
    expected_v, expected_j = brute_force(raw, p, num_shape=300)
    out = flame.forward(from_pkl, flame.FlameParams(**p))
    np.testing.assert_allclose(out.vertices, expected_v, atol=1e-5)
    np.testing.assert_allclose(out.joints, expected_j, atol=1e-5)


def test_static_landmark_embedding_pickle(tmp_path, raw):
    npz = tmp_path / "model.npz"
    np.savez(npz, **raw)
    emb = tmp_path / "flame_static_embedding.pkl"
    emb.write_bytes(
        pickle.dumps(
            {
                "lmk_face_idx": np.arange(51) % len(raw["f"]),
                "lmk_b_coords": np.full((51, 3), 1 / 3),
            },
            protocol=2,
        )
    )
    model = flame.load_model(npz, landmark_embedding=emb)
    assert flame.forward(model, flame.FlameParams()).landmarks.shape == (51, 3)


class Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class HostileEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


@pytest.mark.parametrize("payload", ["system", "eval", "nested"])
def test_hostile_pickles_are_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = {
        "system": Hostile(marker),
        "eval": HostileEval(),
        "nested": {"v_template": np.zeros((3, 3)), "x": [Hostile(marker)]},
    }[payload]
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(
        ValueError, match=r"generic_model.pkl: refused to load '(posix.system|__builtin__.eval)'"
    ):
        flame.load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("value", [[[0.0, 0.0, 0.0]] * 40, {"x": np.zeros((40, 3))}])
def test_pickled_containers_under_model_keys_are_refused(tmp_path, raw, value):
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(dict(raw, v_template=value), protocol=2))
    with pytest.raises(
        ValueError,
        match=r"generic_model.pkl: key 'v_template' holds a Python (list|dict); expected a numpy",
    ):
        flame.load_model(path)
    # Ignored keys may hold anything plain; their containers are dropped unread.
    path.write_bytes(pickle.dumps(dict(raw, notes=[value], bs_style="lbs"), protocol=2))
    assert flame.load_pickle(path).keys() == set(raw) | {"bs_style"}
    assert flame.load_model(path).num_vertices == 40


@pytest.mark.parametrize("protocol", [2, 5])
def test_npz_refuses_object_arrays(tmp_path, raw, protocol):
    path = tmp_path / "model.npz"
    np.savez(path, **dict(raw, f=np.array([Hostile(tmp_path / "x")], dtype=object)))
    with pytest.raises(ValueError, match="model.npz: cannot read without pickles"):
        flame.load_model(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("posedirs"), "missing key 'posedirs'"),
        (
            lambda r: r.update(posedirs=r["posedirs"][:, :, :30]),
            r"'posedirs' has shape \(40, 3, 30\); expected \(40, 3, 36\)",
        ),
        (
            lambda r: r.update(weights=r["weights"][:, :4]),
            r"'weights' has shape \(40, 4\); expected \(40, 5\)",
        ),
        (
            lambda r: r.update(J_regressor=r["J_regressor"][:4]),
            r"'J_regressor' has shape \(4, 40\); expected \(5, 40\)",
        ),
        (lambda r: r["v_template"].__setitem__((0, 0), np.nan), "'v_template' has non-finite"),
        (lambda r: r.update(num_shape=np.array(5)), "num_shape \\(5\\) \\+ num_expression"),
        (lambda r: [r.pop("num_shape"), r.pop("num_expression")], "must have 400"),
        (lambda r: r.update(f=r["f"] + 100), "'f' must hold integer vertex indices"),
        (
            lambda r: r.update(kintree_table=np.array([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]])),
            "'kintree_table' has parents",
        ),
    ],
)
def test_bad_model_files_error_clearly(tmp_path, raw, change, message):
    bad = {k: np.array(v) for k, v in raw.items()}
    change(bad)
    path = tmp_path / "bad.npz"
    np.savez(path, **bad)
    with pytest.raises(ValueError, match=message) as info:
        flame.load_model(path)
    assert "bad.npz" in str(info.value)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pkl: FLAME model file not found"):
        flame.load_model(tmp_path / "nope.pkl")
    (tmp_path / "model.obj").write_text("v 0 0 0")
    with pytest.raises(ValueError, match="ending in .pkl or .npz"):
        flame.load_model(tmp_path / "model.obj")


def test_bad_params_error_clearly(model):
    with pytest.raises(
        ValueError, match=r"FlameParams.expression: has 7 coefficients .* at most 3"
    ):
        flame.forward(model, flame.FlameParams(expression=np.zeros(7)))
    with pytest.raises(ValueError, match=r"FlameParams.eye_pose: expected shape \(..., 6\)"):
        flame.forward(model, flame.FlameParams(eye_pose=np.zeros(3)))
    with pytest.raises(ValueError, match="FlameParams.jaw_pose: has non-finite values"):
        flame.forward(model, flame.FlameParams(jaw_pose=[np.nan, 0, 0]))


def test_params_from_dict_validates():
    p = flame.FlameParams.from_dict({"expression": [0.1, 0.2], "jaw_pose": [0.1, 0, 0]})
    assert p.expression.shape == (2,) and p.shape is None
    assert flame.FlameParams.from_dict(p.to_dict()).to_dict() == p.to_dict()
    with pytest.raises(
        ValueError, match="flame/7.json: field 'jaw_pose' has 2 numbers; expected 3"
    ):
        flame.FlameParams.from_dict({"jaw_pose": [0, 0]}, source="flame/7.json")
    with pytest.raises(ValueError, match="field 'expression' has non-finite"):
        flame.FlameParams.from_dict({"expression": [float("nan")]})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['expr'\]"):
        flame.FlameParams.from_dict({"expr": [1.0]})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"expression": [0.1, "0.25"]}, "field 'expression' item 1: found the string '0.25'"),
        ({"expression": [True, 0.0]}, r"field 'expression' item 0: found true \(a bool\)"),
        ({"jaw_pose": [0.1, None, 0.0]}, "field 'jaw_pose' item 1: found null"),
        ({"shape": [[0.1, 0.2]]}, r"field 'shape' item 0: found a list \[0.1, 0.2\]"),
        ({"jaw_pose": None}, "field 'jaw_pose': found null, expected a list of 3 numbers"),
        ({"expression": "0.1 0.2"}, "field 'expression': found the string '0.1 0.2'"),
        ({"expression": 0.5}, "field 'expression': found 0.5, expected a list of numbers"),
        ({"expression": {"0": 0.1}}, "field 'expression': found an object"),
        ({"translation": [0.0, 1e39, 0.0]}, "field 'translation' has non-finite values"),
        ({"shape": [10**400]}, "field 'shape' has non-finite values"),
        ([0.1], "found a list"),
    ],
)
def test_params_from_dict_refuses_what_is_not_a_number(values, message):
    with pytest.raises(ValueError, match="flame/3.json: .*" + message):
        flame.FlameParams.from_dict(values, source="flame/3.json")


def test_params_from_dict_takes_numbers_and_numeric_arrays():
    p = flame.FlameParams.from_dict(
        {"expression": [1, 2.5], "jaw_pose": np.array([0.1, 0.0, 0.0]), "eye_pose": (0,) * 6}
    )
    assert p.expression.dtype == np.float32 and p.expression.tolist() == [1.0, 2.5]
    np.testing.assert_allclose(p.jaw_pose, [0.1, 0.0, 0.0])
    assert p.eye_pose.shape == (6,) and p.shape is None
