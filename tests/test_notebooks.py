# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The Colab notebooks as files: stored clean, parameterised, runnable on Colab and in CI.

Running them is `FLAMENERF_NOTEBOOK_TINY=1 pytest --nbmake colab`; these checks are static
(no kernel), so they run with the unit tests.
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("quickstart", "reanimate", "capture_processing")


def _load(name):
    path = ROOT / "colab" / f"{name}.ipynb"
    return path, nbformat.read(path, as_version=4)


def _code(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _parameters(notebook, monkeypatch, tiny):
    """The names the parameters cell defines, with FLAMENERF_NOTEBOOK_TINY set or not."""
    if tiny:
        monkeypatch.setenv("FLAMENERF_NOTEBOOK_TINY", "1")
    else:
        monkeypatch.delenv("FLAMENERF_NOTEBOOK_TINY", raising=False)
    namespace = {}
    exec(_code(notebook)[0].source, namespace)  # the cell only reads os.environ
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
def test_first_code_cell_is_the_tagged_parameters_cell(name, monkeypatch):
    _, notebook = _load(name)
    first = _code(notebook)[0]
    assert "parameters" in first.metadata.get("tags", [])
    for cell in _code(notebook)[1:]:
        assert "parameters" not in cell.metadata.get("tags", [])
    real = _parameters(notebook, monkeypatch, tiny=False)
    tiny = _parameters(notebook, monkeypatch, tiny=True)
    assert real["TINY"] is False and tiny["TINY"] is True
    assert set(real) == set(tiny)
    changed = [k for k in real if k != "TINY" and real[k] != tiny[k]]
    assert changed, "FLAMENERF_NOTEBOOK_TINY=1 changes no parameter"
    assert "WORK" in real  # FLAMENERF_NOTEBOOK_WORK: where outputs go
    for values in (real, tiny):
        if "GIN" in values:
            assert (ROOT / values["GIN"]).is_file(), f"{name}: GIN {values['GIN']} not found"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_installs_only_on_colab_and_finds_the_repository(name):
    _, notebook = _load(name)
    sources = [cell.source for cell in _code(notebook)]
    installs = [s for s in sources if re.search(r"\bpip\b", s)]
    assert len(installs) == 1
    assert 'if "google.colab" in sys.modules:' in installs[0]
    assert re.search(r"^REPO_URL = ", installs[0], re.MULTILINE)
    text = "\n".join(sources)
    assert 'Path.cwd().parent if Path.cwd().name == "colab" else Path.cwd()' in text
    assert "os.chdir(ROOT)" in text
    assert not re.search(r"['\"]/(work|tmp|root|home)/", text), "absolute paths in the notebook"
