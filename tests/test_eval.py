# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The eval command line: its files, table and errors on a trained experiment.

`tiny_experiment` trains one tiny experiment (20 steps, warp off) once per session; the
evaluation, experiment and render tests share it.
"""

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from capture_util import write_capture
from PIL import Image

from flamenerf import eval as eval_lib

TINY = str(Path(__file__).parent / "gin" / "tiny.gin")
STEPS = 20
FOCAL = 30.0  # the octahedron head then covers about half of the 16x12 frames


_TRAINED: dict[int, Path] = {}


def tiny_experiment(tmp_path_factory) -> Path:
    """A 20-step experiment on a hand-written capture (16x12, no masks: rasterised ones).

    Trained once per session (cached on the session's tmp_path_factory).
    """
    if id(tmp_path_factory) not in _TRAINED:
        _TRAINED[id(tmp_path_factory)] = _train(tmp_path_factory)
    return _TRAINED[id(tmp_path_factory)]


def _train(tmp_path_factory) -> Path:
    from flamenerf import train
    from flamenerf.training import experiment

    root = tmp_path_factory.mktemp("tiny_experiment")
    capture = write_capture(root / "cap", num_train=6, num_val=2, width=16, height=12)
    for path in (capture / "camera").glob("*.json"):
        camera = json.loads(path.read_text())
        camera["focal_length"] = FOCAL
        path.write_text(json.dumps(camera))
    exp = experiment.Experiment.create(
        root / "exp",
        [TINY],
        [
            f"TrainConfig.max_steps = {STEPS}",
            "TrainConfig.val_frames = 0",
            "WarpConfig.warp_type = 'none'",
            "LossConfig.flame_warp_weight = 0.0",
        ],
        data_dir=str(capture),
    )
    assert train.train(exp) == 0
    return root / "exp"


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    return tiny_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    """Runs the CLI over the experiment and a copy of it: (folders, table CSV, code, stdout)."""
    copy = tmp_path_factory.mktemp("copy") / "exp_copy"
    shutil.copytree(trained, copy)
    table = tmp_path_factory.mktemp("table") / "table.csv"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = eval_lib.main(
            [
                "--base_folder",
                str(trained),
                str(copy),
                "--table_csv",
                str(table),
                "--val_frames",
                "2",
            ]
        )
    return [trained, copy], table, code, stdout.getvalue()


# ------------------------------------------------------------------------------------------
# The command line on a trained experiment.


def read_png(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float64) / 255.0


def test_eval_two_experiments_one_table(evaluated):
    folders, table, code, out = evaluated
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert len(lines) == 4  # header, separator, two experiments
    assert lines[0].split("|")[1].strip() == "experiment" and "psnr_face" in lines[0]
    assert str(folders[0]) in lines[2] and str(folders[1]) in lines[3]
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [r["experiment"] for r in rows] == [str(f) for f in folders]
    report = json.loads((folders[0] / "eval" / f"step_{STEPS}" / "metrics.json").read_text())
    assert float(rows[0]["psnr"]) == pytest.approx(report["mean"]["psnr"])
    assert (folders[0] / "tensorboard").is_dir()


def test_metrics_json_matches_the_written_pngs(evaluated):
    from flamenerf.datasets.capture import load_capture

    folder = evaluated[0][0]
    out = folder / "eval" / f"step_{STEPS}"
    report = json.loads((out / "metrics.json").read_text())
    assert report["step"] == STEPS and report["checkpoint"].endswith(f"checkpoints/{STEPS}")
    assert set(report["frames"]) == {"v00", "v01"}
    capture = load_capture(folder.parent / "cap")
    psnrs = []
    for frame_id, values in report["frames"].items():
        pred = read_png(out / f"{frame_id}_prediction.png")
        target = read_png(out / f"{frame_id}_target.png")
        original = np.asarray(Image.open(folder.parent / "cap" / "rgb" / "1x" / f"{frame_id}.png"))
        np.testing.assert_array_equal(np.round(target * 255), original)
        mask = capture.mask(frame_id)
        assert 0 < mask.sum() < mask.size
        sq = (pred - target) ** 2
        # The PNG is the float render rounded to 8 bits: equal to well within 0.05 dB.
        assert values["psnr"] == pytest.approx(-10 * np.log10(sq.mean()), abs=0.05)
        assert values["psnr_face"] == pytest.approx(-10 * np.log10(sq[mask].mean()), abs=0.05)
        assert values["psnr_outside"] == pytest.approx(-10 * np.log10(sq[~mask].mean()), abs=0.05)
        psnrs.append(values["psnr"])
        for kind in ("error", "depth", "acc", "disent"):
            assert (out / f"{frame_id}_{kind}.png").stat().st_size > 0
    assert report["mean"]["psnr"] == pytest.approx(np.mean(psnrs))


def test_metrics_json_reports_psnr_against_the_code_frames_distance(evaluated):
    folders, table, _, out = evaluated
    report = json.loads((folders[0] / "eval" / f"step_{STEPS}" / "metrics.json").read_text())
    distance = report["distance"]
    # The capture's cameras sit 0.01 m apart (x = 0.01 k, scale 2); v00 (k = 6) and v01
    # (k = 7) use the codes of t05: 0.01 and 0.02 m away.
    pairs = {p["id"]: p for p in distance["pairs"]}
    assert list(pairs) == ["v00", "v01"]
    assert pairs["v00"]["distance_m"] == pytest.approx(0.01)
    assert pairs["v01"]["distance_m"] == pytest.approx(0.02)
    for frame_id, values in report["frames"].items():
        assert pairs[frame_id]["psnr"] == pytest.approx(values["psnr"])
    assert distance["near_third_psnr"] == pytest.approx(report["frames"]["v00"]["psnr"])
    assert distance["far_third_psnr"] == pytest.approx(report["frames"]["v01"]["psnr"])
    # Two frames: the correlation is +-1 (null when both PSNRs are equal).
    assert distance["pearson"] is None or abs(distance["pearson"]) == pytest.approx(1.0)
    # Their nearest training camera is t05's, their code frame: the code swap (the far
    # third, v01) renders nothing again, so it measures nothing (null, "nan" in the table).
    assert pairs["v00"]["nearest_train_m"] == pytest.approx(0.01)
    assert pairs["v01"]["nearest_train_m"] == pytest.approx(0.02)
    assert distance["far_third_nearest_train_m"] == pytest.approx(0.02)
    swap = distance["code_swap"]
    v01 = report["frames"]["v01"]["psnr"]
    assert swap["frames"] == {"v01": {"codes_from": None, "own_psnr": v01, "swapped_psnr": None}}
    assert swap["rendered"] == 0 and swap["code_dependence_db"] is None
    # The printed table and the CSV have the near / far third and code dependence columns.
    header = [c.strip() for c in out.splitlines()[0].strip("|").split("|")]
    assert header[-3:] == ["psnr_near_third", "psnr_far_third", "code_dependence"]
    row = [c.strip() for c in out.splitlines()[2].strip("|").split("|")]
    assert row[-3] == f"{distance['near_third_psnr']:.2f}" and row[-1] == "nan"
    with open(table) as f:
        first = next(csv.DictReader(f))
    assert float(first["psnr_far_third"]) == pytest.approx(distance["far_third_psnr"])


def test_disentanglement_is_zero_outside_with_the_spatial_prior(evaluated):
    report = json.loads((evaluated[0][0] / "eval" / f"step_{STEPS}" / "metrics.json").read_text())
    for values in report["frames"].values():
        assert values["disent_driver"] in {"v00", "v01"}
        assert values["disent_outside"] < 1e-6
        assert values["disent_inside"] > 1e-5  # another expression changes the face


def test_another_scale_goes_to_its_own_folder(evaluated):
    folder = evaluated[0][1]  # the copy
    own = folder / "eval" / f"step_{STEPS}" / "metrics.json"
    before = own.read_text()
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            eval_lib.main(["--base_folder", str(folder), "--scale", "2", "--val_frames", "1"]) == 0
        )
    report = json.loads((own.parent / "scale_2" / "metrics.json").read_text())
    assert report["scale"] == 2 and list(report["frames"]) == ["v00"]
    assert report["frames"]["v00"]["ms_ssim_scales"] == 0  # 8x6: too small for SSIM
    assert report["frames"]["v00"]["ssim"] is None  # NaN is written as null
    assert Image.open(own.parent / "scale_2" / "v00_prediction.png").size == (8, 6)
    assert own.read_text() == before


def test_bad_checkpoint_step_errors_clearly(trained, capsys):
    code = eval_lib.main(["--base_folder", str(trained), "--checkpoint", "7"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(trained / "checkpoints") in err and "step 7" in err and f"[{STEPS}]" in err


def test_not_an_experiment_errors_clearly(tmp_path, capsys):
    assert eval_lib.main(["--base_folder", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err == f"error: {tmp_path}: not an experiment folder (no config.gin)\n"
    )


def test_the_html_page_links_the_written_pictures_and_shows_the_metrics(evaluated):
    from html.parser import HTMLParser
    from urllib.parse import unquote

    folder = evaluated[0][0] / "eval" / f"step_{STEPS}"
    report = json.loads((folder / "metrics.json").read_text())
    text = (folder / "index.html").read_text(encoding="utf-8")

    found = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(value for key, value in attrs if key in ("href", "src"))

    Links().feed(text)
    links = [unquote(link) for link in found]
    for frame_id in report["frames"]:
        for kind in ("target", "prediction", "error", "depth", "disent"):
            assert f"{frame_id}_{kind}.png" in links
    for link in links:  # relative, resolving beside the page
        assert not link.startswith(("/", "file:")) and (folder / link).is_file(), link
    assert f"{report['mean']['psnr']:.2f}" in text
    assert f"{report['frames']['v01']['psnr']:.2f}" in text


def test_the_lpips_column_needs_the_weight_files(trained, tmp_path, capsys):
    """Absent weights: one note line, no lpips column or value; present: a column (NaN for
    these 16x12 frames, smaller than AlexNet's 31 px) and a value per frame in metrics.json;
    a damaged file: exit 2 naming it. The registry is left as it was."""
    from lpips_util import write_weights

    from flamenerf.evaluation import lpips, metrics

    folder = tmp_path / "exp"
    shutil.copytree(trained, folder)
    report_path = folder / "eval" / f"step_{STEPS}" / "metrics.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--base_folder", str(folder), "--val_frames", "1", "--lpips_weights"]
    assert eval_lib.main([*args, str(empty)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    notes = [line for line in captured.err.splitlines() if "lpips" in line]  # not the bars
    assert len(notes) == 1 and notes[0].startswith("note: lpips skipped: no weights in ")
    assert str(empty) in notes[0] and "alexnet-owt-7be5be79.pth" in notes[0]
    assert all(line.startswith("|") for line in out) and "lpips" not in out[0]
    assert "lpips" not in json.loads(report_path.read_text())["frames"]["v00"]

    weights = write_weights(tmp_path / "weights", "alex")
    assert eval_lib.main([*args, str(weights)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert "lpips" not in captured.err and all(line.startswith("|") for line in out)
    header = [cell.strip() for cell in out[0].split("|")]
    assert header[header.index("ms_ssim_scales") + 1] == "lpips"
    assert out[-1].split("|")[header.index("lpips")].strip() == "nan"
    report = json.loads(report_path.read_text())
    assert report["frames"]["v00"]["lpips"] is None and report["mean"]["lpips"] is None
    assert "lpips" not in metrics.METRICS

    (weights / "alex.pth").write_bytes(b"\x00not a checkpoint")
    assert eval_lib.main([*args, str(weights)]) == 2
    err = capsys.readouterr().err
    expected = f"{weights / 'alex.pth'}: not a PyTorch checkpoint (neither a torch.save zip"
    assert err == f"error: {expected} archive nor a legacy torch file)\n"
    assert "lpips" not in metrics.METRICS and lpips.ENV not in err
