# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.export` on test_eval's tiny trained experiment: the files, the asset's
frame and default camera, a rerun that reuses the finished stages, and bad input (exit 2,
one line naming the flag or file)."""

import functools
import json

import numpy as np
import pytest
from export_util import SPHERE_BAKE, head_sphere
from test_eval import tiny_experiment

from flamenerf import __main__ as dispatcher
from flamenerf.export import __main__ as cli
from flamenerf.export import bake, field, gltf, pipeline, preview, rig
from flamenerf.geometry.camera import Camera
from flamenerf.training.experiment import Experiment

GRIDS = ("resolution", "body_resolution", "head_resolution")  # set by FLAGS
SMALL = {k: v for k, v in SPHERE_BAKE.items() if k not in GRIDS}
FLAGS = [*(f"--{k}={SPHERE_BAKE[k]}" for k in GRIDS), "--quiet"]


@pytest.fixture(autouse=True)
def small_bakes(monkeypatch):
    """The CLI's bakes with small frustum grids (the defaults are sized for real captures)."""
    monkeypatch.setattr(bake, "BakeOptions", functools.partial(bake.BakeOptions, **SMALL))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def driving(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drive") / "talk"
    folder.mkdir()
    for k in range(3):
        (folder / f"{k:03d}.json").write_text(
            json.dumps({"expression": [0.1 * k, -0.2], "jaw_pose": [0.05 * k, 0, 0]})
        )
    return folder


@pytest.fixture(scope="module")
def exported(trained, driving, tmp_path_factory):
    """The CLI's export of the tiny experiment with the head sphere as its canonical field."""
    out = tmp_path_factory.mktemp("export") / "avatar"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bake, "BakeOptions", functools.partial(bake.BakeOptions, **SMALL))
        patch.setattr(field, "CanonicalField", lambda model, *a, **k: FIELD["sphere"])
        from flamenerf.training.experiment import Experiment

        with Experiment.restore(trained) as restored:
            FIELD["sphere"] = head_sphere(restored.exp)
        code = cli.main(
            ["--base_folder", str(trained), "--out", str(out), "--animation", str(driving), *FLAGS]
        )
    return out, code


FIELD = {}


def test_writes_the_asset_page_and_report(exported, trained):
    out, code = exported
    assert code == 0
    asset = gltf.read_glb((out / "avatar.glb").read_bytes())
    report = json.loads((out / "export.json").read_text())
    assert report["checkpoint"] == 20 and report["default_frame"] == "t00"
    assert report["triangles"] == {"room": len(asset.room.faces), "head": len(asset.head.faces)}
    assert report["bytes"]["avatar.glb"] == (out / "avatar.glb").stat().st_size
    assert report["options"]["bake"]["resolution"] == 20
    assert report["animations"] == ["talk"]
    assert asset.triangles > 0 and asset.num_expression == 3  # the capture's scene.json
    assert [a.name for a in asset.animations] == ["talk"]
    np.testing.assert_allclose(
        asset.animations[0].expression[:, :2], [[0, -0.2], [0.1, -0.2], [0.2, -0.2]], atol=1e-6
    )
    # No head pose in the driving files: the neck stays at its rest translation and rotation.
    still = asset.animations[0]
    np.testing.assert_allclose(
        still.neck_translation, [asset.skeleton.neck_translation] * 3, atol=1e-6
    )
    np.testing.assert_allclose(np.abs(still.neck @ asset.skeleton.neck_rotation), 1.0, atol=1e-6)
    html = (out / "index.html").read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    assert (out / "index.html").stat().st_size > (out / "avatar.glb").stat().st_size
    assert (out / pipeline.CACHE_FOLDER).is_dir()
    # The colours were fitted to the NeRF's renders of every training frame (fewer than 120).
    fit = report["colour_fit"]
    with Experiment.restore(trained) as restored:
        frames = len(restored.exp.capture.train_ids)
    assert fit["frames"] == frames and fit["pixels"] > 0
    assert fit["rmse_after"] < fit["rmse_before"]


def test_the_fits_targets_are_the_nerfs_renders(trained):
    """`pipeline.nerf_renders` at a frame's own camera (no distortion here, full size) is what
    `eval` renders for that frame (`evaluate_frame`: the capture's rays, codes and guide)."""
    from flamenerf.evaluation.evaluate import evaluate_frame

    with Experiment.restore(trained) as restored:
        exp = restored.exp
        capture = exp.capture
        frame = capture.train_ids[1]
        camera = pipeline.fit_camera(capture.cameras[frame], 10_000)
        assert not capture.cameras[frame].has_distortion
        assert camera.image_size == capture.cameras[frame].image_size
        images = pipeline.nerf_renders(restored, {frame: camera})
        want = evaluate_frame(
            exp.renderer,
            capture,
            frame,
            restored.state.params,
            exp.warp_alpha(restored.checkpoint),
            exp.frame_grids([frame]),
            use_jaw=exp.expression_config.use_jaw,
            names=["psnr"],
        )
    np.testing.assert_allclose(images[frame], np.clip(want.render["rgb"], 0, 1), atol=1e-5)


def test_fit_cameras_and_frames():
    camera = Camera(
        orientation=np.eye(3),
        position=[0.0, 0.0, 0.0],
        focal_length=500.0,
        principal_point=[256.0, 192.0],
        image_size=(512, 384),
        radial_distortion=[0.1, 0.0, 0.0],
    )
    small = pipeline.fit_camera(camera, 128)
    assert small.image_size == (128, 96) and small.focal_length == pytest.approx(125.0)
    assert not small.has_distortion and camera.has_distortion
    assert pipeline.fit_camera(camera, 1024).image_size == (512, 384)  # never enlarged

    class Frames:
        train_ids = [f"t{k}" for k in range(10)]

    assert pipeline.fit_frames(Frames, 4) == ["t0", "t3", "t6", "t9"]
    assert pipeline.fit_frames(Frames, 50) == Frames.train_ids


def test_the_head_is_rigged_in_the_world_frame(exported, trained):
    """The head mesh's skin weights and morph targets are the rig's of its vertices, moved
    from the model frame to the capture's world (x / scale + center)."""
    from flamenerf.training.experiment import Experiment

    out, _ = exported
    asset = gltf.read_glb((out / "avatar.glb").read_bytes())
    head = asset.head
    assert len(head.faces) > 100 and len(asset.room.faces) > 100
    with Experiment.restore(trained) as restored:
        exp = restored.exp
        scene = exp.capture.scene
        settings = exp.guide_settings()
        rest = rig.flame_rest(exp.capture.subject, exp.capture.flame_params["t00"], 3)
    model = (head.positions.astype(np.float64) - scene.center) * scene.scale
    want = rig.rig_points(model, rest, settings.sigma, settings.rigid_fade)
    np.testing.assert_allclose(head.weights[:, :3], want.skin_weights, atol=1e-5)
    assert np.all(head.weights[:, 3] == 0)
    np.testing.assert_array_equal(head.joints, np.where(head.weights > 0, [0, 1, 2, 0], 0))
    morphs = want.morphs / scene.scale
    small = np.linalg.norm(morphs, axis=-1).max(axis=0) < pipeline.MORPH_FLOOR_M
    morphs[:, small] = 0
    np.testing.assert_allclose(head.targets, morphs, atol=1e-6)
    assert np.abs(head.targets).max() > 0  # vertices near the octahedron's tips morph
    # Posed at rest, the asset is the stored mesh; posed, the head moves and the room stays.
    room, posed = preview.pose(asset, rig.Pose(np.array([1.0, 0, 0]), jaw=0.2, yaw=0.3))
    np.testing.assert_array_equal(room, asset.room.positions)
    assert np.abs(posed - head.positions).max() > 0.01


def test_default_camera_sees_the_world_as_the_capture_does(exported, trained):
    from flamenerf.training.experiment import Experiment

    out, _ = exported
    asset = gltf.read_glb((out / "avatar.glb").read_bytes())
    info = asset.info["default_camera"]
    world_from_camera = np.array(info["world_from_camera"]).reshape(4, 4).T
    projection = np.array(info["projection"]).reshape(4, 4).T
    with Experiment.restore(trained) as restored:
        capture = restored.exp.capture
        camera = capture.cameras["t00"]  # model frame
        scene = capture.scene
        points = capture.vertices("t00")
    world = points / scene.scale + scene.center
    clip = (projection @ np.linalg.inv(world_from_camera) @ np.c_[world, np.ones(len(world))].T).T
    ndc = clip[:, :2] / clip[:, 3:]
    pixels = np.stack(
        [(ndc[:, 0] + 1) / 2 * info["width"], (1 - ndc[:, 1]) / 2 * info["height"]], 1
    )
    np.testing.assert_allclose(pixels, camera.project(points), atol=1e-5)
    assert (info["width"], info["height"]) == camera.image_size
    assert preview.near_far(projection) == pytest.approx((asset.info["near"], asset.info["far"]))


def test_rerun_reuses_the_finished_stages(trained, tmp_path, capsys):
    """The real (tiny, untrained) field: exported, then again from the cache."""
    out = tmp_path / "real"
    assert cli.main(["--base_folder", str(trained), "--out", str(out), *FLAGS]) == 0
    cache = out / pipeline.CACHE_FOLDER
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(p.name.startswith("mesh-") for p in stamps)
    before = json.loads((out / "export.json").read_text())
    assert cli.main(["--base_folder", str(trained), "--out", str(out), *FLAGS]) == 0
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == stamps
    after = json.loads((out / "export.json").read_text())
    assert after["triangles"] == before["triangles"] and after["animations"] == []
    assert "avatar.glb" in capsys.readouterr().out
    gltf.read_glb((out / "avatar.glb").read_bytes())


def test_another_experiments_export_needs_overwrite(trained, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "export.json").write_text(json.dumps({"base_folder": "/elsewhere/exp"}))
    assert cli.main(["--base_folder", str(trained), "--out", str(out), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "/elsewhere/exp" in err
    assert (
        dispatcher.main(
            ["export", "--base_folder", str(trained), "--out", str(out), "--overwrite", *FLAGS]
        )
        == 0
    )
    assert json.loads((out / "export.json").read_text())["base_folder"] == str(trained)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--default_frame", "nope"], "--default_frame nope"),
        (["--animation", "MISSING"], "--animation"),
        (["--fps", "0"], "--fps 0"),
        (["--resolution", "1"], "--resolution"),
        (["--checkpoint", "7"], "no checkpoint at step 7"),
    ],
)
def test_bad_input_is_one_line(trained, tmp_path, capsys, extra, expected):
    extra = [str(tmp_path / "missing") if e == "MISSING" else e for e in extra]
    assert (
        cli.main(["--base_folder", str(trained), "--out", str(tmp_path / "o"), *FLAGS, *extra]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err
    assert not (tmp_path / "o" / "avatar.glb").exists()


def test_not_an_experiment_and_out_a_file(tmp_path, capsys):
    assert cli.main(["--base_folder", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not an experiment folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--base_folder", "--out", "--animation"])
def test_urls_are_refused_and_nothing_is_made(tmp_path, capsys, monkeypatch, flag):
    """Export takes local folders only: a URL exits 2 naming it, and never becomes a local
    folder named gs:."""
    monkeypatch.chdir(tmp_path)
    argv = {"--base_folder": "exp", "--out": "out"}
    argv[flag] = "gs://bucket/thing"
    args = [item for pair in argv.items() for item in pair]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert f"argument {flag}: gs://bucket/thing" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_expression_flag_reaches_the_bake(trained, tmp_path, monkeypatch, capsys):
    """--expression picks `BakeOptions.expression`; a misspelt value is refused by argparse."""
    seen = []

    def export(restored, out, options, overwrite, show_progress):
        seen.append(options.bake.expression)
        return {"triangles": {"room": 1, "head": 1}, "bytes": {"avatar.glb": 1}}

    monkeypatch.setattr(pipeline, "export", export)
    base = ["--base_folder", str(trained), "--out", str(tmp_path / "o"), *FLAGS]
    assert cli.main(base) == 0
    assert cli.main([*base, "--expression", "zero"]) == 0
    assert seen == [bake.BakeOptions().expression, "zero"] == ["mean", "zero"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*base, "--expression", "neutral"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--expression" in err and "'mean', 'zero'" in err
