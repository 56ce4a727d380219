# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""One cache root: every reader resolves `$FLAMENERF_CACHE` (with `~`) to the same folder."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from flamenerf.datasets import packing
from flamenerf.io import paths
from flamenerf.synthetic import generator as synthetic
from flamenerf.synthetic import head
from flamenerf.training import experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME is a temporary folder; FLAMENERF_CACHE = "~/x" (so the cache is HOME/x)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FLAMENERF_CACHE", "~/x")
    return tmp_path


def test_cache_root_expands_the_tilde(home, monkeypatch):
    assert paths.cache_root() == home / "x"
    monkeypatch.setenv("FLAMENERF_CACHE", str(home / "elsewhere"))
    assert paths.cache_root() == home / "elsewhere"
    for unset in (None, ""):
        if unset is None:
            monkeypatch.delenv("FLAMENERF_CACHE")
        else:
            monkeypatch.setenv("FLAMENERF_CACHE", unset)
        assert paths.cache_root() == home / ".cache" / "flamenerf"


def test_head_is_cached_under_the_root(home, monkeypatch):
    monkeypatch.setattr(
        head.model_file, "write_head", lambda path: Path(path).write_bytes(b"") and path
    )
    assert head.default_head_path() == home / "x" / "head" / f"procedural_head_v{head.VERSION}.npz"
    assert head.default_head_path().is_file()


def test_synthetic_captures_are_cached_under_the_root(home, monkeypatch):
    monkeypatch.setattr(
        synthetic, "generate", lambda folder, **kwargs: (Path(folder) / "dataset.json").touch()
    )
    assert synthetic.cache_dir() == home / "x" / "captures"
    path = synthetic.default_capture(size=8, frames=2, val=1, show_progress=False)
    assert path.parent == home / "x" / "captures" and (path / "dataset.json").is_file()


def test_packs_are_cached_under_the_root(home, monkeypatch):
    opened = []

    class Builder:
        def __init__(self, data_dir, **kwargs):
            self.data_dir = data_dir

        def download_and_prepare(self, **kwargs):
            opened.append(Path(self.data_dir))

    monkeypatch.setattr(packing, "CaptureFrames", Builder)
    monkeypatch.setattr(packing, "FrameSource", lambda data_dir: data_dir)
    (home / "capture").mkdir()
    capture = SimpleNamespace(root=home / "capture", scale=1)
    data_dir = packing.pack_capture(capture, show_progress=False)
    assert opened == [home / "x" / "packed" / packing.capture_key(capture)] == [data_dir]


def test_guide_grids_are_cached_under_the_root(home):
    (home / "capture").mkdir()
    capture = SimpleNamespace(root=home / "capture", scale=1)
    path = experiment.guide_cache_path(capture, "settings")
    assert path.parent == home / "x" / "guides" and path.suffix == ".npz"


def test_only_paths_reads_the_variable():
    """Nobody else computes the root (FLAMENERF_CACHE, ~/.cache, Path.home())."""
    pattern = re.compile(r"environ[^\n]*FLAMENERF_CACHE|\.cache[/\"' ]|Path\.home\(\)")
    readers = []
    for folder in ("flamenerf", "benchmarks", "colab"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".ipynb") and path != ROOT / "flamenerf" / "io" / "paths.py":
                text = path.read_text()
                # Docstrings and comments may say where the cache is; code may not build it.
                code = "\n".join(
                    line.split("#")[0] for line in text.splitlines() if '"""' not in line
                )
                if pattern.search(code):
                    readers.append(str(path.relative_to(ROOT)))
    assert readers == []
    for name in ("quickstart", "reanimate", "capture_processing"):
        assert "CACHE = cache_root()" in (ROOT / "colab" / f"{name}.ipynb").read_text()
