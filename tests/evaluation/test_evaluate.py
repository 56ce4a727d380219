# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation as a library: one frame against numpy PSNRs, means, the table's cells by hand.

The trained experiment is test_eval's tiny one (trained once per session).
"""

import ast
import csv
import math
from pathlib import Path

import numpy as np
import pytest
from test_eval import STEPS, tiny_experiment

from flamenerf.errors import UserError
from flamenerf.evaluation import evaluate
from flamenerf.training import experiment

NAN = float("nan")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    return tiny_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def restored(trained):
    with experiment.Experiment.restore(trained) as restored:
        yield restored


def test_evaluate_frame_scores_its_render(restored):
    exp = restored.exp
    frame = evaluate.evaluate_frame(
        exp.renderer,
        exp.capture,
        "v01",
        restored.state.params,
        exp.warp_alpha(restored.checkpoint),
        exp.extras().guide,
        use_jaw=exp.expression_config.use_jaw,
    )
    rgb = frame.render["rgb"]
    assert rgb.shape == (12, 16, 3) and frame.render["depth"].shape == (12, 16)
    np.testing.assert_allclose(frame.target, exp.capture.image("v01") / 255.0, atol=1e-7)
    np.testing.assert_array_equal(frame.mask, exp.capture.mask("v01"))
    sq = (rgb.astype(np.float64) - frame.target) ** 2
    mask = frame.mask
    assert frame.metrics["psnr"] == pytest.approx(-10 * np.log10(sq.mean()), abs=1e-3)
    assert frame.metrics["psnr_face"] == pytest.approx(-10 * np.log10(sq[mask].mean()), abs=1e-3)
    outside = -10 * np.log10(sq[~mask].mean())
    assert frame.metrics["psnr_outside"] == pytest.approx(outside, abs=1e-3)
    assert frame.metrics["ms_ssim_scales"] == 1  # 16x12: one 11-px window
    only = evaluate.evaluate_frame(
        exp.renderer,
        exp.capture,
        "v01",
        restored.state.params,
        exp.warp_alpha(restored.checkpoint),
        exp.extras().guide,
        use_jaw=exp.expression_config.use_jaw,
        names=["psnr"],
    )
    assert only.metrics == {"psnr": frame.metrics["psnr"]}


def _with_distinct_appearance(params, row: int):
    """params with appearance code `row` set far from every other (any other code renders
    differently)."""
    import flax
    import jax.numpy as jnp

    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    keys = [k for k in flat if "appearance_codes" in k]
    assert len(keys) == 1, keys
    flat[keys[0]] = jnp.asarray(flat[keys[0]]).at[row].set(3.0)
    return flax.traverse_util.unflatten_dict(flat)


def test_evaluate_frame_with_another_frames_codes(restored):
    exp = restored.exp
    capture = exp.capture
    # The tiny capture: t00..t05, then v00, v01, both using t05's codes.
    assert capture.frames["v01"].warp_id == capture.frames["t05"].warp_id == 5
    assert capture.frames["t00"].appearance_id == 0
    params = _with_distinct_appearance(restored.state.params, 0)

    def render(codes_from):
        return evaluate.evaluate_frame(
            exp.renderer,
            capture,
            "v01",
            params,
            exp.warp_alpha(restored.checkpoint),
            exp.extras().guide,
            use_jaw=exp.expression_config.use_jaw,
            codes_from=codes_from,
        )

    own, same, other = render(None), render("t05"), render("t00")
    np.testing.assert_array_equal(same.render["rgb"], own.render["rgb"])
    assert np.abs(other.render["rgb"] - own.render["rgb"]).max() > 1e-3
    np.testing.assert_array_equal(other.target, own.target)  # its own image and silhouette
    np.testing.assert_array_equal(other.mask, own.mask)
    with pytest.raises(ValueError, match=r"codes_from 'v00' is no training frame"):
        render("v00")


def test_the_code_swap_renders_only_frames_whose_codes_change(restored):
    exp = restored.exp
    params = _with_distinct_appearance(restored.state.params, 0)
    grids = exp.extras().guide
    alpha = exp.warp_alpha(restored.checkpoint)
    other = evaluate.evaluate_frame(
        exp.renderer,
        exp.capture,
        "v01",
        params,
        alpha,
        grids,
        use_jaw=exp.expression_config.use_jaw,
        codes_from="t00",
    )
    results = {"v00": {"psnr": 10.0}, "v01": {"psnr": 12.0}}
    nearest = {"v00": ("t05", 0.01), "v01": ("t00", 0.07)}  # v00's own codes are t05's
    source = evaluate.rays.CaptureSource(exp.capture)
    swap = evaluate._code_swap(
        exp, exp.capture, params, alpha, grids, ["v00", "v01"], nearest, results, False, source
    )
    assert swap["rendered"] == 1
    assert swap["frames"]["v00"] == {"codes_from": None, "own_psnr": 10.0, "swapped_psnr": None}
    assert swap["frames"]["v01"]["codes_from"] == "t00"
    assert swap["frames"]["v01"]["swapped_psnr"] == pytest.approx(other.metrics["psnr"], abs=1e-6)
    assert swap["code_dependence_db"] == pytest.approx(other.metrics["psnr"] - 12.0, abs=1e-6)


def test_evaluate_reports_the_code_swap(restored, tmp_path, monkeypatch):
    import dataclasses

    exp = restored.exp
    capture = exp.capture
    alpha = exp.warp_alpha(restored.checkpoint)
    before = evaluate.evaluate_frame(
        exp.renderer,
        capture,
        "v01",
        restored.state.params,
        alpha,
        exp.extras().guide,
        use_jaw=exp.expression_config.use_jaw,
    )
    # v01 given t00's codes: its code frame's camera is 0.07 m away, t05's (the nearest) 0.02.
    info = dataclasses.replace(capture.frames["v01"], warp_id=0, appearance_id=0)
    monkeypatch.setitem(capture.frames, "v01", info)
    report = evaluate.evaluate(
        exp, restored.state, restored.checkpoint, show_progress=False, out_dir=tmp_path
    )
    distance = report["distance"]
    assert [p["id"] for p in distance["pairs"]] == ["v00", "v01"]
    assert distance["pairs"][1]["distance_m"] == pytest.approx(0.07)
    assert distance["pairs"][1]["nearest_train_m"] == pytest.approx(0.02)
    swap = distance["code_swap"]
    assert swap["rendered"] == 1 and swap["frames"]["v01"]["codes_from"] == "t05"
    # Rendered again with t05's codes: the frame as it was before its codes were changed.
    assert swap["swapped_psnr"] == pytest.approx(before.metrics["psnr"], abs=1e-5)
    assert swap["own_psnr"] == pytest.approx(report["frames"]["v01"]["psnr"], abs=1e-6)


def test_evaluate_needs_a_frame(restored, tmp_path):
    with pytest.raises(UserError, match=r"^--val_frames 0: expected at least 1$"):
        evaluate.evaluate(
            restored.exp, restored.state, restored.checkpoint, frames=0, out_dir=tmp_path
        )
    assert list(tmp_path.iterdir()) == []


def test_mean_is_the_mean_of_frames_without_nans():
    frames = {
        "a": {"psnr": 10.0, "psnr_face": float("nan"), "ms_ssim_scales": 1, "disent_driver": "b"},
        "b": {"psnr": 20.0, "psnr_face": 30.0, "ms_ssim_scales": 1, "disent_driver": "a"},
    }
    mean = evaluate.mean_metrics(frames)
    assert mean == {"psnr": 15.0, "psnr_face": 30.0, "ms_ssim_scales": 1}
    assert isinstance(mean["ms_ssim_scales"], int)
    frames["b"]["ms_ssim_scales"] = 2
    assert evaluate.mean_metrics(frames)["ms_ssim_scales"] == 1.5


def test_json_safe_writes_non_finite_values_as_null():
    value = {"a": [1.0, NAN, {"b": float("inf")}], "c": "x", "d": 3}
    assert evaluate.json_safe(value) == {"a": [1.0, None, {"b": None}], "c": "x", "d": 3}


REPORTS = {
    "a": {
        "step": STEPS,
        "mean": {
            "psnr": 25.126,
            "psnr_face": NAN,
            "psnr_outside": 20.0,
            "ssim": 0.91234,
            "ms_ssim": 0.8,
            "ms_ssim_scales": 1,
            "disent_outside": 1.5e-7,
            "disent_inside": 0.0123,
        },
        "distance": {
            "near_third_psnr": 26.0,
            "far_third_psnr": 24.5,
            "code_swap": {"code_dependence_db": -0.0421},
        },
    },
    "b": {"step": 10, "mean": {"psnr": 10.0, "ms_ssim_scales": 2.5}},
}


def test_markdown_table_cells_by_hand():
    lines = evaluate.markdown_table(REPORTS).splitlines()
    assert lines == [
        "| experiment | step | psnr | psnr_face | psnr_outside | ssim | ms_ssim | ms_ssim_scales"
        " | disent_outside | disent_inside | psnr_near_third | psnr_far_third | code_dependence |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| a | {STEPS} | 25.13 | nan | 20.00 | 0.9123 | 0.8000 | 1 | 1.50e-07 | 1.23e-02"
        " | 26.00 | 24.50 | -0.04 |",
        "| b | 10 | 10.00 |  |  |  |  | 2.50 |  |  |  |  |  |",
    ]


def test_csv_table_has_full_precision_and_empty_nans(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    evaluate.write_csv(path, REPORTS)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["experiment", "step", *evaluate.table_columns()]
    assert rows[1] == [
        "a",
        str(STEPS),
        "25.126",
        "",
        "20.0",
        "0.91234",
        "0.8",
        "1",
        "1.5e-07",
        "0.0123",
        "26.0",
        "24.5",
        "-0.0421",
    ]
    assert rows[2] == ["b", "10", "10.0", "", "", "", "", "2.5", "", "", "", "", ""]


def test_format_value():
    assert evaluate.format_value(None, ".2f") == ""
    assert evaluate.format_value(math.inf, ".2f") == "nan"
    assert evaluate.format_value(3.0, ".2f", integer=True) == "3"
    assert evaluate.format_value(3.0, ".2f") == "3.00"


def test_evaluation_does_not_import_training():
    folder = Path(evaluate.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("flamenerf.training"), f"{path}: imports {name}"
                assert name not in ("flamenerf.eval", "flamenerf.render", "flamenerf.plots"), (
                    f"{path}: imports the command line {name}"
                )


def test_log_report_writes_finite_values_only():
    class Writer:
        def __init__(self):
            self.scalars = {}

        def add_scalar(self, tag, value, step):
            self.scalars[tag] = (value, step)

    writer = Writer()
    report = {
        "mean": {"psnr": 25.0, "psnr_face": NAN},
        "distance": {"near_third_psnr": 26.0, "code_swap": {"code_dependence_db": NAN}},
    }
    evaluate.log_report(writer, report, 7)
    assert writer.scalars == {"eval/psnr": (25.0, 7), "eval/psnr_near_third": (26.0, 7)}
    evaluate.log_report(writer := Writer(), {"mean": {"psnr": 1.0}}, 3)  # no "distance"
    assert writer.scalars == {"eval/psnr": (1.0, 3)}


def test_the_code_swap_renders_nothing_for_a_model_without_codes(restored, monkeypatch):
    import types

    codeless = types.SimpleNamespace(
        warp_config=types.SimpleNamespace(warp_type="none"),
        model_config=types.SimpleNamespace(appearance_dim=0),
    )
    assert not evaluate.reads_codes(codeless)
    assert evaluate.reads_codes(restored.exp)  # the tiny model: a warp and appearance codes
    exp = restored.exp
    monkeypatch.setattr(evaluate, "reads_codes", lambda _: False)
    monkeypatch.setattr(evaluate, "evaluate_frame", lambda *a, **k: pytest.fail("rendered"))
    swap = evaluate._code_swap(
        exp,
        exp.capture,
        restored.state.params,
        0.0,
        None,
        ["v01"],
        {"v01": ("t00", 0.07)},
        {"v01": {"psnr": 12.0}},
        False,
        evaluate.rays.CaptureSource(exp.capture),
    )
    assert swap["rendered"] == 0 and math.isnan(swap["code_dependence_db"])
    assert swap["frames"]["v01"]["codes_from"] is None
