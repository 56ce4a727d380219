# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Golden values (multinerf style): how each one is computed, fingerprinted and checked.

Shared by `tests/test_golden.py`, `tests/synthetic/test_synthetic.py` (the synthetic
captures' digests) and `tests/golden/update.py` (which rewrites the files in `tests/golden/`).

Cached outputs are tied to the version constant that names or keys their cache: when the
output changes, the constant must change too (so that no stale cache is reused), and when the
constant changes, the golden file must be regenerated. Each versioned golden file holds
`versions` (every constant it was recorded with: its own first, then those of its inputs),
an exact `digest`, a few human-readable `summary` numbers and per-array `arrays` fingerprints.

Robustness to float noise across machines (BLAS, SIMD width, libm): the exact digest (sha256
of the arrays' bytes) is only a fast path: equal digests mean bit-identical output. When it
differs, the fingerprints decide, with the tolerance `rtol` stored in the file:

* discrete arrays (integers, booleans, strings: faces, labels, masks, pixels) are compared
  exactly (their sha256): a different triangle or pixel is a real change of the cache;
* floating-point arrays are reduced to their mean, root mean square, min, max and 16 block
  projections (the array cut into 16 contiguous blocks, each summed against fixed +-1 weights
  from an integer hash and divided by the square root of its length). Every number must agree
  within `rtol` times the array's RMS. Per-element noise of relative size e moves a projection
  by about e RMS (a random walk), so noise far below `rtol` passes, while one element moved by
  more than about `rtol * sqrt(block length)` RMS (or any systematic change) fails, and the
  blocks say where. Rounding values to a grid before hashing would instead fail whenever
  noise carries a value across a grid line, however small the noise.

The synthetic captures are already quantised by the generator (uint8 pixels, FLAME parameters
rounded to 6 decimals) and promise byte-identical files, so their golden is exact (the sha256
of each top-level file or folder).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
GOLDEN_DIR = TESTS / "golden"
TINY_GIN = TESTS / "gin" / "tiny.gin"
UPDATE = "python tests/golden/update.py"
BLOCKS = 16  # block projections per floating-point array


# --------------------------------------------------------------------------------------------
# Files.


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    """The golden file `tests/golden/{name}.json` (AssertionError naming the fix if absent)."""
    path = golden_path(name)
    if not path.is_file():
        raise AssertionError(
            f"{path.relative_to(ROOT)} is missing: create it with `{UPDATE} {name}`"
        )
    return json.loads(path.read_text())


def _dumps(value: Any, level: int = 0) -> str:
    """JSON, one key per line; lists of numbers or strings and small flat dicts on one line."""
    inner = " " * (level + 1)
    scalars = isinstance(value, dict) and not any(
        isinstance(v, dict | list) for v in value.values()
    )
    if scalars and len(value) <= 3:
        return json.dumps(value)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [inner + _dumps(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * level + "]"
    return json.dumps(value)


def save(name: str, value: dict[str, Any]) -> Path:
    path = golden_path(name)
    path.write_text(_dumps(value) + "\n")
    return path


def _number(value: float) -> float:
    """A float rounded to 12 significant digits (readable JSON; far below any tolerance)."""
    return float(f"{float(value):.12g}")


# --------------------------------------------------------------------------------------------
# Digests and fingerprints.


def _signs(n: int, seed: int = 0) -> np.ndarray:
    """(n,) +-1 weights from the splitmix64 hash of the index: the same on every machine."""
    mask = (1 << 64) - 1
    z = np.arange(n, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & mask)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.where(z >> np.uint64(63), 1.0, -1.0)


def _canonical(array: Any) -> np.ndarray:
    """C-ordered, little-endian (so that bytes are comparable across machines)."""
    a = np.ascontiguousarray(array)
    return a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a


def digest(arrays: dict[str, Any]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `arrays` (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = _canonical(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fingerprint(array: Any) -> dict[str, Any]:
    """What is compared of one array (see the module docstring)."""
    a = _canonical(array)
    result: dict[str, Any] = {"shape": list(a.shape), "dtype": a.dtype.str}
    if a.dtype.kind not in "fc":
        result["sha256"] = hashlib.sha256(a.tobytes()).hexdigest()
        return result
    x = a.astype(np.float64).ravel()
    if x.size == 0:
        return result
    signs = _signs(x.size)
    blocks = [
        float(np.dot(s, v)) / np.sqrt(len(v))
        for s, v in zip(
            np.array_split(signs, min(BLOCKS, x.size)),
            np.array_split(x, min(BLOCKS, x.size)),
            strict=True,
        )
    ]
    result.update(
        mean=_number(x.mean()),
        rms=_number(np.sqrt(np.mean(x * x))),
        min=_number(x.min()),
        max=_number(x.max()),
        blocks=[_number(b) for b in blocks],
    )
    return result


def fingerprints(arrays: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: fingerprint(arrays[name]) for name in sorted(arrays)}


def compare(expected: dict[str, Any], actual: dict[str, Any], rtol: float) -> list[str]:
    """Differences between two `fingerprints` results beyond `rtol` (one line each)."""
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual or name not in expected:
            where = "the output" if name not in actual else "the golden file"
            problems.append(f"{name}: missing from {where}")
            continue
        e, a = expected[name], actual[name]
        if (e["shape"], e["dtype"]) != (a["shape"], a["dtype"]):
            problems.append(f"{name}: {a['dtype']} {a['shape']}, golden {e['dtype']} {e['shape']}")
        elif "sha256" in e or "sha256" in a:
            if e.get("sha256") != a.get("sha256"):
                problems.append(f"{name}: its values changed (compared exactly: discrete)")
        elif "rms" in e:
            tol = rtol * max(e["rms"], 1e-30)
            stats = [(k, e[k], a[k]) for k in ("mean", "rms", "min", "max")]
            pairs = zip(e["blocks"], a["blocks"], strict=True)
            stats += [(f"block {i}", x, y) for i, (x, y) in enumerate(pairs)]
            bad = [(k, x, y) for k, x, y in stats if not abs(x - y) <= tol]
            if bad:
                shown = ", ".join(f"{k} {x:.6g} -> {y:.6g}" for k, x, y in bad[:3])
                more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
                problems.append(f"{name}: {shown}{more} (tolerance {tol:.3g} = rtol x RMS)")
    return problems


# --------------------------------------------------------------------------------------------
# Versioned goldens: an output tied to the cache version constant(s) it depends on.


@dataclasses.dataclass(frozen=True)
class Spec:
    """A cached output with a version constant.

    Attributes:
      name: the golden file is tests/golden/{name}.json.
      what: what the output is, for messages.
      constant: "module.CONSTANT", the version to bump when the output changes.
      inputs: further "module.CONSTANT"s whose change may change the output (regenerate only).
      rtol: tolerance of floating-point fingerprints, relative to each array's RMS.
      compute: (scratch folder) -> (arrays, summary numbers).
    """

    name: str
    what: str
    constant: str
    inputs: tuple[str, ...]
    rtol: float
    compute: Callable[[Path], tuple[dict[str, np.ndarray], dict[str, Any]]]


def constant_value(qualified: str) -> Any:
    module, name = qualified.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def constant_file(qualified: str) -> str:
    """The source file defining `module.CONSTANT`, relative to the repository."""
    module = importlib.import_module(qualified.rsplit(".", 1)[0])
    path = Path(module.__file__).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def versions(constants: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {c: constant_value(c) for c in constants}


def version_problem(name: str, recorded: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The message of case (b): a version changed, the golden was not regenerated."""
    if recorded == current:
        return None
    changed = [
        f"{c} is {current.get(c)!r} (golden: {recorded.get(c)!r})"
        for c in sorted(set(recorded) | set(current))
        if recorded.get(c) != current.get(c)
    ]
    return (
        f"tests/golden/{name}.json is out of date: {'; '.join(changed)}. The version changed, "
        f"so the output is declared new: regenerate the golden values with `{UPDATE} {name}` "
        "and commit them with the version change."
    )


def record(spec: Spec, scratch: Path) -> dict[str, Any]:
    """The golden file's contents for the current code."""
    arrays, summary = spec.compute(scratch)
    return {
        "what": spec.what,
        "versions": versions((spec.constant, *spec.inputs)),
        "digest": digest(arrays),
        "rtol": spec.rtol,
        "summary": summary,
        "arrays": fingerprints(arrays),
    }


def output_problem(spec: Spec, golden: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The message of case (a): the output changed but its version constant did not."""
    if current["digest"] == golden["digest"]:
        return None
    problems = compare(golden["arrays"], current["arrays"], golden["rtol"])
    if not problems:
        return None  # float noise of another machine, within the tolerance
    summary = "".join(
        f"\n    {k}: {golden['summary'].get(k)!r} -> {v!r}"
        for k, v in current["summary"].items()
        if golden["summary"].get(k) != v
    )
    value = constant_value(spec.constant)
    inputs = (
        f" (It also depends on {', '.join(spec.inputs)}: if their golden fails too, the change "
        "is theirs: bump that version instead.)"
        if spec.inputs
        else ""
    )
    return (
        f"{spec.what} changed, but {spec.constant} is still {value!r}. Caches keyed by it would "
        f"hand out stale data: bump {spec.constant.rsplit('.', 1)[1]} in "
        f"{constant_file(spec.constant)} and regenerate with `{UPDATE} {spec.name}`.{inputs}\n  "
        + "\n  ".join(problems)
        + (f"\n  summary:{summary}" if summary else "")
    )


def check(spec: Spec, scratch: Path) -> None:
    """Asserts that the golden file matches the current versions and output."""
    golden = load(spec.name)
    problem = version_problem(
        spec.name, golden["versions"], versions((spec.constant, *spec.inputs))
    )
    assert problem is None, problem
    problem = output_problem(spec, golden, record(spec, scratch))
    assert problem is None, problem


# --------------------------------------------------------------------------------------------
# The procedural head.


def head_output(scratch: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array of `build_head()`, read from the cached file (`default_head_path`)."""
    del scratch
    from flamenerf.synthetic import head

    with np.load(head.default_head_path(), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    v = arrays["v_template"].astype(np.float64)
    summary = {
        "vertices": len(v),
        "faces": len(arrays["f"]),
        "bbox_min_m": [_number(x) for x in v.min(axis=0).round(6)],
        "bbox_max_m": [_number(x) for x in v.max(axis=0).round(6)],
    }
    return arrays, summary


HEAD = Spec(
    name="head",
    what="The procedural head (flamenerf.synthetic.head.build_head)",
    constant="flamenerf.synthetic.head.VERSION",
    inputs=(),
    rtol=1e-4,  # float32 arrays of float64 geometry: noise ~1e-7
    compute=head_output,
)


# --------------------------------------------------------------------------------------------
# A tiny hand-made capture of the procedural head (no generator involved) and its guide grids.


def head_capture(root: Path) -> Path:
    """A capture (tests/capture_util layout) of the procedural head: three training frames
    and one validation frame with expressions, an open jaw and a turned, shifted head."""
    from capture_util import write_capture

    from flamenerf.synthetic import head

    write_capture(root, num_train=3, num_val=1, num_expression=4)
    shutil.copyfile(head.default_head_path(), root / "flame_model.npz")
    for k, path in enumerate(sorted((root / "flame").glob("*.json"))):
        params = {
            "shape": [0.5, -0.3],
            "expression": [0.8, 0.4 * k, 0.3, -0.2],
            "jaw_pose": [0.05 + 0.08 * k, 0.0, 0.0],
            "global_pose": [0.02, 0.12 * k, 0.03],
            "translation": [0.006 * k, -0.002, 0.0],
        }
        path.write_text(json.dumps(params))
    return root


def guide_output(scratch: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The guide grids of `head_capture`, built by `Experiment.guide_grids` at 8^3."""
    import gin

    from flamenerf.training import experiment

    capture = head_capture(scratch / "guide_capture")
    bindings = ["GuideConfig.enabled = True", "GuideConfig.resolution = 8"]
    exp = experiment.Experiment.create(
        scratch / "guide_exp", [str(TINY_GIN)], bindings, str(capture), write_config=False
    )
    try:
        grids = exp.guide_grids(show_progress=False)
        stats = exp.guide_stats
    finally:
        exp.close()
        gin.clear_config()
    values = np.asarray(grids.values)
    arrays = {
        "residual": values[..., :3],  # float16: the rtol below allows a few flipped last bits
        "distance": values[..., 3],
        "folded": np.asarray(stats.folded),
        "rigid_margin": np.asarray(stats.rigid_margin),
    }
    for name in ("lower", "upper", "rigid", "rotation", "centre", "radius", "fade"):
        arrays[name] = np.asarray(getattr(grids, name))
    residual = np.linalg.norm(values[..., :3].astype(np.float64), axis=-1)
    summary = {
        "frames": int(values.shape[0]),
        "resolution": int(values.shape[1]),
        "max_residual": _number(residual.max()),
        "folded_percent": _number(100 * float(np.mean(stats.folded))),
        "rigid_margin": _number(stats.rigid_margin),
    }
    return arrays, summary


GUIDE = Spec(
    name="guide",
    what="The FLAME-guide grids (Experiment.guide_grids, flamenerf.nerf.guide)",
    constant="flamenerf.training.experiment.GUIDE_VERSION",
    inputs=("flamenerf.synthetic.head.VERSION",),
    rtol=1e-3,  # float16 storage: one flipped last bit is ~5e-4 of a value
    compute=guide_output,
)


# --------------------------------------------------------------------------------------------
# A tiny pack.


def pack_output(scratch: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The records of a tiny hand-made capture's pack (the masks rasterised by the packer)."""
    from capture_util import write_capture

    from flamenerf.datasets import capture as capture_lib
    from flamenerf.datasets import packing

    root = write_capture(scratch / "pack_capture", num_train=3, num_val=1)  # no mask files
    capture = capture_lib.load_capture(root)
    source = packing.pack_capture(capture, cache_dir=scratch / "packed", show_progress=False)
    frames = [source[i] for i in range(len(source))]
    arrays = {
        "image": np.stack([f["image"] for f in frames]),
        "mask": np.stack([f["mask"] for f in frames]),
    }
    summary = {
        "frames": len(frames),
        "image_shape": list(arrays["image"].shape[1:]),
        "mask_pixels": [int(m.sum()) for m in arrays["mask"]],
    }
    return arrays, summary


PACK = Spec(
    name="pack",
    what="A tiny capture's pack (flamenerf.datasets.packing.pack_capture)",
    constant="flamenerf.datasets.packing.PACK_VERSION",
    inputs=(),
    rtol=0.0,  # every array is discrete (uint8 pixels, boolean masks)
    compute=pack_output,
)

SPECS = {spec.name: spec for spec in (HEAD, GUIDE, PACK)}


# --------------------------------------------------------------------------------------------
# Synthetic captures: part digests, exact but for the JSON files' last digits
# (tests/synthetic/test_synthetic.py and
# tests/test_golden.py).

CAPTURE = "synthetic_capture"
GENERATOR_VERSION = "flamenerf.synthetic.generator.GENERATOR_VERSION"
VRIG_VERSION = "flamenerf.synthetic.generator.VRIG_VERSION"
VRIG_FRAMES = "vrig frames"  # the part of every file of the second phone's frames


JSON_DIGITS = 8  # significant digits of the numbers in a capture's JSON files, as digested
JSON_ZERO = 1e-12  # smaller floats (in magnitude) are digested as 0.0


def rounded_json(value: Any) -> Any:
    """value (parsed JSON) with every float rounded to JSON_DIGITS significant digits, those
    below JSON_ZERO in magnitude (a cancellation's noise, -0.0) as 0.0; ints stay ints."""
    if isinstance(value, float):
        return 0.0 if abs(value) < JSON_ZERO else float(f"{value:.{JSON_DIGITS}g}")
    if isinstance(value, list):
        return [rounded_json(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded_json(v) for k, v in value.items()}
    return value


def digest_bytes(path: Path) -> bytes:
    """What part_digests hashes of a file: its bytes, or for a .json file its parsed content
    with `rounded_json` numbers, keys sorted (cameras come from numpy's trigonometry, whose
    last bits differ between CPUs: the same generator gives the same capture to about 1e-15;
    the generator writes FLAME parameters to 6 decimals and scene.json's figures to 4, far
    coarser than the digits kept). Key order and layout of a JSON file are not digested."""
    if path.suffix != ".json":
        return path.read_bytes()
    return json.dumps(rounded_json(json.loads(path.read_text())), sort_keys=True).encode()


def part_digests(root: Path) -> dict[str, str]:
    """sha256 of each top-level file or folder (its files' relative paths and `digest_bytes`);
    the files of vrig frames ("vrig_*") form their own part, VRIG_FRAMES."""
    parts: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = path.relative_to(root)
            part = VRIG_FRAMES if path.name.startswith("vrig_") else rel.parts[0]
            h = parts.setdefault(part, hashlib.sha256())
            h.update(str(rel).encode())
            h.update(digest_bytes(path))
    return {name: h.hexdigest() for name, h in parts.items()}


def capture_summary(root: Path) -> dict[str, Any]:
    from PIL import Image

    scene = json.loads((root / "scene.json").read_text())
    images = [np.asarray(Image.open(p)) for p in sorted((root / "rgb" / "1x").glob("*.png"))]
    return {
        "frames": len(images),
        "near": scene["near"],
        "far": scene["far"],
        "mean_rgb_1x": _number(np.mean([i.mean() for i in images])),
    }


def capture_golden() -> dict[str, Any]:
    """tests/golden/synthetic_capture.json, checked against the generator's versions and the
    digests' JSON_DIGITS."""
    golden = load(CAPTURE)
    problem = version_problem(CAPTURE, golden["versions"], versions(golden["versions"]))
    assert problem is None, problem
    assert golden.get("json_digits") == JSON_DIGITS, (
        f"{CAPTURE}.json was digested with json_digits {golden.get('json_digits')}, "
        f"golden_util.JSON_DIGITS is {JSON_DIGITS}: `{UPDATE} {CAPTURE} --force` re-records it"
    )
    return golden


def check_capture(name: str, root: Path) -> None:
    """Asserts that the capture at `root` has the golden part digests of `name`."""
    golden = capture_golden()["captures"][name]
    actual = part_digests(root)
    expected = golden["parts"]
    if actual == expected:
        return
    changed = sorted(p for p in set(actual) | set(expected) if actual.get(p) != expected.get(p))
    vrig_only = changed == [VRIG_FRAMES]
    constant = VRIG_VERSION if vrig_only else GENERATOR_VERSION
    why = (
        "only the second phone's frames changed"
        if vrig_only
        else "the same arguments give other files"
    )
    summary = capture_summary(root)
    summary_changes = "".join(
        f"\n  {k}: {golden['summary'].get(k)!r} -> {v!r}"
        for k, v in summary.items()
        if golden["summary"].get(k) != v
    )
    raise AssertionError(
        f"The synthetic capture {name!r} ({golden['args']}) changed ({why}: {changed}), but "
        f"{constant} is still {constant_value(constant)!r}: cached captures would be reused. "
        f"Bump {constant.rsplit('.', 1)[1]} in {constant_file(constant)} and regenerate with "
        f"`{UPDATE} {CAPTURE}`." + summary_changes
    )


def capture_record(scratch: Path, captures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """synthetic_capture.json's contents for the current generator (captures: name -> args)."""
    from flamenerf.synthetic import generator

    result: dict[str, Any] = {
        "what": (
            "Synthetic captures (flamenerf.synthetic.generator.generate); part digests "
            "(tests/golden_util.py digest_bytes: JSON numbers to json_digits significant digits)"
        ),
        "json_digits": JSON_DIGITS,
        "versions": versions((GENERATOR_VERSION, VRIG_VERSION)),
        "keys": {
            "default": generator.capture_key(),
            "motion": generator.capture_key(head_motion=True),
        },
        "captures": {},
    }
    for name, args in captures.items():
        root = generator.generate(scratch / name, **args, show_progress=False)
        result["captures"][name] = {
            "args": args,
            "parts": part_digests(root),
            "summary": capture_summary(root),
        }
    return result


# --------------------------------------------------------------------------------------------
# The forward output of a tiny model at a fixed seed.

MODEL = "model_forward"
MODEL_RTOL, MODEL_ATOL = 1e-5, 1e-6
MODEL_OUTPUTS = ("rgb", "depth", "acc")
WARP_ALPHA = 1.5


def golden_rays():
    """Four fixed rays (a RayBatch): different codes and conditions, one outside the face."""
    from flamenerf.datasets import rays

    directions = np.array(
        [[0.0, 0.0, 1.0], [0.2, -0.1, 1.0], [-0.3, 0.25, 1.0], [0.1, 0.4, 1.0]], np.float32
    )
    condition = np.array(
        [[0.0] * 5, [0.5, -0.2, 0.1, 0.3, 0.0], [1.2, 0.4, -0.6, 0.0, 0.2], [0.3] * 5],
        np.float32,
    )
    return rays.RayBatch(
        origins=np.tile(np.array([[0.05, -0.02, -1.2]], np.float32), (4, 1)),
        directions=directions / np.linalg.norm(directions, axis=-1, keepdims=True),
        rgb=np.zeros((4, 3), np.float32),
        frame=np.zeros(4, np.int32),
        warp_id=np.array([0, 1, 2, 3], np.int32),
        appearance_id=np.array([3, 2, 1, 0], np.int32),
        condition=condition,
        inside=np.array([1.0, 1.0, 1.0, 0.0], np.float32),
    )


def model_input(batch):
    """What FlameNerf.__call__ takes as its rays (the one place to change with its signature)."""
    return batch


def tiny_model():
    """FlameNerf of tests/gin/tiny.gin (4 codes, 5 conditioning components) and its
    parameters initialised with PRNGKey(0)."""
    import gin
    import jax

    from flamenerf import configs
    from flamenerf.nerf import model as model_lib
    from flamenerf.training import experiment

    experiment.parse_gin([str(TINY_GIN)], [])
    try:
        model = model_lib.make_model(
            configs.ModelConfig(),
            configs.WarpConfig(),
            configs.ExpressionConfig(),
            num_codes=4,
            condition_dim=5,
            near=0.5,
            far=2.0,
        )
    finally:
        gin.clear_config()
    # Compiled: eager initialisation of the fields takes seconds (as in Experiment.init_state).
    params = jax.jit(lambda key: model_lib.init_params(model, key))(jax.random.PRNGKey(0))
    return model, params


def model_forward() -> dict[str, dict[str, list]]:
    """{"coarse"/"fine": {"rgb", "depth", "acc": nested lists}} of the golden rays."""
    import jax

    model, params = tiny_model()
    out = jax.jit(lambda p, b: model.apply({"params": p}, model_input(b), WARP_ALPHA, False))(
        params, golden_rays()
    )
    return {
        level: {k: np.asarray(out[level][k], np.float64).tolist() for k in MODEL_OUTPUTS}
        for level in ("coarse", "fine")
    }


def model_record() -> dict[str, Any]:
    import flax
    import jax

    return {
        "what": "FlameNerf of tests/gin/tiny.gin, PRNGKey(0), 4 rays, warp alpha 1.5, "
        "deterministic (randomized=False)",
        "recorded_with": {"jax": jax.__version__, "flax": flax.__version__},
        "rtol": MODEL_RTOL,
        "atol": MODEL_ATOL,
        "outputs": model_forward(),
    }


# --------------------------------------------------------------------------------------------
# gin files against the Python defaults.

DECLARED = re.compile(r"^#\s*differs:\s*([A-Za-z_][\w.\[\]]*)")
GIN_DIFFERENCES = "gin_differences"


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """Dotted field paths -> JSON values; nested configs and schedules are descended into."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out[f"{prefix}.<class>"] = type(value).__name__
        for field in dataclasses.fields(value):
            _flatten(getattr(value, field.name), f"{prefix}.{field.name}", out)
    elif isinstance(value, tuple | list) and any(dataclasses.is_dataclass(v) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    else:
        out[prefix] = json.loads(json.dumps(value))  # tuples as lists
    return out


def config_fields() -> dict[str, Any]:
    """Every field of every config (`configs.build_all`) under the current gin bindings."""
    from flamenerf import configs

    out: dict[str, Any] = {}
    for name, config in configs.build_all().items():
        _flatten(config, name, out)
    return out


def gin_differences(gin_file: Path) -> dict[str, dict[str, Any]]:
    """{field path: {"default": Python default, "gin": the file's value}} where they differ,
    the file parsed as the command lines parse it (`experiment.parse_gin`)."""
    import gin

    from flamenerf.training import experiment

    gin.clear_config()
    defaults = config_fields()
    experiment.parse_gin([str(gin_file)], [])
    try:
        configured = config_fields()
    finally:
        gin.clear_config()
    return {
        path: {"default": defaults.get(path), "gin": configured.get(path)}
        for path in sorted(set(defaults) | set(configured))
        if defaults.get(path) != configured.get(path)
    }


def declared_differences(gin_file: Path) -> list[str]:
    """The field paths a gin file declares in "# differs: Config.field" comment lines."""
    return [m.group(1) for line in gin_file.read_text().splitlines() if (m := DECLARED.match(line))]


GIN_RECORDED = ("demo.gin",)  # gin files whose differences tests/golden records


def gin_record() -> dict[str, Any]:
    return {
        "what": "Fields where gin files differ from the Python defaults (flamenerf/configs.py)",
        "files": {name: gin_differences(ROOT / "gin" / name) for name in GIN_RECORDED},
    }


# --------------------------------------------------------------------------------------------
# A scratch folder.


class Scratch:
    """A temporary folder (context manager) for the recipes' captures and packs."""

    def __enter__(self) -> Path:
        self._path = Path(tempfile.mkdtemp(prefix="flamenerf_golden_"))
        return self._path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self._path, ignore_errors=True)


def fresh_cache() -> Path:
    """Points FLAMENERF_CACHE at a new empty folder (so nothing stale is read)."""
    path = Path(tempfile.mkdtemp(prefix="flamenerf_golden_cache_"))
    os.environ["FLAMENERF_CACHE"] = str(path)
    return path
