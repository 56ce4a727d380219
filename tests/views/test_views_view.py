# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.views.view: a frame's own view gives its training rays; the checks name the flag.

On test_eval's tiny trained experiment (its capture has no masks: silhouettes are rasterised
from the posed mesh, as a view's are).
"""

import numpy as np
import pytest
import views_util
from test_eval import tiny_experiment

from flamenerf.datasets import rays
from flamenerf.training import experiment
from flamenerf.views import view


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from views_util.restored(tiny_experiment(tmp_path_factory))


@pytest.mark.parametrize("frame_id", ["t02", "v00"])
def test_a_frames_own_view_gives_its_training_rays(loaded, frame_id):
    exp, _, _ = loaded
    capture = exp.capture
    label = {"frame": frame_id}
    views = view.camera_views(
        exp, capture.cameras[frame_id], [capture.flame_params[frame_id]], [label]
    )
    assert len(views) == 1 and views[0].label == label
    found = view.view_rays(exp, views[0], frame_id)
    expected = rays.frame_rays(capture, frame_id, exp.expression_config.use_jaw)
    assert views[0].inside.shape == capture.cameras[frame_id].image_shape
    assert 0 < expected.inside.sum() < expected.num_rays
    for field in ("origins", "directions", "condition", "inside"):
        np.testing.assert_allclose(getattr(found, field), getattr(expected, field), atol=1e-5)
    for field in ("frame", "warp_id", "appearance_id"):
        np.testing.assert_array_equal(getattr(found, field), getattr(expected, field))
    # Another grid frame index (render_views: one grid per distinct parameter set).
    assert set(view.view_rays(exp, views[0], frame_id, frame=5).frame.tolist()) == {5}


def test_checks_name_the_flag_and_the_file(loaded):
    exp, _, _ = loaded
    assert view.check_frame(exp, "v01", "--to_frame") == "v01"
    with pytest.raises(experiment.UserError) as error:
        view.check_frame(exp, "nope", "--to_frame")
    dataset = exp.capture.root / "dataset.json"
    assert str(error.value) == (
        f"--to_frame nope: no such frame in {dataset} (ids look like t00, t01, t02, v00)"
    )
    with pytest.raises(experiment.UserError, match="--head_yaw: this experiment cannot move"):
        view.check_head_motion(exp, "--head_yaw")


def test_views_do_not_import_the_training_machinery():
    """docs/architecture.md: views know the experiment only as a type."""
    import subprocess
    import sys

    code = (
        "import sys, flamenerf.views.view, flamenerf.views.paths, flamenerf.views.expressions, "
        "flamenerf.views.output; print(sorted(m for m in sys.modules "
        "if m.startswith('flamenerf.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
