# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.synthetic.head, the procedural FLAME-format head
(one build shared per session)."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from scipy.spatial.transform import Rotation

from flamenerf.geometry import flame
from flamenerf.synthetic import head

# iBUG indices (0-based, 68-point scheme) of landmarks used below; the embedding holds 17-67.
NOSE_TIP, RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER = 30, 48, 54
UPPER_LIP_TOP, LOWER_LIP_BOTTOM, UPPER_LIP_INNER, LOWER_LIP_INNER = 51, 57, 62, 66
RIGHT_BROW, LEFT_BROW = range(17, 22), range(22, 27)
UPPER_LIDS, LOWER_LIDS = (37, 38, 43, 44), (41, 40, 47, 46)  # above/below each other


@pytest.fixture(scope="session")
def arrays():
    """The head as the cache serves it (built once per session through default_head_path)."""
    with np.load(head.default_head_path(), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def mesh(arrays):
    """Float64 views and derived quantities."""
    v = arrays["v_template"].astype(np.float64)
    f = arrays["f"].astype(np.int64)
    dirs = arrays["shapedirs"].astype(np.float64)
    num_shape = int(arrays["num_shape"])
    eye = arrays["weights"][:, 3:].sum(axis=1) > 0.5
    return {
        "v": v,
        "f": f,
        "shape": dirs[:, :, :num_shape],
        "expr": dirs[:, :, num_shape:],
        "eye": eye,
        "skin_faces": f[~np.any(eye[f], axis=1)],
    }


def landmarks(arrays, vertices):
    """(51, 3) landmark positions of iBUG points 17-67."""
    corners = vertices[arrays["f"][arrays["lmk_faces_idx"]]]
    return np.einsum("lkc,lk->lc", corners, arrays["lmk_bary_coords"])


def lmk(points, index):
    return points[index - 17]


def expressed(mesh, k, coefficient):
    return mesh["v"] + coefficient * mesh["expr"][:, :, k]


def jaw_lbs(arrays, vertices, angle):
    """Independent LBS for a jaw rotation about x only (other joints at rest)."""
    weights = arrays["weights"].astype(np.float64)
    joints = arrays["J_regressor"].astype(np.float64) @ vertices
    rot = Rotation.from_rotvec([angle, 0.0, 0.0]).as_matrix()
    feature = np.zeros(36)
    feature[9:18] = (rot - np.eye(3)).ravel()
    posed = vertices + arrays["posedirs"].astype(np.float64) @ feature
    rotated = (posed - joints[2]) @ rot.T + joints[2]
    return posed + weights[:, 2:3] * (rotated - posed)


def skin_orientation(vertices, faces):
    """det[p0 - c, p1 - c, p2 - c] of skin triangles about the star centre (all > 0 = a
    star-shaped, hence embedded, surface)."""
    return np.linalg.det(vertices[faces] - head.STAR_CENTER)


# ----------------------------------------------------------------------------- layout


def test_build_is_deterministic(arrays):
    again = head.build_head()
    assert sorted(again) == sorted(arrays)
    for key, value in again.items():
        assert value.dtype == arrays[key].dtype, key
        np.testing.assert_array_equal(value, arrays[key], err_msg=key)


def test_keys_shapes_and_dtypes(arrays):
    v = arrays["v_template"].shape[0]
    s, e = int(arrays["num_shape"]), int(arrays["num_expression"])
    assert (s, e) == (head.NUM_SHAPE, head.NUM_EXPRESSION) == (20, 16)
    assert 2000 <= v <= 6000
    expected = {
        "v_template": ((v, 3), np.float32),
        "shapedirs": ((v, 3, s + e), np.float32),
        "posedirs": ((v, 3, 36), np.float32),
        "J_regressor": ((5, v), np.float32),
        "kintree_table": ((2, 5), np.uint32),
        "weights": ((v, 5), np.float32),
        "lmk_faces_idx": ((51,), np.int32),
        "lmk_bary_coords": ((51, 3), np.float32),
        "region": ((v,), np.int8),
        "num_shape": ((), np.int64),
        "num_expression": ((), np.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert arrays[key].shape == shape, key
        assert arrays[key].dtype == dtype, key
    assert arrays["f"].dtype == np.int32 and arrays["f"].shape[1] == 3
    assert list(arrays["region_names"]) == list(head.REGION_NAMES)
    assert list(arrays["expression_names"][:6]) == [
        "smile",
        "brow_raise",
        "cheek_puff",
        "lip_pucker",
        "brow_lowerer",
        "upper_lip_raise",
    ]
    assert list(arrays["expression_names"][6:10]) == [
        "eyes_close",
        "mouth_stretch",
        "lip_press",
        "nose_wrinkle",
    ]
    for key, value in arrays.items():
        assert value.dtype != object, key
        if value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), key


def test_kintree_table(arrays):
    table = arrays["kintree_table"]
    assert table[0, 0] == 4294967295
    assert table[0, 1:].tolist() == [0, 1, 1, 1]
    assert table[1].tolist() == [0, 1, 2, 3, 4]


def test_loads_as_a_flame_model(arrays):
    model = flame.load_model(head.default_head_path())
    assert model.num_shape == 20 and model.num_expression == 16 and model.has_landmarks
    out = flame.forward(model, flame.FlameParams())
    np.testing.assert_allclose(np.asarray(out.vertices), arrays["v_template"], atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.joints), arrays["joints"], atol=1e-6)


# ----------------------------------------------------------------------------- mesh


def test_mesh_is_closed_manifold_and_consistently_oriented(mesh):
    f = mesh["f"]
    np.testing.assert_array_equal(np.unique(f), np.arange(len(mesh["v"])))  # none isolated
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # Each directed edge once and its reverse once: every edge has exactly two faces, which
    # traverse it in opposite directions (consistent orientation, no boundary).
    assert len(np.unique(directed, axis=0)) == len(directed)
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert np.all(counts == 2)
    # Three sphere-like components (skin and two eyeballs), each with positive volume.
    n = len(mesh["v"])
    graph = scipy.sparse.coo_matrix((np.ones(len(undirected)), undirected.T), shape=(n, n))
    count, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
    assert count == 3
    for c in range(count):
        faces = f[label[f[:, 0]] == c]
        verts = np.unique(faces)
        edges = len(faces) * 3 // 2  # each edge is shared by two faces
        assert len(verts) - edges + len(faces) == 2  # Euler characteristic of a sphere
        volume = np.linalg.det(mesh["v"][faces]).sum() / 6.0
        assert volume > 0.0
    skin_volume = np.linalg.det(mesh["v"][mesh["skin_faces"]]).sum() / 6.0
    assert 0.003 < skin_volume < 0.007  # m^3: a head with a neck stub


def test_no_degenerate_faces(mesh):
    tri = mesh["v"][mesh["f"]]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-8  # 0.01 mm^2
    cosines = []
    for k in range(3):
        a = tri[:, (k + 1) % 3] - tri[:, k]
        b = tri[:, (k + 2) % 3] - tri[:, k]
        cosines.append(
            np.einsum("ij,ij->i", a, b) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        )
    assert np.degrees(np.arccos(np.clip(np.max(cosines, axis=0), -1, 1))).min() > 3.0


def test_placement_is_flame_like(mesh, arrays):
    v = mesh["v"][~mesh["eye"]]
    width = v[:, 0].max() - v[:, 0].min()
    assert 0.14 < width < 0.20
    assert v[:, 1].max() > 0.10 and v[:, 1].min() < -0.12  # crown above, neck stub below
    assert abs(v[:, 0].mean()) < 2e-3  # symmetric about x = 0
    nose = lmk(landmarks(arrays, mesh["v"]), NOSE_TIP)
    assert nose[2] > 0.09 and abs(nose[0]) < 2e-3  # the face looks along +z
    joints = arrays["joints"]
    assert joints[3, 0] > 0.02 and joints[4, 0] < -0.02  # left eye at +x
    assert joints[2, 1] < joints[3, 1] and joints[2, 2] < joints[3, 2]  # jaw below/behind eyes


def test_skin_is_star_shaped(mesh):
    assert np.all(skin_orientation(mesh["v"], mesh["skin_faces"]) > 0.0)


def test_regions(arrays, mesh):
    region = arrays["region"]
    assert set(np.unique(region)) == set(range(len(head.REGION_NAMES)))
    eyeball_labels = {head.SCLERA, head.IRIS, head.PUPIL}
    assert set(np.unique(region[mesh["eye"]])) == eyeball_labels
    v = mesh["v"]
    for k in (3, 4):  # the pupil is at the front of each eyeball
        eye = arrays["weights"][:, k] > 0.5
        assert region[eye][np.argmax(v[eye, 2])] == head.PUPIL
    skin = ~mesh["eye"]
    hair = skin & (region == head.HAIR)
    assert v[hair, 1].mean() > 0.05 and v[hair, 1].max() == v[skin, 1].max()
    lips = skin & (region == head.LIPS)
    assert np.all(np.abs(v[lips, 0]) < 0.03) and np.all(v[lips, 2] > 0.07)
    neck = skin & (region == head.NECK)
    assert v[neck, 1].min() == v[skin, 1].min()
    brows = skin & (region == head.BROW)
    assert np.all(v[brows, 1] > arrays["joints"][3, 1])  # above the eyes


# ----------------------------------------------------------------------------- skinning


def test_weights_are_convex(arrays, mesh):
    w = arrays["weights"]
    assert np.all(w >= 0.0) and np.all(w <= 1.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(w[mesh["eye"], 3:].sum(axis=1), 1.0)


def test_jaw_weights(arrays, mesh):
    w, v = arrays["weights"], mesh["v"]
    points = landmarks(arrays, v)
    nearest = lambda p: np.argmin(np.linalg.norm(v - p, axis=1))
    assert w[nearest(lmk(points, LOWER_LIP_BOTTOM)), 2] > 0.95
    assert w[nearest(lmk(points, UPPER_LIP_TOP)), 2] < 0.05
    forehead = nearest(np.array([0.0, 0.08, 0.09]))
    assert w[forehead, 2] < 1e-6 and w[forehead, 1] > 0.99
    chin = nearest(np.array([0.0, -0.085, 0.1]))
    assert w[chin, 2] > 0.95
    bottom = np.argmin(v[:, 1])
    assert w[bottom, 0] > 0.99  # the neck stub's base follows the root


def test_joint_regressor(arrays):
    j = arrays["J_regressor"].astype(np.float64)
    assert np.all(j >= 0.0)
    np.testing.assert_allclose(j.sum(axis=1), 1.0, atol=1e-6)
    regressed = j @ arrays["v_template"].astype(np.float64)
    np.testing.assert_allclose(regressed, arrays["joints"], atol=1e-6)
    np.testing.assert_allclose(arrays["joints"], head.JOINTS, atol=1e-7)


def test_jaw_opening_opens_the_mouth(arrays, mesh):
    before = landmarks(arrays, mesh["v"])
    opened = jaw_lbs(arrays, mesh["v"], 0.3)
    after = landmarks(arrays, opened)
    gap = lambda p: lmk(p, UPPER_LIP_INNER)[1] - lmk(p, LOWER_LIP_INNER)[1]
    assert gap(before) < 0.003
    assert gap(after) > 0.025  # a wide-open mouth
    assert np.linalg.norm(lmk(after, UPPER_LIP_INNER) - lmk(before, UPPER_LIP_INNER)) < 1e-4
    # The band between the lips is mouth interior and is pulled into the mouth.
    band = arrays["region"] == head.MOUTH_INTERIOR
    assert np.ptp(opened[band, 1]) > 0.012
    assert opened[band, 2].min() < mesh["v"][band, 2].min() - 0.01
    # The forehead does not move; the same pose through flamenerf.geometry.flame agrees.
    top = mesh["v"][:, 1] > 0.06
    np.testing.assert_allclose(opened[top], mesh["v"][top], atol=1e-9)
    model = flame.model_from_arrays(arrays)
    out = flame.forward(model, flame.FlameParams(jaw_pose=np.array([0.3, 0.0, 0.0])))
    np.testing.assert_allclose(np.asarray(out.vertices), opened, atol=2e-6)


def test_posedirs_only_deepen_the_mouth(arrays):
    posedirs = arrays["posedirs"]
    used = np.flatnonzero(np.abs(posedirs).max(axis=(0, 1)) > 0)
    assert set(used.tolist()) <= set(range(9, 18))  # jaw features only
    moved = np.abs(posedirs).max(axis=(1, 2)) > 0
    assert set(np.unique(arrays["region"][moved])) <= {head.MOUTH_INTERIOR, head.LIPS}


# ----------------------------------------------------------------------------- bases


def test_expression_magnitudes_are_plausible_and_local(mesh):
    back = mesh["v"][:, 2] < -0.05
    for k in range(head.NUM_EXPRESSION):
        norm = np.linalg.norm(mesh["expr"][:, :, k], axis=1)
        assert 0.002 < norm.max() < 0.015, head.EXPRESSION_NAMES[k]
        assert norm[back].max() < 1e-4, head.EXPRESSION_NAMES[k]
    for k in range(head.NUM_SHAPE):
        norm = np.linalg.norm(mesh["shape"][:, :, k], axis=1)
        assert 0.0015 < norm.max() < 0.012, head.SHAPE_NAMES[k]


@pytest.mark.parametrize("k", [k for k in range(16) if k != 6])
def test_expressions_never_self_intersect(mesh, k):
    """Over coefficients -1..2 the skin stays star-shaped about its centre (so embedded)."""
    for coefficient in (-1.0, 2.0):
        v = expressed(mesh, k, coefficient)
        assert np.all(skin_orientation(v, mesh["skin_faces"]) > 0.0), coefficient


def test_shapes_never_self_intersect(mesh):
    for k in range(head.NUM_SHAPE):
        for coefficient in (-3.0, 3.0):
            v = mesh["v"] + coefficient * mesh["shape"][:, :, k]
            assert np.all(skin_orientation(v, mesh["skin_faces"]) > 0.0), head.SHAPE_NAMES[k]
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = mesh["v"] + mesh["shape"] @ rng.normal(size=head.NUM_SHAPE)
        assert np.all(skin_orientation(v, mesh["skin_faces"]) > 0.0)


def test_smile_lifts_the_mouth_corners_up_and_out(arrays, mesh):
    before, after = landmarks(arrays, mesh["v"]), landmarks(arrays, expressed(mesh, 0, 1.0))
    for corner, side in ((RIGHT_MOUTH_CORNER, -1.0), (LEFT_MOUTH_CORNER, 1.0)):
        move = lmk(after, corner) - lmk(before, corner)
        assert move[1] > 0.004 and side * move[0] > 0.002


def test_brow_raise_moves_brows_up_not_the_mouth(arrays, mesh):
    d = mesh["expr"][:, :, 1]
    brows = arrays["region"] == head.BROW
    mouth = np.isin(arrays["region"], (head.LIPS, head.MOUTH_INTERIOR))
    assert d[brows, 1].mean() > 0.005
    assert d[brows, 1].mean() > 10 * np.abs(d[mouth]).max()


def test_cheek_puff_pushes_the_cheeks_out(mesh):
    v, d = mesh["v"], mesh["expr"][:, :, 2]
    outward = np.einsum("ij,ij->i", d, v - head.STAR_CENTER) / np.linalg.norm(
        v - head.STAR_CENTER, axis=1
    )
    cheeks = (np.abs(np.abs(v[:, 0]) - 0.04) < 0.008) & (np.abs(v[:, 1] + 0.042) < 0.008)
    cheeks &= v[:, 2] > 0.03
    assert outward[cheeks].min() > 0.004


def test_pucker_pushes_the_lips_forward_and_together(arrays, mesh):
    before, after = landmarks(arrays, mesh["v"]), landmarks(arrays, expressed(mesh, 3, 1.0))
    assert (lmk(after, UPPER_LIP_TOP) - lmk(before, UPPER_LIP_TOP))[2] > 0.004
    width = lambda p: lmk(p, LEFT_MOUTH_CORNER)[0] - lmk(p, RIGHT_MOUTH_CORNER)[0]
    assert width(after) < width(before) - 0.004


def test_brow_lowerer_pulls_the_inner_brows_down_and_together(arrays, mesh):
    before, after = landmarks(arrays, mesh["v"]), landmarks(arrays, expressed(mesh, 4, 1.0))
    inner = (21, 22)
    assert all((lmk(after, i) - lmk(before, i))[1] < -0.002 for i in inner)
    gap = lambda p: lmk(p, 22)[0] - lmk(p, 21)[0]
    assert gap(after) < gap(before) - 0.002


def test_upper_lip_raise_lifts_the_upper_lip(arrays, mesh):
    before, after = landmarks(arrays, mesh["v"]), landmarks(arrays, expressed(mesh, 5, 1.0))
    up = lambda i: (lmk(after, i) - lmk(before, i))[1]
    assert up(UPPER_LIP_TOP) > 0.003 and up(UPPER_LIP_TOP) > 4 * abs(up(LOWER_LIP_BOTTOM))
    assert up(UPPER_LIP_INNER) - up(LOWER_LIP_INNER) > 0.001  # the lips part


def test_eyes_close_without_cutting_the_eyeballs(arrays, mesh):
    before = landmarks(arrays, mesh["v"])
    gap = lambda p: np.array(
        [lmk(p, u)[1] - lmk(p, lo)[1] for u, lo in zip(UPPER_LIDS, LOWER_LIDS, strict=True)]
    )
    assert np.all(gap(before) > 0.006)
    closed = landmarks(arrays, expressed(mesh, 6, 1.0))
    assert np.all(np.abs(gap(closed)) < 0.0015)
    # Lid skin stays outside the eyeballs while closing; the opening's hidden skin stays in.
    region, skin = arrays["region"], ~mesh["eye"]
    lid = skin & ~np.isin(region, (head.EYE_SOCKET, head.SCLERA))
    for coefficient in (0.25, 0.5, 0.75, 1.0):
        v = expressed(mesh, 6, coefficient)
        for eye in arrays["joints"][3:]:
            assert np.linalg.norm(v[lid] - eye, axis=1).min() > head.EYE_RADIUS
    # No visible triangle turns over between a wide-eyed -0.5 and closed (the hidden skin
    # inside the opening is squeezed behind the eyeball).
    faces = mesh["f"][~np.any(~lid[mesh["f"]], axis=1)]
    normal = lambda v: np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    for coefficient in (-0.5, 1.0):
        dots = np.einsum("ij,ij->i", normal(expressed(mesh, 6, coefficient)), normal(mesh["v"]))
        assert np.all(dots > 0.0), coefficient


def test_more_expressions_move_their_regions(arrays, mesh):
    before = landmarks(arrays, mesh["v"])
    move = lambda k, i: lmk(landmarks(arrays, expressed(mesh, k, 1.0)), i) - lmk(before, i)
    assert move(7, LEFT_MOUTH_CORNER)[0] > 0.004  # mouth stretch
    thickness = lambda p: lmk(p, UPPER_LIP_TOP)[1] - lmk(p, LOWER_LIP_BOTTOM)[1]
    pressed = landmarks(arrays, expressed(mesh, 8, 1.0))
    assert thickness(pressed) < thickness(before) - 0.0015  # lip press
    assert move(9, 31)[1] > 0.002 and move(9, 35)[1] > 0.002  # nose wrinkle lifts the alae
    assert move(10, UPPER_LIP_TOP)[0] > 0.004  # mouth sideways
    assert move(11, LEFT_MOUTH_CORNER)[1] < -0.004  # lip corner depressor
    assert move(13, LOWER_LIP_BOTTOM)[1] < -0.003  # lower lip depressor
    assert move(14, 21)[1] > 0.003 and move(14, 22)[1] > 0.003  # inner brow raise


def test_eyeballs_move_rigidly(mesh, arrays):
    for k in (3, 4):
        eye = arrays["weights"][:, k] > 0.5
        for basis in (mesh["shape"], mesh["expr"]):
            d = basis[eye]
            np.testing.assert_allclose(d, np.broadcast_to(d[:1], d.shape), atol=1e-9)


# ----------------------------------------------------------------------------- landmarks


def test_landmark_embedding(arrays, mesh):
    bary = arrays["lmk_bary_coords"]
    assert np.all(bary >= 0.0)
    np.testing.assert_allclose(bary.sum(axis=1), 1.0, atol=1e-6)
    faces = mesh["f"][arrays["lmk_faces_idx"]]
    assert not np.any(mesh["eye"][faces])  # all on the skin
    points = landmarks(arrays, mesh["v"])
    assert np.argmax(points[:, 2]) == NOSE_TIP - 17
    # Brows (17-26) on the brows, from the subject's right (-x) to the left.
    region = arrays["region"]
    for i in list(RIGHT_BROW) + list(LEFT_BROW):
        assert np.any(region[mesh["f"][arrays["lmk_faces_idx"][i - 17]]] == head.BROW), i
    assert np.all(np.diff(points[:10, 0]) > 0)
    # Nose bridge (27-30) descends along the midline towards the tip.
    bridge = points[27 - 17 : 31 - 17]
    assert np.all(np.abs(bridge[:, 0]) < 0.002) and np.all(np.diff(bridge[:, 1]) < 0)
    # Eyes (36-47) around the eye centres; mouth (48-67) around the mouth.
    for start, eye in ((36, arrays["joints"][4]), (42, arrays["joints"][3])):
        ring = points[start - 17 : start - 11]
        assert np.all(np.linalg.norm(ring[:, :2] - eye[:2], axis=1) < 0.02)
        assert np.all(ring[:, 2] > eye[2])
    assert lmk(points, RIGHT_MOUTH_CORNER)[0] < -0.02 < 0.02 < lmk(points, LEFT_MOUTH_CORNER)[0]
    assert lmk(points, UPPER_LIP_TOP)[1] > lmk(points, UPPER_LIP_INNER)[1]
    assert lmk(points, UPPER_LIP_INNER)[1] > lmk(points, LOWER_LIP_INNER)[1]
    assert lmk(points, LOWER_LIP_INNER)[1] > lmk(points, LOWER_LIP_BOTTOM)[1]
    # Inner lip landmarks ride on their own lip when the jaw opens.
    w = arrays["weights"][:, 2]
    upper = mesh["f"][arrays["lmk_faces_idx"][61 - 17 : 64 - 17]]
    lower = mesh["f"][arrays["lmk_faces_idx"][65 - 17 : 68 - 17]]
    assert np.all(w[upper] < 0.05) and np.all(w[lower] > 0.95)


# ----------------------------------------------------------------------------- files


def test_write_read_round_trip(arrays, tmp_path, monkeypatch):
    monkeypatch.setattr(head.model_file, "build_head", lambda: arrays)
    path = head.write_head(tmp_path / "head.npz")
    assert path == tmp_path / "head.npz"
    assert [p.name for p in tmp_path.iterdir()] == ["head.npz"]  # no temporary left over
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)
        for key in npz.files:
            np.testing.assert_array_equal(npz[key], arrays[key])
            assert npz[key].dtype == arrays[key].dtype


def test_default_head_path_builds_once(arrays, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv("FLAMENERF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(head.model_file, "build_head", lambda: calls.append(1) or arrays)
    first = head.default_head_path()
    assert first == tmp_path / "cache" / "head" / f"procedural_head_v{head.VERSION}.npz"
    assert first.name == "procedural_head_v1.npz" and first.exists()
    assert head.default_head_path() == first
    assert calls == [1]
    assert [p.name for p in first.parent.iterdir()] == [first.name]


def test_cli(arrays, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        head.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--out", "--plot", "--size"))
    monkeypatch.setattr(head.model_file, "build_head", lambda: arrays)
    assert head.main(["--out", str(tmp_path / "missing" / "h.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    out, picture = tmp_path / "h.npz", tmp_path / "h.png"
    assert head.main(["--out", str(out), "--plot", str(picture), "--size", "40"]) == 0
    assert out.exists() and picture.stat().st_size > 1000
