# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.views.output: the renderer's chunking, and the files written for a render.

(`render_views` itself is checked in test_views_expressions: deterministic, and equal to the
plain render of a frame.)
"""

import json

import numpy as np
import pytest
import views_util
from PIL import Image
from test_eval import tiny_experiment

from flamenerf.datasets import rays
from flamenerf.evaluation import renderer as evaluation
from flamenerf.io import media
from flamenerf.training import experiment
from flamenerf.views import output, paths


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from views_util.restored(tiny_experiment(tmp_path_factory))


def test_chunked_rendering_equals_unchunked(loaded):
    exp, state, step = loaded
    batch = rays.frame_rays(exp.capture, "v00", True)
    small = evaluation.Renderer(exp.model, exp.mesh, 8)
    large = evaluation.Renderer(exp.model, exp.mesh, 4096)
    alpha = exp.warp_alpha(step)
    a = small.render(state.params, batch, alpha)
    b = large.render(state.params, batch, alpha)
    assert small.chunk == 8 and batch.num_rays == 192
    for key in ("rgb", "depth", "acc"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_outputs_replace_numbered_frames_and_name_the_video(tmp_path, monkeypatch, ffmpeg):
    if not ffmpeg:
        monkeypatch.setattr(media, "ffmpeg_path", lambda: None)
    elif media.ffmpeg_path() is None:
        pytest.skip("no ffmpeg binary")
    out = tmp_path / "out"
    media.write_png(out / "frames" / "00007.png", np.zeros((2, 2, 3)))  # an older render's
    media.write_png(out / "frames" / "notes.png", np.zeros((2, 2, 3)))  # not a frame: kept
    (out / "video.gif").write_bytes(b"older")
    (out / "video.mp4").write_bytes(b"older")
    images = [np.full((4, 6, 3), v, np.float32) for v in (0.0, 1.0)]
    result = output.write_outputs(out, images, {"command": "path"}, fps=5)
    written = sorted(p.name for p in (out / "frames").glob("*.png"))
    assert written == ["00000.png", "00001.png", "notes.png"]
    assert np.asarray(Image.open(out / "frames" / "00001.png")).tolist() == [[[255] * 3] * 6] * 4
    name = "video.mp4" if ffmpeg else "video.gif"
    assert result.path == out / name and result.path.stat().st_size > len(b"older")
    assert sorted(p.name for p in out.glob("video.*")) == [name]
    info = json.loads((out / "render.json").read_text())
    assert info == {"command": "path", "video": name, "video_note": result.note}
    assert ("no ffmpeg" in result.note) != ffmpeg


def test_frames_of_different_sizes_are_a_user_error(tmp_path):
    images = [np.zeros((4, 6, 3), np.float32), np.zeros((6, 4, 3), np.float32)]
    with pytest.raises(experiment.UserError, match="frames of different shapes"):
        output.write_outputs(tmp_path, images, {}, fps=5)
    assert not (tmp_path / "render.json").exists()


def test_render_to_folder_writes_the_rendered_views(loaded, tmp_path):
    exp, state, step = loaded
    views, code = paths.path_views(exp, expression_frame="t01", orbit=2)
    alpha = exp.warp_alpha(step)
    info = {"command": "test"}
    result = output.render_to_folder(exp, state.params, alpha, views, code, tmp_path, info)
    for index, rendered in enumerate(output.render_views(exp, state.params, alpha, views, code)):
        png = np.asarray(Image.open(tmp_path / "frames" / f"{index:05d}.png"), np.float64) / 255
        np.testing.assert_allclose(png, np.clip(rendered["rgb"], 0, 1), atol=0.5 / 255 + 1e-6)
    written = json.loads((tmp_path / "render.json").read_text())
    assert list(written) == ["command", "code_frame", "frames", "video", "video_note"]
    assert written["code_frame"] == code == "t01" and written["video"] == result.path.name
    assert written["frames"] == [v.label for v in views] and len(views) == 2


def test_extra_streams_are_written_beside_the_video_and_removed_when_not_asked(tmp_path):
    out = tmp_path / "out"
    images = [np.full((4, 6, 3), v, np.float32) for v in (0.0, 1.0)]
    depth = [np.full((4, 6, 3), 0.5, np.float32)] * 2
    output.write_outputs(out, images, {}, fps=5, extras={"depth": depth})
    assert sorted(p.name for p in (out / "depth").glob("*.png")) == ["00000.png", "00001.png"]
    info = json.loads((out / "render.json").read_text())
    assert (out / info["depth_video"]).stat().st_size > 0 and "silhouette_video" not in info
    assert info["depth_video"] in ("depth.mp4", "depth.gif")
    # A later render into the folder without --depth leaves no stale depth frames or video.
    output.write_outputs(out, images, {}, fps=5)
    assert not list((out / "depth").glob("*.png")) and not list(out.glob("depth.*"))
    assert "depth_video" not in json.loads((out / "render.json").read_text())
    with pytest.raises(ValueError, match="normals"):
        output.write_outputs(out, images, {}, fps=5, extras={"normals": depth})


def test_render_to_folder_writes_depth_and_silhouette_frames(loaded, tmp_path):
    from flamenerf.evaluation import figures

    exp, state, step = loaded
    views, code = paths.path_views(exp, expression_frame="t01", orbit=2)
    alpha = exp.warp_alpha(step)
    output.render_to_folder(
        exp, state.params, alpha, views, code, tmp_path, {}, depth=True, silhouette=True
    )
    rendered = output.render_views(exp, state.params, alpha, views, code)
    bounds = figures.depth_bounds([r["depth"] for r in rendered], [r["acc"] for r in rendered])
    info = json.loads((tmp_path / "render.json").read_text())
    assert (tmp_path / info["depth_video"]).is_file()
    assert (tmp_path / info["silhouette_video"]).is_file()
    for index, (r, view) in enumerate(zip(rendered, views, strict=True)):
        expected = {
            "depth": figures.depth_map(r["depth"], r["acc"], bounds),
            "silhouette": figures.silhouette_overlay(r["rgb"], view.inside),
        }
        for name, image in expected.items():
            png = np.asarray(Image.open(tmp_path / name / f"{index:05d}.png"), np.float64) / 255
            np.testing.assert_allclose(png, image, atol=0.5 / 255 + 1e-6)
        assert view.inside.any()  # the overlay shows a silhouette
