# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Mutation fuzzing of the capture validator: a fast subset of tests/fuzz_util.py's mutations.

Each mutation breaks one thing in a fresh copy of an independently written capture; the
validator must exit 1 or 2, name the mutated file and the field on one line, print no
traceback and leave every file as it was. `benchmarks/fuzz_inputs.py` runs the full set,
in-process, through the CLI and (a sample) through training.
"""

import pytest
from fuzz_util import (
    BENIGN,
    MUTATIONS,
    check_mutation,
    run_cli,
    run_in_process,
    tree_state,
    write_capture,
)

BY_NAME = {m.name: m for m in MUTATIONS + BENIGN}

# About 40 mutations, every category of MUTATIONS among them.
FAST = [
    "dataset/truncated",
    "dataset/duplicate key",
    "dataset/count string",
    "dataset/ids duplicate",
    "dataset/id slash",
    "dataset/id NUL",
    "dataset/nested deeply",
    "metadata/empty",
    "metadata/warp_id bool",
    "metadata/val code out of range",
    "scene/invalid JSON",
    "scene/center string",
    "scene/scale 1e308",
    "scene/near equals far",
    "scene/flame.model missing file",
    "scene/num_expression above model",
    "scene/rotation scaled",
    "scene/to_world extra key",
    "camera/not UTF-8",
    "camera/orientation 2x3",
    "camera/orientation reflection",
    "camera/position huge integer",
    "camera/focal_length zero",
    "camera/image_size swapped than the image",
    "flame/JSON list",
    "flame/expression string item",
    "flame/expression NaN",
    "flame/jaw_pose null",
    "camera-path/symlink outside",
    "image/truncated half",
    "image/16-bit RGB",
    "image/palette",
    "image/gray",
    "image/JPEG bytes",
    "image/symlink outside",
    "mask/wrong size",
    "image 2x/16-bit",
    "flame model/truncated",
    "flame model/shapedirs NaN",
    "flame model/v_template missing",
    "symlink/camera folder outside",
    "symlink/camera loop",
]
FAST_BENIGN = ["benign/RGBA image", "benign/symlink inside", "benign/model symlinked outside"]
THROUGH_CLI = ["image/16-bit RGB", "flame/expression string item"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_capture(tmp_path_factory.mktemp("fuzz") / "cap")


def test_the_independent_capture_validates(pristine):
    before = tree_state(pristine)
    for args, summary in [((), "16x12 at 1x"), (("--scale", "2"), "8x6 at 2x")]:
        code, out, err = run_in_process(pristine, args)
        assert (code, err) == (0, ""), err
        assert f"OK, 3 train + 1 val frames, {summary}" in out and "camera paths: orbit" in out
    assert tree_state(pristine) == before


def test_the_fast_subset_covers_every_category():
    assert len(MUTATIONS) >= 150
    assert {BY_NAME[name].category for name in FAST} == {m.category for m in MUTATIONS}


@pytest.mark.parametrize("name", FAST)
def test_mutation_is_refused_in_process(name, pristine, tmp_path):
    problems, err = check_mutation(BY_NAME[name], pristine, tmp_path / "work", run_in_process)
    assert not problems, f"{problems}\nstderr:\n{err}"


@pytest.mark.parametrize("name", FAST_BENIGN)
def test_allowed_change_still_validates(name, pristine, tmp_path):
    problems, err = check_mutation(
        BY_NAME[name], pristine, tmp_path / "work", run_in_process, benign=True
    )
    assert not problems, f"{problems}\nstderr:\n{err}"


@pytest.mark.parametrize("name", THROUGH_CLI)
def test_mutation_is_refused_by_the_cli(name, pristine, tmp_path):
    problems, err = check_mutation(BY_NAME[name], pristine, tmp_path / "work", run_cli)
    assert not problems, f"{problems}\nstderr:\n{err}"
