# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.views.expressions: expression sweeps and reanimation from driving parameters,
checked against the conditioning vectors and silhouettes built by hand, and the renders
(`views.output.render_views`) against the plain render of a frame and the spatial prior.

On test_eval's tiny trained experiment (warp off, silhouette spatial prior); the head-pose
tests render the same trained fields through the FLAME guide (`views_util.guided_folder`).
"""

import json

import numpy as np
import pytest
import views_util
from PIL import Image
from scipy.spatial.transform import Rotation
from test_eval import tiny_experiment
from views_util import CODE, CODE_POSE, code_params_file, matrix, write_params

from flamenerf.datasets import rays
from flamenerf.views import expressions, output, reanimation
from flamenerf.views.view import view_rays


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from views_util.restored(tiny_experiment(tmp_path_factory))


@pytest.fixture(scope="module")
def driving_dir(tmp_path_factory):
    return views_util.write_driving(tmp_path_factory.mktemp("driving"))


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    trained = tiny_experiment(tmp_path_factory)
    yield from views_util.restored(
        views_util.guided_folder(trained, tmp_path_factory.mktemp("guided"))
    )


def test_reanimation_uses_the_driving_parameters(loaded, driving_dir):
    exp, state, step = loaded
    views, code = expressions.reanimate_views(exp, driving_dir)
    assert code == exp.capture.train_ids[0] and len(views) == 2
    assert [v.label["flame"] for v in views] == ["a.json", "b.json"]  # sorted by name
    np.testing.assert_allclose(views[0].condition, [2, -1, 0, 0, 0.1, 0], atol=1e-7)
    np.testing.assert_allclose(views[1].condition, [-2, 1.5, 1, 0.3, 0, 0], atol=1e-7)
    # The silhouettes are those of the subject posed with each driving expression.
    subject = exp.capture.flame_params[code]
    driving = [([2, -1], [0, 0.1, 0]), ([-2, 1.5, 1], [0.3, 0, 0])]
    for view, (e, j) in zip(views, driving, strict=True):
        driven = reanimation.with_expression(subject, np.array(e), np.array(j))
        verts = exp.capture.subject.pose([driven]).astype(np.float32)
        camera = exp.capture.cameras[code]
        expected = reanimation.silhouette(exp.capture.flame_model, verts[0], camera)
        np.testing.assert_array_equal(view.inside, expected)
    out = output.render_views(exp, state.params, exp.warp_alpha(step), views, code)
    again = output.render_views(exp, state.params, exp.warp_alpha(step), views[:1], code)
    np.testing.assert_array_equal(out[0]["rgb"], again[0]["rgb"])  # deterministic
    union = views[0].inside | views[1].inside
    assert 0 < union.sum() < union.size
    a, b = out[0]["rgb"], out[1]["rgb"]
    # Spatial prior, warp off: rays outside both silhouettes are exactly unchanged ...
    np.testing.assert_array_equal(a[~union], b[~union])
    # ... while the face changes with the driving parameters.
    assert np.abs(a[union] - b[union]).max() > 1e-4


def test_relative_reanimation_conditions_on_offsets(loaded, driving_dir, tmp_path):
    exp, _, _ = loaded
    write_params(tmp_path / "neutral.json", expression=[1.0, 1.0, 1.0], jaw_pose=[0.1, 0, 0])
    views, _ = expressions.reanimate_views(exp, driving_dir, relative=tmp_path / "neutral.json")
    # Subject neutral = zero expression and jaw: the condition is driving - neutral.
    np.testing.assert_allclose(views[0].condition, [1, -2, -1, -0.1, 0.1, 0], atol=1e-6)
    views, _ = expressions.reanimate_views(
        exp, driving_dir, relative=tmp_path / "neutral.json", subject_neutral="t02"
    )
    own = exp.capture.condition("t02", True)
    np.testing.assert_allclose(views[0].condition, own + [1, -2, -1, -0.1, 0.1, 0], atol=1e-6)


def test_expression_sweep_and_interpolation(loaded):
    exp, _, _ = loaded
    base = exp.capture.condition("t03", True)
    views, code = expressions.expression_views(
        exp, "t03", coefficient=1, value_range=(-1, 1), num_frames=3
    )
    assert code == "t03"
    assert [v.condition[1] for v in views] == [-1.0, 0.0, 1.0]
    for view in views:
        np.testing.assert_allclose(np.delete(view.condition, 1), np.delete(base, 1))
    views, _ = expressions.expression_views(exp, "t03", to_frame="t05", num_frames=2)
    np.testing.assert_allclose(views[0].condition, base, atol=1e-7)
    np.testing.assert_allclose(views[1].condition, exp.capture.condition("t05", True), atol=1e-7)


# ------------------------------------------------------------------------------------------
# Head pose: driven by the parameters (the FLAME guide's rigid part moves the head).


def test_driving_head_pose_of_the_code_frame_reproduces_the_plain_render(guided, tmp_path):
    exp, state, step = guided
    folder = code_params_file(exp, tmp_path / "own")
    alpha = exp.warp_alpha(step)
    renders = {}
    for head_pose in ("code", "driving"):
        views, code = expressions.reanimate_views(exp, folder, code_frame=CODE, head_pose=head_pose)
        assert code == CODE
        pose = reanimation.head_pose(views[0].flame)
        for found, value in zip(pose, CODE_POSE.values(), strict=True):
            np.testing.assert_allclose(found, value, atol=1e-7)
        renders[head_pose] = output.render_views(exp, state.params, alpha, views, code)[0]["rgb"]
    np.testing.assert_array_equal(renders["driving"], renders["code"])
    # The plain render of the frame: its own rays and silhouette, a grid of its parameters.
    batch = rays.frame_rays(exp.capture, CODE, True)
    batch = batch._replace(frame=np.zeros_like(batch.frame))
    np.testing.assert_array_equal(batch.inside.reshape(views[0].inside.shape), views[0].inside)
    grids = exp.grids_for([exp.capture.flame_params[CODE]])
    shape = exp.capture.cameras[CODE].image_shape
    plain = exp.renderer.render_image(state.params, batch, alpha, shape, grids)["rgb"]
    np.testing.assert_allclose(renders["driving"], plain, atol=1e-6)
    # And through the command line.
    out = tmp_path / "cli"
    args = ["reanimate", "--flame_dir", str(folder), "--code_frame", CODE]
    assert views_util.run_cli(exp.base_folder, out, *args, "--head_pose", "driving") == 0
    info = json.loads((out / "render.json").read_text())
    assert info["head_pose"] == "driving"
    png = np.asarray(Image.open(out / "frames" / "00000.png"), np.float64) / 255
    np.testing.assert_allclose(png, np.clip(renders["code"], 0, 1), atol=0.5 / 255 + 1e-6)


def rays_miss_the_head(exp, batch, grids):
    """bool (N,): rays whose samples (near..far) stay beyond the rigid fade of the head of
    every grid frame: farther than radius + fade from the segment between the head ball's
    posed and rest centres (where the guide's rigid part is the identity)."""
    t = np.linspace(exp.capture.scene.near, exp.capture.scene.far, 2000)
    points = batch.origins[:, None] + t[None, :, None] * batch.directions[:, None]
    miss = np.ones(batch.num_rays, bool)
    for f in range(len(grids.radius)):
        rigid, posed = np.asarray(grids.rigid[f], np.float64), np.asarray(grids.centre[f])
        rest = rigid[:, :3] @ posed + rigid[:, 3]
        for s in np.linspace(0.0, 1.0, 20):
            centre = posed + s * (rest - posed)
            distance = np.linalg.norm(points - centre, axis=-1).min(axis=1)
            reach = float(grids.radius[f]) + float(grids.fade) + 0.01  # + sampling slack
            miss &= distance > reach
    return miss


def test_driven_yaw_moves_the_head_and_nothing_far_from_it(guided, tmp_path):
    import jax

    exp, state, step = guided
    yawed = Rotation.from_rotvec(CODE_POSE["global_pose"]) * Rotation.from_euler("y", 10, True)
    folder = code_params_file(exp, tmp_path / "yaw", global_pose=yawed.as_rotvec().tolist())
    alpha = exp.warp_alpha(step)
    # 20 steps leave the head's ball empty (all density on the far wall): random tri-plane
    # features give it texture so that a turned head shows (the property holds for any field).
    noise = lambda x: 3.0 * jax.random.normal(jax.random.PRNGKey(x.size), x.shape, x.dtype)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + noise(x) if "triplane" in jax.tree_util.keystr(path) else x,
        state.params,
    )
    views, renders = [], []
    for head_pose in ("code", "driving"):
        view = expressions.reanimate_views(exp, folder, code_frame=CODE, head_pose=head_pose)[0][0]
        views.append(view)
        renders.append(output.render_views(exp, params, alpha, [view], CODE)[0]["rgb"])
    np.testing.assert_allclose(
        reanimation.head_pose(views[1].flame)[0], yawed.as_rotvec(), atol=1e-7
    )
    # The silhouettes follow the rendered pose (the mesh turned by 10 degrees).
    capture = exp.capture
    for view in views:
        verts = capture.subject.pose([view.flame])[0].astype(np.float32)
        expected = reanimation.silhouette(capture.flame_model, verts, view.camera)
        np.testing.assert_array_equal(view.inside, expected)
    assert not np.array_equal(views[0].inside, views[1].inside)
    # Far from the head (beyond the rigid fade in both poses) nothing moves; the head does.
    grids = [exp.grids_for([v.flame]) for v in views]
    batch = view_rays(exp, views[0], CODE)
    miss = rays_miss_the_head(exp, batch, grids[0]) & rays_miss_the_head(exp, batch, grids[1])
    miss = miss.reshape(views[0].inside.shape)
    assert miss.sum() >= 8 and not np.any(miss & (views[0].inside | views[1].inside))
    np.testing.assert_allclose(renders[0][miss], renders[1][miss], atol=1e-6)
    head = views[0].inside & views[1].inside
    assert head.sum() > 0 and np.abs(renders[0][head] - renders[1][head]).max() > 1e-2


def test_relative_head_pose_composes_onto_the_code_frame(guided, tmp_path):
    exp, _, _ = guided
    neutral = {"global_pose": [0.0, -0.1, 0.0], "translation": [0.0, 0.0, 0.01]}
    write_params(tmp_path / "neutral.json", **neutral)
    write_params(tmp_path / "drive" / "0.json", **neutral)
    write_params(tmp_path / "drive" / "1.json", global_pose=[0.0, 0.1, 0.0], neck_pose=[0.1, 0, 0])
    views, _ = expressions.reanimate_views(
        exp,
        tmp_path / "drive",
        code_frame=CODE,
        relative=tmp_path / "neutral.json",
        head_pose="driving",
    )
    # The driving neutral itself: the code frame's own pose.
    for found, value in zip(reanimation.head_pose(views[0].flame), CODE_POSE.values(), strict=True):
        np.testing.assert_allclose(found, value, atol=1e-6)
    # 0.2 rad of yaw from the neutral onto the code frame; the neck bend; the shift back.
    g, n, t = reanimation.head_pose(views[1].flame)
    expected = matrix(CODE_POSE["global_pose"]) @ matrix([0, 0.2, 0])
    np.testing.assert_allclose(matrix(g), expected, atol=1e-6)
    np.testing.assert_allclose(
        matrix(n), matrix(CODE_POSE["neck_pose"]) @ matrix([0.1, 0, 0]), atol=1e-6
    )
    np.testing.assert_allclose(t, np.add(CODE_POSE["translation"], [0, 0, -0.01]), atol=1e-7)
