# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Shared by the tests of flamenerf.views and of the render command line.

The experiments are test_eval's tiny trained one (warp off, silhouette spatial prior) and a
copy of it rendered through the FLAME guide with its rigid part, whose code frame `CODE` has
a head pose (`guided_folder`). Each test module restores them in its own fixtures
(`restored`); the training runs once per session (`test_eval.tiny_experiment`).
"""

import json
import shutil

import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf.training.experiment import Experiment

CODE = "t01"
CODE_POSE = {"global_pose": [0.0, 0.08, 0.0], "neck_pose": [0.05, 0.0, 0.02]}
CODE_POSE["translation"] = [0.004, -0.002, 0.0]
FADE_M = 0.01  # GuideConfig.rigid_fade_m of `guided`: the image corners lie beyond the fade


def restored(folder):
    """Yields (exp, state, step) of an experiment folder, then closes it (module fixtures)."""
    with Experiment.restore(folder) as restored:
        yield restored.exp, restored.state, restored.checkpoint


def run_cli(folder, out, *args):
    """`python -m flamenerf.render --base_folder FOLDER ARGS --out OUT`, in-process: exit code."""
    from flamenerf import render

    return render.main(["--base_folder", str(folder), *args, "--out", str(out)])


def write_params(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))


def write_driving(folder):
    """Two driving FLAME files, written out of name order (b before a)."""
    write_params(folder / "b.json", expression=[-2.0, 1.5, 1.0], jaw_pose=[0.3, 0.0, 0.0])
    write_params(folder / "a.json", expression=[2.0, -1.0], jaw_pose=[0.0, 0.1, 0.0])
    return folder


def guided_folder(trained, root):
    """The tiny experiment's trained fields rendered through the FLAME guide with its rigid
    part (the guide has no parameters), on a copy of the capture where the code frame has a
    head pose (yaw, neck bend and a shift). Returns the experiment folder (under `root`)."""
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


def code_params_file(exp, folder, **changes):
    """The code frame's own FLAME parameters as a driving file (with `changes`)."""
    raw = json.loads((exp.capture.root / "flame" / f"{CODE}.json").read_text())
    write_params(folder / "000.json", **dict(raw, **changes))
    return folder


def rotation_y(degrees):
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_x(degrees):
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def matrix(rotvec):
    return Rotation.from_rotvec(np.asarray(rotvec, np.float64)).as_matrix()
