# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/render_speed.py: a freshly initialised model from the demo's gin renders (the
smoke test its docstring gives; timings never asserted)."""

from benchmark_util import clean_gin, load  # noqa: F401 (autouse fixture)

render_speed = load("render_speed")


def test_a_fresh_demo_model_renders(capsys):
    code = render_speed.main(
        ["--gin_configs", "demo.gin", "--sizes", "8", "--repeats", "1", "--matmul", "64"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "8x8:" in out and "ms/frame" in out and "of the matmul peak" in out


def test_a_config_the_model_refuses_is_an_error_line(capsys):
    bindings = ["GuideConfig.enabled = False"]  # demo.gin's colour reads the guide's rigid part
    code = render_speed.main(["--gin_configs", "demo.gin", "--gin_bindings", *bindings])
    assert code == 2
    assert "pose_shading = True needs the FLAME guide's rigid part" in capsys.readouterr().err
