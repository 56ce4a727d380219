# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Installable without the repository: the gin configs ship with the package, found by name.

The built wheel itself is installed and run in a fresh environment by `.ci/wheel_check`
(CI); these checks are the fast part: names resolve from any working directory, and setup.py
puts every file of `gin/` into the package.
"""

import runpy
from pathlib import Path

import gin
import pytest
import setuptools
from setuptools.dist import Distribution

from flamenerf import configs
from flamenerf.training import experiment

ROOT = Path(__file__).resolve().parents[1]
GIN = ROOT / "gin"


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _built(files):
    experiment.parse_gin(files, [])
    return configs.build_all()


def _repository_gin_names():
    return sorted(p.relative_to(GIN).as_posix() for p in GIN.rglob("*.gin"))


def test_packaged_configs_are_found_by_name_from_another_folder(tmp_path, monkeypatch):
    reference = _built([str(GIN / "demo.gin"), str(GIN / "ablations" / "no_expression.gin")])
    monkeypatch.chdir(tmp_path)  # no gin/ here: only the packaged configs can answer
    by_name = _built(["demo.gin", "ablations/no_expression.gin"])  # demo.gin includes defaults
    assert by_name == reference
    assert by_name["TrainConfig"].max_steps == 1000 and not by_name["GuideConfig"].enabled
    # The repository's spelling works from any folder too.
    assert _built(["gin/demo.gin", "gin/ablations/no_expression.gin"]) == reference


def test_a_users_file_includes_a_packaged_config(tmp_path, monkeypatch):
    own = tmp_path / "configs" / "mine.gin"
    own.parent.mkdir()
    own.write_text("include 'demo.gin'\nTrainConfig.max_steps = 7\n")
    monkeypatch.chdir(tmp_path)
    built = _built([str(own.relative_to(tmp_path))])
    assert built["TrainConfig"].max_steps == 7
    assert built["ModelConfig"] == _built([str(GIN / "demo.gin")])["ModelConfig"]


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    (tmp_path / "demo.gin").write_text("include 'paper.gin'\nTrainConfig.max_steps = 3\n")
    monkeypatch.chdir(tmp_path)
    assert _built(["demo.gin"])["TrainConfig"].max_steps == 3


def test_an_unknown_name_lists_the_packaged_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(experiment.UserError) as info:
        experiment.parse_gin(["demo_typo.gin"], [])
    message = str(info.value)
    assert message.startswith("demo_typo.gin: ") and "\n" not in message
    for name in ("demo.gin", "paper.gin", "ablations/no_expression.gin"):
        assert name in message


def test_the_resolved_names_are_the_repository_gin_folder():
    assert experiment.packaged_gin_names() == _repository_gin_names()


def test_setup_py_packages_every_gin_file(monkeypatch):
    """setuptools' own list of the package data a wheel gets (build_py), against gin/."""
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    keys = ("name", "packages", "package_dir", "package_data")
    build_py = Distribution({k: captured[k] for k in keys}).get_command_obj("build_py")
    build_py.ensure_finalized()
    shipped = [
        (Path(source) / name).resolve().relative_to(GIN).as_posix()
        for package, source, _, files in build_py.data_files
        if package.startswith("flamenerf.gin_configs")
        for name in files
    ]
    assert sorted(shipped) == _repository_gin_names()
