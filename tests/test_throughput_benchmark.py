# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/throughput.py: a configuration of several gin files (a base and an ablation),
its table row, one timed step on a tiny capture (the figures mean nothing; timings are never
asserted)."""

import math

from benchmark_util import ROOT, clean_gin, load  # noqa: F401 (autouse fixture)
from capture_util import write_capture

throughput = load("throughput")
TINY = str(ROOT / "tests" / "gin" / "tiny.gin")
ABLATION = str(ROOT / "gin" / "ablations" / "no_expression.gin")


def test_configurations_of_several_files_measure_and_print_a_row_each(tmp_path, capsys):
    capture = write_capture(tmp_path / "cap", num_train=4, num_val=1, width=16, height=12)
    configs = [TINY, f"{TINY},{ABLATION}"]
    throughput.main(
        ["--configs", *configs, "--steps", "1", "--batch_size", "32", "--data_dir", str(capture)]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("devices: ") and "matmul peak" in lines[0]
    assert lines[1].startswith("| config | batch | s/step | rays/s | GFLOP/step |")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:5]]
    assert [row[0] for row in rows] == [TINY, f"{TINY} + {ABLATION}"]
    for row in rows:
        assert row[1] == "32"
        rays, gflop, gflops = float(row[3]), float(row[4]), float(row[5])
        assert rays > 0 and gflop > 0 and math.isfinite(gflops) and row[6].endswith("%")
    # The ablation (no expression, no guide) is a smaller program than the base.
    assert float(rows[1][4]) < float(rows[0][4])
    assert lines[5].startswith("peak after: ")
