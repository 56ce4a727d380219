# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Golden values (multinerf style): cached outputs tied to their version constants, the
forward output of a tiny model, and the gin files against the Python defaults.

The values are in tests/golden/*.json; how they are computed, fingerprinted and compared
(robustly to float noise across machines) is in tests/golden_util.py. When an output changes
on purpose, the failure message names the version constant to bump and its file; then run
`python tests/golden/update.py` and commit the JSON files with the change. The synthetic
captures TINY and MOTION8 are checked against the same golden file in
tests/synthetic/test_synthetic.py.
"""

import dataclasses
import json

import golden_util
import numpy as np
import pytest

from flamenerf.synthetic import generator, head

# --------------------------------------------------------------------------------------------
# Cached outputs and their version constants.


@pytest.mark.parametrize("name", ["head", "guide", "pack"])
def test_cached_output_matches_its_golden_and_version(name, tmp_path):
    """(a) the output changed, its version did not; (b) the version changed, the golden not."""
    golden_util.check(golden_util.SPECS[name], tmp_path)


def test_synthetic_capture_matches_its_golden_and_versions(tmp_path):
    """A tiny capture with a second phone: its first phone's frames are tied to
    GENERATOR_VERSION, the second phone's (vrig) frames to VRIG_VERSION."""
    args = golden_util.capture_golden()["captures"]["vrig8"]["args"]
    root = generator.generate(tmp_path / "vrig8", **args, show_progress=False)
    golden_util.check_capture("vrig8", root)


def test_every_golden_file_holds_the_current_versions():
    """Case (b) of every versioned golden file, without computing anything."""
    files = {spec.name: (spec.constant, *spec.inputs) for spec in golden_util.SPECS.values()}
    files[golden_util.CAPTURE] = (golden_util.GENERATOR_VERSION, golden_util.VRIG_VERSION)
    for name, constants in files.items():
        recorded = golden_util.load(name)["versions"]
        problem = golden_util.version_problem(name, recorded, golden_util.versions(constants))
        assert problem is None, problem


# --------------------------------------------------------------------------------------------
# The checks themselves, on made-up arrays: the messages and the tolerance.


def _fake_spec(arrays):
    return dataclasses.replace(golden_util.HEAD, compute=lambda scratch: (arrays, {"n": 1}))


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "v": rng.normal(0.0, 0.1, (3000, 3)).astype(np.float32),
        "f": rng.integers(0, 3000, (500, 3)).astype(np.int32),
    }


def test_a_changed_output_names_the_constant_to_bump_and_the_script(tmp_path):
    arrays = _arrays()
    golden = golden_util.record(_fake_spec(arrays), tmp_path)
    moved = dict(arrays, v=arrays["v"] + np.float32(0.01))
    problem = golden_util.output_problem(
        _fake_spec(moved), golden, golden_util.record(_fake_spec(moved), tmp_path)
    )
    assert problem is not None
    assert "but flamenerf.synthetic.head.VERSION is still 1" in problem
    assert f"bump VERSION in {golden_util.constant_file(golden_util.HEAD.constant)}" in problem
    assert "python tests/golden/update.py head" in problem and "v: mean" in problem
    faces = dict(arrays, f=arrays["f"][::-1].copy())
    problem = golden_util.output_problem(
        _fake_spec(faces), golden, golden_util.record(_fake_spec(faces), tmp_path)
    )
    assert "f: its values changed (compared exactly: discrete)" in problem


def test_a_changed_version_asks_for_regeneration(monkeypatch):
    recorded = golden_util.versions(("flamenerf.synthetic.head.VERSION",))
    monkeypatch.setattr(head, "VERSION", head.VERSION + 1)
    current = golden_util.versions(("flamenerf.synthetic.head.VERSION",))
    problem = golden_util.version_problem("head", recorded, current)
    assert f"flamenerf.synthetic.head.VERSION is {head.VERSION} (golden: {head.VERSION - 1})" in (
        problem
    )
    assert "python tests/golden/update.py head" in problem


def test_float_noise_passes_and_one_changed_value_fails(tmp_path):
    """Relative noise of 1e-6 on every value (another machine's float32 rounding) is within
    rtol = 1e-4; one value of 3000 x 3 moved by 5% of the array's RMS is not."""
    arrays = _arrays()
    golden = golden_util.record(_fake_spec(arrays), tmp_path)
    rng = np.random.default_rng(1)
    v = arrays["v"].astype(np.float64)
    noisy = dict(arrays, v=(v * (1 + 1e-6 * rng.standard_normal(v.shape))).astype(np.float32))
    current = golden_util.record(_fake_spec(noisy), tmp_path)
    assert current["digest"] != golden["digest"]
    assert golden_util.output_problem(_fake_spec(noisy), golden, current) is None
    one = v.copy()
    one[1234, 1] += 0.05 * np.sqrt(np.mean(v * v))
    changed = dict(arrays, v=one.astype(np.float32))
    current = golden_util.record(_fake_spec(changed), tmp_path)
    problem = golden_util.output_problem(_fake_spec(changed), golden, current)
    assert problem is not None and "block 6" in problem  # element 3703 of 9000, in block 6


# --------------------------------------------------------------------------------------------
# The forward output of a tiny model at a fixed seed.


def test_tiny_model_forward_matches_its_golden():
    golden = golden_util.load(golden_util.MODEL)
    actual = golden_util.model_forward()
    import flax
    import jax

    now = {"jax": jax.__version__, "flax": flax.__version__}
    for level, outputs in golden["outputs"].items():
        for name, expected in outputs.items():
            np.testing.assert_allclose(
                actual[level][name],
                expected,
                rtol=golden["rtol"],
                atol=golden["atol"],
                err_msg=(
                    f"The tiny model's {level} {name} changed (tests/golden/model_forward.json: "
                    f"{golden['what']}; recorded with {golden['recorded_with']}, now {now}). "
                    "If the model, its initialisation, sampling or volume rendering changed on "
                    "purpose (or a JAX/Flax upgrade changed the initial parameters), regenerate "
                    "with `python tests/golden/update.py model_forward` and say so in the "
                    "change; otherwise this is a regression."
                ),
            )


# --------------------------------------------------------------------------------------------
# gin files against the Python defaults (flamenerf/configs.py).


def _table(differences):
    return "\n".join(f"  {k}: {v['default']!r} -> {v['gin']!r}" for k, v in differences.items())


def test_paper_gin_equals_the_python_defaults_except_what_it_declares():
    path = golden_util.ROOT / "gin" / "paper.gin"
    differences = golden_util.gin_differences(path)
    declared = golden_util.declared_differences(path)
    undeclared = sorted(set(differences) - set(declared))
    not_different = sorted(set(declared) - set(differences))
    assert not undeclared and not not_different, (
        f"gin/paper.gin must equal the Python defaults except its '# differs:' lines.\n"
        f"Differ but not declared (declare them, or change the default): {undeclared}\n"
        f"Declared but equal to the default (remove the line): {not_different}\n"
        f"All differences (default -> paper.gin):\n{_table(differences)}"
    )


@pytest.mark.parametrize("name", golden_util.GIN_RECORDED)
def test_gin_file_differences_from_the_defaults_are_recorded(name):
    """The differences, which the README's claims about the file refer to, are printed
    (`pytest -s`) and must equal tests/golden/gin_differences.json."""
    differences = golden_util.gin_differences(golden_util.ROOT / "gin" / name)
    print(f"gin/{name} differs from the Python defaults in:\n{_table(differences)}")
    recorded = golden_util.load(golden_util.GIN_DIFFERENCES)["files"][name]
    assert differences == recorded, (
        f"gin/{name} or a Python default changed; now (default -> {name}):\n"
        f"{_table(differences)}\nCheck the README's claims about it, then record the new list "
        f"with `python tests/golden/update.py {golden_util.GIN_DIFFERENCES}`."
    )


def test_capture_json_is_digested_to_its_significant_digits(tmp_path):
    """A camera number's last bits (another CPU's trigonometry) leave the digest; a change
    in the JSON_DIGITS-th digit, a changed int or an int turned float does not."""

    def digest(value) -> bytes:
        path = tmp_path / "camera.json"
        path.write_text(json.dumps(value, indent=2))
        return golden_util.digest_bytes(path)

    x = 0.12345678901234
    base = digest({"position": [x, -0.5, 2], "n": 3})
    assert digest({"n": 3, "position": [x * (1 + 4e-16), -0.5, 2]}) == base
    assert digest({"position": [x + 1e-8, -0.5, 2], "n": 3}) != base
    assert digest({"position": [x, -0.5, 2.0], "n": 3}) != base  # 2 -> 2.0
    assert digest({"position": [x, -0.5, 2], "n": 4}) != base
    assert golden_util.rounded_json([-0.0, 3e-17, -2e-13]) == [0.0, 0.0, 0.0]
    assert golden_util.rounded_json({"a": [1, 1.0, True, "x"]}) == {"a": [1, 1.0, True, "x"]}
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG0")
    assert golden_util.digest_bytes(png) == b"\x89PNG0"  # other files: their bytes
