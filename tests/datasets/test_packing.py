# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Packing is quiet: no TFDS banners, TFDS's process settings untouched, nothing downloaded.

What the pack holds is tested with the rays (tests/datasets/test_rays.py) and pinned by the
"pack" golden (tests/test_golden.py).
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from capture_util import write_capture
from tensorflow_datasets.core.utils import tqdm_utils

from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import packing

PACKAGE = Path(packing.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = write_capture(tmp_path_factory.mktemp("packing") / "cap", num_train=2, num_val=1)
    return capture_lib.load_capture(root)


@pytest.mark.parametrize("bars", [True, False])
def test_packing_prints_no_banner_and_leaves_tfds_settings_as_found(capture, tmp_path, capfd, bars):
    previous = tqdm_utils._active
    tfds.display_progress_bar(bars)
    try:
        capfd.readouterr()
        source = packing.pack_capture(capture, cache_dir=tmp_path, show_progress=False)
        packing.pack_capture(capture, cache_dir=tmp_path, show_progress=False)  # reused
        out, err = capfd.readouterr()
        assert tqdm_utils._active is bars  # restored, whatever it was
    finally:
        tfds.display_progress_bar(previous)
    assert len(source) == len(capture.ids)
    assert out == ""
    assert "preparing dataset" not in err and "prepared to" not in err
    assert "Generating" not in err  # TFDS's own progress bars


def test_packing_asks_no_network_and_no_process_wide_tfds_switch():
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    for needle in ("verify_ssl", "disable_progress_bar("):
        assert [p for p, text in sources.items() if needle in text] == [], needle


def test_the_capture_key_follows_the_flame_model_not_only_the_folder(capture):
    """The model can live outside the capture (scene.json's path, --flame_model): a changed
    model must change the key of the pack and of the guide grids; the same model keeps it."""
    key = packing.capture_key(capture)
    assert packing.capture_key(capture) == key
    same = dataclasses.replace(capture, flame_model=dataclasses.replace(capture.flame_model))
    assert packing.capture_key(same) == key
    template = np.array(capture.flame_model.v_template)
    template[0, 0] += 1e-3
    other = dataclasses.replace(
        capture, flame_model=capture.flame_model.replace(v_template=template)
    )
    assert packing.capture_key(other) != key
