# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""avatar.glb files are valid glTF 2.0 under the Khronos glTF Validator.

The validator is the npm package `gltf-validator`, pinned in tools/node/package-lock.json and
installed outside the package by `npm ci --prefix tools/node` (.ci/run does it; the folder's
node_modules/ is ignored by git). The tests are skipped, with that message, when node or the
validator is missing. Assets: the project's writer (`flamenerf.export.gltf.write_glb`) on the
hand-made scene and in `pipeline.export` of test_eval's tiny trained experiment (its own
field, and a head sphere: export_util.tiny_export), and the independent test writer
(tests/glb_util.py). Errors fail the test; warnings and infos are
reported (pytest's warnings summary).
"""

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from export_util import tiny_export
from glb_util import as_export_asset, glb_bytes, tiny_avatar

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = Path(
    os.environ.get(
        "FLAMENERF_GLTF_VALIDATOR", ROOT / "tools" / "node" / "node_modules" / "gltf-validator"
    )
)

# Reads the glb named by argv[2], prints the validator's JSON report.
_SCRIPT = """
const validator = require(process.argv[1]);
const bytes = new Uint8Array(require('fs').readFileSync(process.argv[2]));
validator.validateBytes(bytes, {uri: 'avatar.glb', maxIssues: 1000}).then(
  (report) => process.stdout.write(JSON.stringify(report)),
  (error) => { console.error(String(error)); process.exit(3); });
"""


def _node_and_validator() -> str:
    node = shutil.which("node")
    if node is None or not (VALIDATOR / "package.json").is_file():
        pytest.skip(
            f"node or the Khronos glTF Validator is missing ({VALIDATOR}; install it with "
            "`npm ci --prefix tools/node`, as .ci/run does)"
        )
    return node


def validate(glb: bytes, tmp_path: Path) -> dict:
    """The validator's report for the glb bytes (skips the test when it is not installed)."""
    node = _node_and_validator()
    path = tmp_path / "avatar.glb"
    path.write_bytes(glb)
    done = subprocess.run(
        [node, "-e", _SCRIPT, str(VALIDATOR), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check(report: dict, name: str) -> None:
    """No errors; warnings (and infos) are reported through pytest's warnings summary."""
    issues = report["issues"]
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    assert issues["numErrors"] == 0, [
        f"{m['code']} {m['pointer']}: {m['message']}" for m in errors[:20]
    ]
    for m in issues["messages"]:
        if m["severity"] in (1, 2):
            kind = "warning" if m["severity"] == 1 else "info"
            warnings.warn(
                f"{name}: validator {kind} {m['code']} at {m['pointer']}: {m['message']}",
                stacklevel=2,
            )


@pytest.mark.parametrize("animation", [True, False])
def test_the_independent_test_asset_is_valid(tmp_path, animation):
    report = validate(glb_bytes(tiny_avatar(animation=animation)), tmp_path)
    check(report, "tests/glb_util.py")
    info = report["info"]
    assert info["hasSkins"] and info["hasMorphTargets"] and info["hasDefaultScene"]
    assert info["extensionsUsed"] == ["KHR_materials_unlit"]
    assert info["animationCount"] == int(animation) and info["drawCallCount"] == 2
    assert report["issues"]["numWarnings"] == 0  # the reference writer is clean


@pytest.mark.parametrize("animation", [True, False])
def test_the_projects_writer_is_valid(tmp_path, animation):
    """`write_glb` of the same scene (tests/glb_util.as_export_asset)."""
    from flamenerf.export import gltf

    glb = gltf.write_glb(as_export_asset(tiny_avatar(animation=animation)))
    report = validate(glb, tmp_path)
    check(report, "flamenerf.export.gltf.write_glb")
    info = report["info"]
    assert info["hasSkins"] and info["hasMorphTargets"] and info["hasDefaultScene"]
    assert info["animationCount"] == int(animation) and info["drawCallCount"] == 2


def test_an_exported_experiment_is_valid(tmp_path, tmp_path_factory):
    """`python -m flamenerf.export`'s library path on a tiny trained experiment."""
    _node_and_validator()  # skip before training when the validator is missing
    out = tiny_export(tmp_path_factory)
    report = validate((out / "avatar.glb").read_bytes(), tmp_path)
    check(report, "pipeline.export of a tiny experiment")
    info = report["info"]
    assert info["hasSkins"] and info["hasDefaultScene"] and info["animationCount"] == 1
    print(f"validator on the tiny export: {report['issues']}")


def test_an_exported_head_is_valid(tmp_path, tmp_path_factory):
    """The same with a head to rig (morph targets, skin weights; an animation that turns,
    rolls and shifts the head: the neck's translation channel)."""
    _node_and_validator()
    out = tiny_export(tmp_path_factory, head=True)
    report = validate((out / "avatar.glb").read_bytes(), tmp_path)
    check(report, "pipeline.export of a tiny experiment's head sphere")
    info = report["info"]
    assert info["hasSkins"] and info["hasMorphTargets"] and info["animationCount"] == 1
    assert report["issues"]["numWarnings"] == 0


def test_the_validator_sees_an_error(tmp_path):
    """The harness is live: a glb with a negative skin weight is refused."""
    avatar = tiny_avatar(animation=False)
    avatar.head_weights[0] = [1.5, -0.5, 0, 0]
    report = validate(glb_bytes(avatar), tmp_path)
    codes = {m["code"] for m in report["issues"]["messages"] if m["severity"] == 0}
    assert "ACCESSOR_WEIGHTS_NEGATIVE" in codes
