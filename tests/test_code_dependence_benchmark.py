# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/code_dependence.py on test_eval's tiny trained experiment: its rows against
evaluation's own figures."""

import json

import pytest
from benchmark_util import clean_gin, load  # noqa: F401 (autouse fixture)
from test_eval import STEPS, tiny_experiment

from flamenerf.evaluation import evaluate
from flamenerf.training import experiment

code_dependence = load("code_dependence")


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_rows_against_evaluation(tmp_path_factory, tmp_path):
    folder = tiny_experiment(tmp_path_factory)
    rows = code_dependence.measure(folder)
    assert [_cells(r)[1] for r in rows[:3]] == list(code_dependence.VARIANTS)
    own, nearest, farthest = (_cells(r) for r in rows[:3])
    with experiment.Experiment.restore(folder) as restored:
        report = evaluate.evaluate(
            restored.exp, restored.state, restored.checkpoint, show_progress=False, out_dir=tmp_path
        )
    assert report["step"] == STEPS
    assert float(own[2]) == pytest.approx(report["mean"]["psnr"], abs=0.006)
    assert float(own[3]) == pytest.approx(report["mean"]["psnr_outside"], abs=0.006)
    # v00 and v01 use t05's codes, whose camera is also the nearest to theirs: the same render.
    assert nearest[2:] == own[2:]
    assert float(farthest[2]) == pytest.approx(float(own[2]), abs=0.5)  # t00's: little trained
    # Distances in metres: 0.01 and 0.02 m to t05, also the nearest training camera.
    assert "0.010-0.020, to the nearest training camera 0.010-0.020" in rows[3]
    # eval's code swap agrees: the nearest camera's codes are their own, nothing to render.
    swap = json.loads((tmp_path / "metrics.json").read_text())["distance"]["code_swap"]
    assert swap["rendered"] == 0 and swap["code_dependence_db"] is None
