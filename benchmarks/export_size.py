# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The size of the exported avatar against the issue's budget, and where its bytes go.

    python benchmarks/export_size.py --base_folder EXP --out SCRATCH [--resolution 96] ...

Exports the experiment as `python -m flamenerf.export` does (`pipeline.export`, the bake
options as flags, default: the command's defaults) into SCRATCH (the bake's stages are kept
in SCRATCH/.export: a rerun with other options reuses what it can), then prints the capture's
image size, the asset's triangles and vertices, avatar.glb's and index.html's sizes against
the budget (issue 18: under 10 MB for the demo asset, under 50 MB for a 512 px capture) and a
breakdown of avatar.glb by what its bytes hold (`breakdown`: each accessor's buffer view
counted once, under its mesh and attribute, the skin, or the animations; the JSON chunk; the
GLB's headers and padding). The size depends on the bake's settings and the scene's surfaces,
not on how long the NeRF trained. Times are not measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import struct
import sys
from pathlib import Path

from flamenerf import cli_args
from flamenerf.export import bake, pipeline
from flamenerf.training.experiment import Experiment

DEMO_BUDGET_MB = 10.0  # issue 18: the demo asset
CAPTURE_512_BUDGET_MB = 50.0  # issue 18: a 512 px capture


def breakdown(glb: bytes) -> dict[str, int]:
    """Bytes of a glb by what they hold: "MESH ATTRIBUTE" (POSITION, COLOR_0, JOINTS_0,
    WEIGHTS_0, indices, morph targets: values and sparse indices), "skin", "animations",
    "json", and "container" (GLB and chunk headers, the padding between buffer views). The
    values sum to len(glb)."""
    json_length = struct.unpack_from("<I", glb, 12)[0]
    doc = json.loads(glb[20 : 20 + json_length])
    views = doc.get("bufferViews", [])
    owner: dict[int, str] = {}

    def claim(accessor: int | None, name: str) -> None:
        if accessor is None:
            return
        acc = doc["accessors"][accessor]
        for view in [acc.get("bufferView")] + [
            acc.get("sparse", {}).get(part, {}).get("bufferView") for part in ("indices", "values")
        ]:
            if view is not None:
                owner.setdefault(view, name)

    for mesh in doc.get("meshes", []):
        for primitive in mesh["primitives"]:
            for attribute, accessor in primitive["attributes"].items():
                claim(accessor, f"{mesh['name']} {attribute}")
            claim(primitive.get("indices"), f"{mesh['name']} indices")
            for target in primitive.get("targets", []):
                for accessor in target.values():
                    claim(accessor, f"{mesh['name']} morph targets")
    for skin in doc.get("skins", []):
        claim(skin.get("inverseBindMatrices"), "skin")
    for animation in doc.get("animations", []):
        for sampler in animation["samplers"]:
            claim(sampler["input"], "animations")
            claim(sampler["output"], "animations")
    out: dict[str, int] = {}
    for index, view in enumerate(views):
        name = owner.get(index, "other")
        out[name] = out.get(name, 0) + view["byteLength"]
    out["json"] = json_length
    out["container"] = len(glb) - sum(out.values())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli_args.add_base_folder(parser)
    parser.add_argument("--out", required=True, help="scratch folder (the export, its cache)")
    cli_args.add_checkpoint(parser)
    defaults = bake.BakeOptions()
    for field in dataclasses.fields(bake.BakeOptions):
        kind = type(getattr(defaults, field.name))
        parser.add_argument(f"--{field.name}", type=kind, default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    options = bake.BakeOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(bake.BakeOptions)}
    )
    out = Path(args.out)
    with Experiment.restore(args.base_folder, args.checkpoint) as restored:
        capture = restored.exp.capture
        sizes = sorted({tuple(capture.cameras[i].image_size) for i in capture.train_ids})
        report = pipeline.export(
            restored,
            out,
            pipeline.ExportOptions(bake=options),
            overwrite=True,
            show_progress=True,
        )
    glb = (out / "avatar.glb").read_bytes()
    megabytes = len(glb) / 1e6
    print(f"experiment {args.base_folder}: training images {sizes} (width, height)")
    print(
        f"grid {report['grid_shape']}, triangles {report['triangles']}, vertices "
        f"{report['vertices']}, expression targets {report['expression_targets']}"
    )
    longest = max(max(s) for s in sizes)
    budget = CAPTURE_512_BUDGET_MB if longest >= 512 else DEMO_BUDGET_MB
    verdict = "within" if megabytes < budget else "OVER"
    print(
        f"avatar.glb {megabytes:.2f} MB ({verdict} the {budget:.0f} MB budget), index.html "
        f"{report['bytes']['index.html'] / 1e6:.2f} MB"
    )
    print("\n| part | MB | share |\n| --- | --- | --- |")
    for name, size in sorted(breakdown(glb).items(), key=lambda item: -item[1]):
        print(f"| {name} | {size / 1e6:.3f} | {100 * size / len(glb):.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
