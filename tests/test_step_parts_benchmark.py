# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/step_parts.py (where the step's time goes): its arguments, its table, and a
one-step run of two parts on a tiny capture, train step and render (timings never asserted)."""

from pathlib import Path

import pytest
from benchmark_util import clean_gin, load  # noqa: F401 (autouse fixture)
from capture_util import write_capture

from flamenerf.training import experiment

step_parts = load("step_parts")
TINY = str(Path(__file__).parent / "gin" / "tiny.gin")


def test_arguments_defaults_and_errors():
    args = step_parts.parse_args([])
    assert (args.config, args.parts, args.steps, args.rounds, args.forward) == (
        "gin/demo.gin",
        ["all"],
        16,
        2,
        False,
    )
    for bad in (["--parts", "no_such_part"], ["--steps", "0"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as info:
            step_parts.parse_args(bad)
        assert info.value.code == 2


def test_every_part_is_valid_gin_on_the_demo():
    from flamenerf import configs

    for name, bindings in step_parts.PARTS.items():
        experiment.parse_gin(["demo.gin"], bindings)  # a misspelt binding raises
        assert name == "config" or bindings
        built = configs.build_all()
        guide = built["GuideConfig"]
        # What Experiment.create would refuse: the colour reads the guide's rigid part.
        assert not built["ModelConfig"].pose_shading or (guide.enabled and guide.undo_rigid), name


def test_table_gives_means_and_ratios_to_the_config():
    lines = step_parts.table({"config": [0.5, 0.7], "no_warp": [0.3, 0.3]}, "s/step").split("\n")
    assert lines[0] == "| part | round 1 s/step | round 2 s/step | mean s/step | vs config |"
    assert lines[2] == "| config | 0.500 | 0.700 | 0.600 | 1.00 |"
    assert lines[3] == "| no_warp | 0.300 | 0.300 | 0.300 | 0.50 |"
    assert "| n/a |" in step_parts.table({"no_warp": [0.3]}, "s/step")
    assert "| config | 12.5 | 12.5 | 1.00 |" in step_parts.table({"config": [12.5]}, "ms", 1)


@pytest.mark.parametrize("forward", [False, True], ids=["step", "render"])
def test_a_tiny_run(tmp_path, capsys, forward):
    capture = write_capture(tmp_path / "cap", num_train=4, num_val=1, width=16, height=12)
    parts = ["no_warp"] if forward else ["config"]  # the step: one part (one compilation)
    argv = ["--config", TINY, "--parts", *parts, "--steps", "1", "--rounds", "1"]
    argv += ["--data_dir", str(capture)] + (["--forward"] if forward else [])
    step_parts.main(argv)
    lines = capsys.readouterr().out.strip().split("\n")
    assert lines[0].startswith("devices: ") and ("render" in lines[0]) == forward
    unit = "ms/frame" if forward else "s/step"
    assert lines[1] == f"| part | round 1 {unit} | mean {unit} | vs config |"
    expected = ["config", "no_warp"] if forward else ["config"]
    assert [line.split("|")[1].strip() for line in lines[3:]] == expected
    assert all(float(line.split("|")[3]) > 0 for line in lines[3:])
