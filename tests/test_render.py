# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering: chunking, reanimation from driving parameters, head pose, the CLI and videos.

Shares the tiny trained experiment of test_eval (warp off, silhouette spatial prior); the
head-pose tests render the same trained fields through the FLAME guide (`guided`).
"""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation
from test_eval import tiny_experiment

from flamenerf import eval as eval_lib
from flamenerf import render
from flamenerf.datasets import rays
from flamenerf.evaluation import renderer as evaluation
from flamenerf.geometry import flame
from flamenerf.io import media as video
from flamenerf.views import reanimation


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    return tiny_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(trained):
    exp, state, step, _ = eval_lib.load(trained)
    yield exp, state, step
    exp.close()


def write_params(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))


@pytest.fixture(scope="module")
def driving_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("driving")
    write_params(folder / "b.json", expression=[-2.0, 1.5, 1.0], jaw_pose=[0.3, 0.0, 0.0])
    write_params(folder / "a.json", expression=[2.0, -1.0], jaw_pose=[0.0, 0.1, 0.0])
    return folder


# ------------------------------------------------------------------------------------------
# Pure helpers.


def test_relative_transfer_adds_offsets_to_the_subject_neutral():
    driving = flame.FlameParams(expression=[1.0, 2.0], jaw_pose=[0.3, 0.0, 0.1])
    neutral = flame.FlameParams(expression=[0.5, 0.5, 0.5], jaw_pose=[0.1, 0.0, 0.0])
    subject = flame.FlameParams(expression=[0.1], jaw_pose=[0.0, 0.2, 0.0])
    expression, jaw = reanimation.relative_transfer(driving, neutral, subject, 3)
    np.testing.assert_allclose(expression, [0.6, 1.5, -0.5], atol=1e-6)
    np.testing.assert_allclose(jaw, [0.2, 0.2, 0.1], atol=1e-6)
    zero = reanimation.neutral_of(
        flame.FlameParams(shape=[1.0], expression=[3.0], jaw_pose=[1, 1, 1])
    )
    assert zero.expression is None and zero.jaw_pose is None and zero.shape == [1.0]


def test_conditioning_vector_pads_truncates_and_appends_jaw():
    vector = reanimation.condition(np.array([1.0, 2.0]), np.array([0.1, 0.2, 0.3]), 3, True)
    np.testing.assert_allclose(vector, [1, 2, 0, 0.1, 0.2, 0.3], atol=1e-7)
    assert reanimation.condition(np.arange(5.0), np.zeros(3), 3, False).tolist() == [0, 1, 2]


def test_driven_params_keep_identity_and_head_pose():
    subject = flame.FlameParams(
        shape=[0.5], expression=[1.0], global_pose=[0, 0.2, 0], translation=[0, 0, 0.1]
    )
    driven = reanimation.with_expression(subject, np.array([3.0, 4.0]), np.array([0.2, 0, 0]))
    assert driven.shape == [0.5] and driven.global_pose == [0, 0.2, 0]
    assert driven.translation == [0, 0, 0.1]
    np.testing.assert_allclose(driven.expression, [3, 4])
    np.testing.assert_allclose(driven.jaw_pose, [0.2, 0, 0])


def test_too_many_expression_coefficients_name_the_file(tmp_path):
    write_params(tmp_path / "f.json", expression=[0.0] * 5)
    with pytest.raises(ValueError, match=r"f\.json: field 'expression' has 5 .* at most 3"):
        reanimation.read_sequence(tmp_path, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no \*\.json"):
        reanimation.read_sequence(tmp_path / "empty", 3)


def test_orbit_cameras_look_at_the_centre(loaded):
    exp, _, _ = loaded
    camera = exp.capture.cameras["t00"]
    center = np.array([0.0, 0.05, 0.1])
    full = render.orbit_cameras(camera, center, 4, 360)
    arc = render.orbit_cameras(camera, center, 3, 90)
    radius = np.linalg.norm(camera.position - center)
    for cam in full + arc:
        np.testing.assert_allclose(cam.project(center), camera.principal_point, atol=1e-6)
        assert np.linalg.norm(cam.position - center) == pytest.approx(radius)
    np.testing.assert_allclose(full[0].position, camera.position, atol=1e-9)
    np.testing.assert_allclose(arc[1].position, camera.position, atol=1e-9)  # arc centred
    up = -camera.orientation[1]  # the orbit axis
    offsets = [a.position - center for a in (arc[0], arc[2])]
    offsets = [o - (o @ up) * up for o in offsets]  # components turning about the axis
    cosine = offsets[0] @ offsets[1] / np.linalg.norm(offsets[0]) / np.linalg.norm(offsets[1])
    assert cosine == pytest.approx(0.0, abs=1e-9)  # -45 to +45 degrees


def test_posed_vertices_and_cameras_match_the_capture(loaded, trained):
    exp, _, _ = loaded
    capture = exp.capture
    vertices = reanimation.posed_vertices(
        capture.flame_model, capture.scene, [capture.flame_params["t01"]]
    )
    np.testing.assert_allclose(vertices[0], capture.vertices("t01"), atol=1e-5)
    path = trained.parent / "cap" / "camera" / "t01.json"
    camera = reanimation.read_camera(path, capture.scene, capture.scale)
    np.testing.assert_allclose(camera.position, capture.cameras["t01"].position)
    np.testing.assert_allclose(camera.orientation, capture.cameras["t01"].orientation)
    assert camera.focal_length == capture.cameras["t01"].focal_length


# ------------------------------------------------------------------------------------------
# Rendering with the trained model.


def test_chunked_rendering_equals_unchunked(loaded):
    exp, state, step = loaded
    batch = rays.frame_rays(exp.capture, "v00", True)
    small = evaluation.Renderer(exp.model, exp.mesh, 8)
    large = evaluation.Renderer(exp.model, exp.mesh, 4096)
    alpha = exp.warp_alpha(step)
    a = small.render(state.params, batch, alpha)
    b = large.render(state.params, batch, alpha)
    assert small.chunk == 8 and len(batch) == 192
    for key in ("rgb", "depth", "acc"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=1e-5)


def test_reanimation_uses_the_driving_parameters(loaded, driving_dir):
    exp, state, step = loaded
    views, code = render.reanimate_views(exp, driving_dir)
    assert code == exp.capture.train_ids[0] and len(views) == 2
    assert [v.label["flame"] for v in views] == ["a.json", "b.json"]  # sorted by name
    np.testing.assert_allclose(views[0].condition, [2, -1, 0, 0, 0.1, 0], atol=1e-7)
    np.testing.assert_allclose(views[1].condition, [-2, 1.5, 1, 0.3, 0, 0], atol=1e-7)
    # The silhouettes are those of the subject posed with each driving expression.
    subject = exp.capture.flame_params[code]
    driving = [([2, -1], [0, 0.1, 0]), ([-2, 1.5, 1], [0.3, 0, 0])]
    for view, (e, j) in zip(views, driving, strict=True):
        driven = reanimation.with_expression(subject, np.array(e), np.array(j))
        verts = reanimation.posed_vertices(exp.capture.flame_model, exp.capture.scene, [driven])
        camera = exp.capture.cameras[code]
        expected = reanimation.silhouette(exp.capture.flame_model, verts[0], camera)
        np.testing.assert_array_equal(view.inside, expected)
    out = render.render_views(exp, state.params, exp.warp_alpha(step), views, code)
    again = render.render_views(exp, state.params, exp.warp_alpha(step), views[:1], code)
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
    views, _ = render.reanimate_views(exp, driving_dir, relative=tmp_path / "neutral.json")
    # Subject neutral = zero expression and jaw: the condition is driving - neutral.
    np.testing.assert_allclose(views[0].condition, [1, -2, -1, -0.1, 0.1, 0], atol=1e-6)
    views, _ = render.reanimate_views(
        exp, driving_dir, relative=tmp_path / "neutral.json", subject_neutral="t02"
    )
    own = exp.capture.condition("t02", True)
    np.testing.assert_allclose(views[0].condition, own + [1, -2, -1, -0.1, 0.1, 0], atol=1e-6)


def test_capture_camera_path_views(loaded, trained):
    exp, _, _ = loaded
    cameras = trained.parent / "cap" / "camera"
    folder = trained.parent / "cap" / "camera-paths" / "spin"
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame_id in enumerate(["t04", "t02"]):
        (folder / f"{k:03d}.json").write_text((cameras / f"{frame_id}.json").read_text())
    views, code = render.path_views(exp, expression_frame="t01", path="spin")
    assert code == "t01" and [v.label["camera"] for v in views] == ["spin/00000", "spin/00001"]
    own = exp.capture.condition("t01", True)
    for view, frame_id in zip(views, ["t04", "t02"], strict=True):
        np.testing.assert_allclose(view.camera.position, exp.capture.cameras[frame_id].position)
        np.testing.assert_allclose(view.condition, own)
        silhouette = reanimation.silhouette(
            exp.capture.flame_model, exp.capture.vertices("t01"), view.camera
        )
        np.testing.assert_array_equal(view.inside, silhouette)


def test_expression_sweep_and_interpolation(loaded):
    exp, _, _ = loaded
    base = exp.capture.condition("t03", True)
    views, code = render.expression_views(exp, "t03", coefficient=1, value_range=(-1, 1), frames=3)
    assert code == "t03"
    assert [v.condition[1] for v in views] == [-1.0, 0.0, 1.0]
    for view in views:
        np.testing.assert_allclose(np.delete(view.condition, 1), np.delete(base, 1))
    views, _ = render.expression_views(exp, "t03", to_frame="t05", frames=2)
    np.testing.assert_allclose(views[0].condition, base, atol=1e-7)
    np.testing.assert_allclose(views[1].condition, exp.capture.condition("t05", True), atol=1e-7)


# ------------------------------------------------------------------------------------------
# The command line.


def run_cli(trained, out, *args):
    return render.main(["--base_folder", str(trained), *args, "--out", str(out)])


@pytest.mark.parametrize(
    "args, frames",
    [
        (["path", "--orbit", "2", "--expression_frame", "t01"], 2),
        (["expression", "--camera_frame", "v00", "--to_frame", "t02", "--frames", "2"], 2),
        (["reanimate", "--flame_dir", "DRIVING"], 2),
    ],
)
def test_subcommands_write_frames_and_a_video(trained, driving_dir, tmp_path, capsys, args, frames):
    args = [str(driving_dir) if a == "DRIVING" else a for a in args]
    assert run_cli(trained, tmp_path / "out", *args) == 0, capsys.readouterr().err
    written = sorted((tmp_path / "out" / "frames").glob("*.png"))
    assert [p.name for p in written] == [f"{i:05d}.png" for i in range(frames)]
    assert np.asarray(Image.open(written[0])).shape == (12, 16, 3)
    info = json.loads((tmp_path / "out" / "render.json").read_text())
    assert (tmp_path / "out" / info["video"]).stat().st_size > 0
    assert info["command"] == args[0] and len(info["frames"]) == frames


def test_reanimate_cli_names_a_file_with_too_many_coefficients(trained, tmp_path, capsys):
    write_params(tmp_path / "drive" / "000.json", expression=[0.1, 0.2])
    write_params(tmp_path / "drive" / "001.json", expression=[0.1, 0.2, 0.3, 0.4])
    code = run_cli(trained, tmp_path / "out", "reanimate", "--flame_dir", str(tmp_path / "drive"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "drive" / "001.json") in err and "'expression' has 4" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["expression", "--camera_frame", "nope", "--to_frame", "t01"], "--camera_frame nope"),
        (["expression", "--camera_frame", "t00"], "either --to_frame"),
        (["expression", "--camera_frame", "t00", "--coefficient", "3"], "--coefficient 3"),
        (["path", "--path", "nowhere"], "--path nowhere"),
        (["reanimate", "--flame_dir", "missing"], "missing: folder of FLAME"),
    ],
)
def test_bad_arguments_error_in_one_line(trained, tmp_path, capsys, args, message):
    assert run_cli(trained, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_help_documents_every_flag(capsys):
    flags = {
        "path": [
            "--path",
            "--orbit",
            "--orbit_degrees",
            "--expression_frame",
            "--head_yaw",
            "--head_pitch",
            "--frames",
        ],
        "expression": ["--camera_frame", "--to_frame", "--coefficient", "--range", "--frames"],
        "reanimate": ["--flame_dir", "--camera", "--relative", "--subject_neutral", "--head_pose"],
    }
    defaults = {
        "path": [f"(default {render.DEFAULT_HEAD_SWEEP_FRAMES})", "default: no sweep"],
        "expression": [],
        "reanimate": ["code|driving", "(default: code)"],
    }
    common = ["--base_folder", "--out", "--fps", "--code_frame", "--checkpoint", "--scale"]
    for command, names in flags.items():
        with pytest.raises(SystemExit) as exit_info:
            render.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for name in names + common:
            assert name in text, (command, name)
        for default in defaults[command]:
            assert default in " ".join(text.split()), (command, default)


# ------------------------------------------------------------------------------------------
# Videos.


def test_video_falls_back_to_a_gif_without_ffmpeg(tmp_path, monkeypatch):
    frames = [np.full((5, 7, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    monkeypatch.setattr(video, "ffmpeg_path", lambda: None)
    result = video.write_video(tmp_path / "video.mp4", frames, fps=10)
    assert result.path == tmp_path / "video.gif" and "no ffmpeg" in result.note
    with Image.open(result.path) as gif:
        assert gif.n_frames == 3 and gif.size == (7, 5)


def test_video_writes_an_mp4_with_odd_sizes(tmp_path):
    if video.ffmpeg_path() is None:
        pytest.skip("no ffmpeg binary")
    import mediapy

    frames = [np.full((5, 7, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    result = video.write_video(tmp_path / "video.mp4", frames, fps=10)
    assert result.path == tmp_path / "video.mp4" and result.note == ""
    assert mediapy.read_video(result.path).shape == (3, 6, 8, 3)  # padded to even sizes


# ------------------------------------------------------------------------------------------
# Head pose: driven by the parameters, swept before a fixed camera.

CODE = "t01"
CODE_POSE = {"global_pose": [0.0, 0.08, 0.0], "neck_pose": [0.05, 0.0, 0.02]}
CODE_POSE["translation"] = [0.004, -0.002, 0.0]
FADE_M = 0.01  # GuideConfig.rigid_fade_m of `guided`: the image corners lie beyond the fade


def rotation_y(degrees):
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_x(degrees):
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def matrix(rotvec):
    return Rotation.from_rotvec(np.asarray(rotvec, np.float64)).as_matrix()


@pytest.fixture(scope="module")
def guided_folder(trained, tmp_path_factory):
    """The tiny experiment's trained fields rendered through the FLAME guide with its rigid
    part (the guide has no parameters), on a copy of the capture where the code frame has a
    head pose (yaw, neck bend and a shift)."""
    root = tmp_path_factory.mktemp("guided")
    shutil.copytree(trained.parent / "cap", root / "cap")
    shutil.copytree(trained, root / "exp")
    flame_file = root / "cap" / "flame" / f"{CODE}.json"
    flame_file.write_text(json.dumps(dict(json.loads(flame_file.read_text()), **CODE_POSE)))
    config = root / "exp" / "config.gin"
    config.write_text(
        config.read_text()
        + "\nGuideConfig.enabled = True\nGuideConfig.resolution = 16\n"
        + f"GuideConfig.rigid_fade_m = {FADE_M}\n"
        + f"DataConfig.capture = {json.dumps(str(root / 'cap'))}\n"
    )
    return root / "exp"


@pytest.fixture(scope="module")
def guided(guided_folder):
    exp, state, step, _ = eval_lib.load(guided_folder)
    yield exp, state, step
    exp.close()


def code_params_file(exp, folder, **changes):
    """The code frame's own FLAME parameters as a driving file (with `changes`)."""
    raw = json.loads((exp.capture.root / "flame" / f"{CODE}.json").read_text())
    write_params(folder / "000.json", **dict(raw, **changes))
    return folder


def test_head_pose_helpers_against_rotation_matrices():
    subject = flame.FlameParams(shape=[0.5], expression=[1.0], eye_pose=[0.1] * 6, **CODE_POSE)
    # turn_head: neck R -> R R_y(yaw) R_x(pitch), the rest kept; zero angles: unchanged.
    turned = reanimation.turn_head(subject, 10.0, -5.0)
    expected = matrix(CODE_POSE["neck_pose"]) @ rotation_y(10.0) @ rotation_x(-5.0)
    np.testing.assert_allclose(matrix(turned.neck_pose), expected, atol=1e-6)
    assert turned.global_pose == subject.global_pose and turned.eye_pose == subject.eye_pose
    assert reanimation.turn_head(subject, 0.0, 0.0) is subject
    # A positive yaw turns the face (+z) towards +x; a positive pitch tilts it down (-y).
    np.testing.assert_allclose(
        matrix(reanimation.turn_head(flame.FlameParams(), 30.0, 0.0).neck_pose) @ [0, 0, 1],
        [0.5, 0.0, np.sqrt(3) / 2],
        atol=1e-6,
    )
    down = matrix(reanimation.turn_head(flame.FlameParams(), 0.0, 30.0).neck_pose) @ [0, 0, 1]
    np.testing.assert_allclose(down, [0.0, -0.5, np.sqrt(3) / 2], atol=1e-6)
    # relative_head_pose: R_subject R_neutral^T R_driving per joint; translations add.
    neutral = flame.FlameParams(global_pose=[0.1, -0.2, 0.05], translation=[0.01, 0.0, 0.02])
    driving = flame.FlameParams(
        global_pose=[0.3, 0.1, -0.1], neck_pose=[0.0, 0.2, 0.0], translation=[0.0, 0.01, 0.0]
    )
    g, n, t = reanimation.relative_head_pose(driving, neutral, subject)
    np.testing.assert_allclose(
        matrix(g),
        matrix(CODE_POSE["global_pose"]) @ matrix([0.1, -0.2, 0.05]).T @ matrix([0.3, 0.1, -0.1]),
        atol=1e-9,
    )
    np.testing.assert_allclose(matrix(n), matrix(CODE_POSE["neck_pose"]) @ matrix([0, 0.2, 0]))
    np.testing.assert_allclose(t, np.add(CODE_POSE["translation"], [-0.01, 0.01, -0.02]))
    # The driving neutral's own pose transfers as the subject's; the rotation offset does not
    # depend on how the driving capture's FLAME space is turned.
    same = reanimation.relative_head_pose(neutral, neutral, subject)
    for found, pose in zip(same, reanimation.head_pose(subject), strict=True):
        np.testing.assert_allclose(found, pose, atol=1e-9)
    q = Rotation.from_rotvec([0.4, -0.3, 0.2])
    turn = lambda p: p._replace(
        global_pose=(q * Rotation.from_rotvec(reanimation.head_pose(p)[0])).as_rotvec()
    )
    g2, _, _ = reanimation.relative_head_pose(turn(driving), turn(neutral), subject)
    np.testing.assert_allclose(g2, g, atol=1e-9)


def test_driving_head_pose_of_the_code_frame_reproduces_the_plain_render(
    guided, guided_folder, tmp_path
):
    exp, state, step = guided
    folder = code_params_file(exp, tmp_path / "own")
    alpha = exp.warp_alpha(step)
    renders = {}
    for head_pose in ("code", "driving"):
        views, code = render.reanimate_views(exp, folder, code_frame=CODE, head_pose=head_pose)
        assert code == CODE
        pose = reanimation.head_pose(views[0].flame)
        for found, value in zip(pose, CODE_POSE.values(), strict=True):
            np.testing.assert_allclose(found, value, atol=1e-7)
        renders[head_pose] = render.render_views(exp, state.params, alpha, views, code)[0]["rgb"]
    np.testing.assert_array_equal(renders["driving"], renders["code"])
    # The plain render of the frame: its own rays and silhouette, a grid of its parameters.
    batch = rays.frame_rays(exp.capture, CODE, True)
    batch = rays.RayBatch(**dict(batch._asdict(), frame=np.zeros_like(batch.frame)))
    np.testing.assert_array_equal(batch.inside.reshape(views[0].inside.shape), views[0].inside)
    grids = exp.grids_for([exp.capture.flame_params[CODE]])
    shape = exp.capture.cameras[CODE].image_shape
    plain = exp.renderer.render_image(state.params, batch, alpha, shape, grids)["rgb"]
    np.testing.assert_allclose(renders["driving"], plain, atol=1e-6)
    # And through the command line.
    out = tmp_path / "cli"
    args = ["reanimate", "--flame_dir", str(folder), "--code_frame", CODE]
    assert run_cli(guided_folder, out, *args, "--head_pose", "driving") == 0
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
    miss = np.ones(len(batch), bool)
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
        view = render.reanimate_views(exp, folder, code_frame=CODE, head_pose=head_pose)[0][0]
        views.append(view)
        renders.append(render.render_views(exp, params, alpha, [view], CODE)[0]["rgb"])
    np.testing.assert_allclose(
        reanimation.head_pose(views[1].flame)[0], yawed.as_rotvec(), atol=1e-7
    )
    # The silhouettes follow the rendered pose (the mesh turned by 10 degrees).
    capture = exp.capture
    for view in views:
        verts = reanimation.posed_vertices(capture.flame_model, capture.scene, [view.flame])[0]
        expected = reanimation.silhouette(capture.flame_model, verts, view.camera)
        np.testing.assert_array_equal(view.inside, expected)
    assert not np.array_equal(views[0].inside, views[1].inside)
    # Far from the head (beyond the rigid fade in both poses) nothing moves; the head does.
    grids = [exp.grids_for([v.flame]) for v in views]
    batch = render.view_rays(exp, views[0], CODE)
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
    views, _ = render.reanimate_views(
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


def test_head_sweep_turns_the_head_before_the_code_frames_camera(guided, guided_folder, tmp_path):
    exp, _, _ = guided
    views, code = render.path_views(
        exp, expression_frame=CODE, head_yaw=(-10.0, 10.0), head_pitch=(5.0, 5.0), frames=3
    )
    assert code == CODE and len(views) == 3
    assert [v.label["head_yaw"] for v in views] == [-10.0, 0.0, 10.0]
    assert [v.label["head_pitch"] for v in views] == [5.0, 5.0, 5.0]
    for view, yaw in zip(views, (-10.0, 0.0, 10.0), strict=True):
        assert view.camera is exp.capture.cameras[CODE]  # the camera stays
        expected = matrix(CODE_POSE["neck_pose"]) @ rotation_y(yaw) @ rotation_x(5.0)
        np.testing.assert_allclose(matrix(view.flame.neck_pose), expected, atol=1e-6)
        np.testing.assert_allclose(view.flame.global_pose, CODE_POSE["global_pose"])
        np.testing.assert_allclose(view.condition, exp.capture.condition(CODE, True))
    assert not np.array_equal(views[0].inside, views[2].inside)
    out = tmp_path / "sweep"
    args = ["path", "--head_yaw", "-10", "10", "--frames", "4", "--expression_frame", CODE]
    assert run_cli(guided_folder, out, *args) == 0
    written = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in written] == [f"{i:05d}.png" for i in range(4)]
    info = json.loads((out / "render.json").read_text())
    assert [f["head_yaw"] for f in info["frames"]] == pytest.approx([-10, -10 / 3, 10 / 3, 10])
    assert [f["head_pitch"] for f in info["frames"]] == [0.0] * 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["reanimate", "--flame_dir", "x", "--head_pose", "sideways"], "--head_pose sideways"),
        (["path", "--head_yaw", "0", "10", "--orbit", "3"], "not with --path or --orbit"),
        (["path", "--frames", "3"], "--frames 3: goes with --head_yaw"),
        (["path", "--head_pitch", "0", "10", "--frames", "0"], "--frames 0: expected at least"),
    ],
)
def test_bad_head_pose_arguments_error_in_one_line(guided_folder, tmp_path, capsys, args, message):
    assert run_cli(guided_folder, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args", [["path", "--head_yaw", "0", "10"], ["reanimate", "--head_pose", "driving"]]
)
def test_head_motion_needs_the_guides_rigid_part(trained, driving_dir, tmp_path, capsys, args):
    args = args + (["--flame_dir", str(driving_dir)] if args[0] == "reanimate" else [])
    assert run_cli(trained, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot move the head" in err
    assert "GuideConfig.enabled = False" in err and str(trained / "config.gin") in err
