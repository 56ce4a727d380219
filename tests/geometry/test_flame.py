# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.geometry.flame against an independent float64 brute-force LBS."""

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flame_util import brute_force, make_raw, official_pickle_bytes, random_params
from scipy.spatial.transform import Rotation

from flamenerf.geometry import flame


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
