# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The Colab notebooks as files: stored clean, parameterised, runnable on Colab and in CI.

Running them is `FLAMENERF_NOTEBOOK_TINY=1 pytest --nbmake colab`; these checks are static
(no kernel), so they run with the unit tests. The first cell, which installs flamenerf when it
is missing, runs here with pip replaced by a recorder.
"""

import importlib.util
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from flamenerf.training import experiment

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("quickstart", "reanimate", "capture_processing")


def _load(name):
    path = ROOT / "colab" / f"{name}.ipynb"
    return path, nbformat.read(path, as_version=4)


def _code(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _parameters_cell(notebook):
    return next(c for c in _code(notebook) if "parameters" in c.metadata.get("tags", []))


def _parameters(notebook, monkeypatch, tiny):
    """The names the parameters cell defines, with FLAMENERF_NOTEBOOK_TINY set or not."""
    if tiny:
        monkeypatch.setenv("FLAMENERF_NOTEBOOK_TINY", "1")
    else:
        monkeypatch.delenv("FLAMENERF_NOTEBOOK_TINY", raising=False)
    namespace = {}
    exec(_parameters_cell(notebook).source, namespace)  # the cell only reads os.environ
    return {k: v for k, v in namespace.items() if k.isupper()}


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in (ROOT / "colab").glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_valid_and_without_outputs(name):
    path, notebook = _load(name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for index, cell in enumerate(_code(notebook)):
        assert cell.outputs == [], f"{path}: code cell {index} has outputs (clear them)"
        assert cell.execution_count is None, f"{path}: code cell {index} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_second_code_cell_is_the_tagged_parameters_cell(name, monkeypatch):
    _, notebook = _load(name)
    tagged = [c for c in _code(notebook) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [_code(notebook)[1]]
    real = _parameters(notebook, monkeypatch, tiny=False)
    tiny = _parameters(notebook, monkeypatch, tiny=True)
    assert real["TINY"] is False and tiny["TINY"] is True
    assert set(real) == set(tiny)
    changed = [k for k in real if k != "TINY" and real[k] != tiny[k]]
    assert changed, "FLAMENERF_NOTEBOOK_TINY=1 changes no parameter"
    assert "WORK" in real  # FLAMENERF_NOTEBOOK_WORK: where outputs go
    monkeypatch.chdir(ROOT)  # the notebooks run from the repository root (os.chdir(ROOT))
    for values in (real, tiny):
        if "GIN" in values:  # a packaged config's name or a file: raises UserError otherwise
            experiment.resolve_gin(values["GIN"])


def test_quickstart_trains_with_the_demos_own_step_budget(monkeypatch):
    _, notebook = _load("quickstart")
    real = _parameters(notebook, monkeypatch, tiny=False)
    assert real["GIN"] == "demo.gin" and real["STEPS"] is None and real["BINDINGS"] == []
    training = next(c.source for c in _code(notebook) if "train.main(args)" in c.source)
    assert "if STEPS:" in training


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_code_cell_installs_flamenerf_and_the_setup_finds_the_repository(name):
    _, notebook = _load(name)
    sources = [cell.source for cell in _code(notebook)]
    installs = [s for s in sources if re.search(r"\bpip\b", s)]
    assert installs == [sources[0]]
    assert re.search(r'^FLAMENERF_SOURCE = ""  # <- set this', sources[0], re.MULTILINE)
    text = "\n".join(sources)
    assert 'Path.cwd().parent if Path.cwd().name == "colab" else Path.cwd()' in text
    assert "os.chdir(ROOT)" in text
    assert not re.search(r"['\"]/(work|tmp|root|home)/", text), "absolute paths in the notebook"


def _run_install_cell(name, monkeypatch, cwd, missing=(), source=None):
    """Runs a notebook's install cell; returns the pip commands it ran (none are run)."""
    _, notebook = _load(name)
    cell = _code(notebook)[0].source
    if source is not None:
        cell = cell.replace('FLAMENERF_SOURCE = ""', f"FLAMENERF_SOURCE = {source!r}", 1)
    real_find_spec = importlib.util.find_spec
    ran = []
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda m, *a: None if m in missing else real_find_spec(m, *a)
    )
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: ran.append(command))
    monkeypatch.chdir(cwd)
    exec(cell, {})
    return ran


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_install_cell_does_nothing_when_flamenerf_is_installed(name, monkeypatch):
    assert _run_install_cell(name, monkeypatch, ROOT / "colab") == []


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_install_cell_installs_from_the_checkout_or_the_marked_source(name, monkeypatch, tmp_path):
    extras = "[capture]" if name == "capture_processing" else ""
    missing = ("flamenerf",)
    ran = _run_install_cell(name, monkeypatch, ROOT / "colab", missing)
    assert len(ran) == 1 and ran[0][1:] == ["-m", "pip", "install", "-q", f"{ROOT}{extras}"]
    url = "git+https://example.org/flamenerf.git"
    ran = _run_install_cell(name, monkeypatch, tmp_path, missing, source=url)
    assert ran[0][-1] == f"flamenerf{extras} @ {url}"
    wheel = "flamenerf-0.1.0-py3-none-any.whl"
    assert _run_install_cell(name, monkeypatch, tmp_path, missing, wheel)[0][-1] == wheel + extras
    with pytest.raises(RuntimeError, match="FLAMENERF_SOURCE"):
        _run_install_cell(name, monkeypatch, tmp_path, missing)  # no checkout, no source
