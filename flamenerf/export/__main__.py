# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.export --base_folder EXP --out DIR` (also `python -m flamenerf export`).

Bakes a trained experiment into an avatar a browser, Blender or a game engine opens: the
canonical scene (head, hair, torso, room) as vertex-coloured triangle meshes, the head rigged
with FLAME (expression morph targets, neck and jaw joints) through the relation the FLAME
guide uses, its vertex colours fitted to the NeRF's renders of training frames. Writes

    DIR/avatar.glb     glTF 2.0 binary (docs/export.md): meshes "room" and "head", skin
                       "flame", one animation per --animation folder
    DIR/index.html     a self-contained viewer (three.js inlined; opens from file://) with a
                       slider per expression coefficient, jaw, head yaw and pitch, playback
    DIR/export.json    what was baked: checkpoint, options, sizes, triangle counts, bytes
    DIR/.export/       finished stages (density grid, carving, coloured mesh, the NeRF's
                       renders for the colour fit): a rerun with the same checkpoint and
                       options reuses them, an interrupted one resumes

Exit codes: 0 done; 2 bad arguments or bad input (one line naming the file or flag).
"""

from __future__ import annotations

import argparse
import sys

from flamenerf import cli_args, compilation_cache, errors, help_format
from flamenerf.errors import UserError
from flamenerf.io import paths


def build_parser() -> argparse.ArgumentParser:
    from flamenerf.export import animation, bake

    options = bake.BakeOptions()
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.export",
        formatter_class=help_format.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[1].rsplit("\n\nExit codes", 1)[0],
    )
    # Export reads and writes local folders only (a URL is a one-line error, never a local
    # folder named "gs:"): copy a bucket's experiment down first.
    cli_args.add_base_folder(parser, local=True)
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        type=paths.local_path_argument,
        help="output folder (avatar.glb, index.html, ...)",
    )
    cli_args.add_checkpoint(parser)
    parser.add_argument(
        "--resolution",
        type=int,
        default=options.resolution,
        metavar="N",
        help="density grid points along the longest side of the scene's box",
    )
    parser.add_argument(
        "--body_resolution",
        type=int,
        default=options.body_resolution,
        metavar="N",
        help="grid points along the longest side of the body's box (torso, hair; 0: none)",
    )
    parser.add_argument(
        "--head_resolution",
        type=int,
        default=options.head_resolution,
        metavar="N",
        help="grid points along the longest side of the FLAME head's box (0: none)",
    )
    parser.add_argument(
        "--appearance",
        choices=bake.APPEARANCES,
        default=options.appearance,
        help="appearance code: mean (of the training frames' codes) or frame (the code of "
        "--default_frame)",
    )
    parser.add_argument(
        "--expression",
        choices=bake.EXPRESSIONS,
        default=options.expression,
        help="conditioning vector the canonical field is baked at: mean (of the training "
        "frames' vectors, where the model's spatial prior fed it in training, zero elsewhere) "
        "or zero (everywhere)",
    )
    parser.add_argument(
        "--room",
        choices=bake.ROOMS,
        default=options.room,
        help="the scene beyond the body's box: one smooth backdrop seen from the central "
        "camera, or carved like the body",
    )
    parser.add_argument(
        "--refine_frames",
        type=int,
        default=options.refine_frames,
        metavar="N",
        help="training frames (spread evenly) whose NeRF renders the asset's vertex colours are "
        "fitted to (0: the colours as baked)",
    )
    parser.add_argument(
        "--default_frame",
        metavar="ID",
        help="frame whose camera starts the viewer and whose identity is rigged (default: the "
        "first training frame)",
    )
    parser.add_argument(
        "--animation",
        action="append",
        type=paths.local_path_argument,
        default=[],
        metavar="FOLDER",
        help="a folder of FLAME parameter files (the capture's flame/ID.json form, sorted by "
        "name) written as a glTF animation named after it; repeatable (default: none)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=animation.DEFAULT_FPS,
        help="key frames per second of the animations",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace another experiment's export in DIR (and rebuild DIR/.export)",
    )
    cli_args.add_quiet(parser)
    return parser


def run(args: argparse.Namespace) -> dict:
    import dataclasses

    from flamenerf.export import bake, pipeline
    from flamenerf.training.experiment import Experiment

    if not args.fps > 0:
        raise UserError(f"--fps {args.fps}: expected a number > 0")
    try:
        options = dataclasses.replace(
            bake.BakeOptions(),
            resolution=args.resolution,
            body_resolution=args.body_resolution,
            head_resolution=args.head_resolution,
            appearance=args.appearance,
            expression=args.expression,
            room=args.room,
            refine_frames=args.refine_frames,
        )
    except ValueError as error:
        flag = str(error).split(":", 1)[0].removeprefix("BakeOptions.")
        raise UserError(f"--{flag}: {str(error).split(':', 1)[-1].strip()}") from None
    export_options = pipeline.ExportOptions(
        bake=options,
        default_frame=args.default_frame,
        animations=tuple(str(folder) for folder in args.animation),
        fps=args.fps,
    )
    with Experiment.restore(args.base_folder, args.checkpoint) as restored:
        report = pipeline.export(
            restored, args.out, export_options, args.overwrite, show_progress=not args.quiet
        )
    triangles = sum(report["triangles"].values())
    size = report["bytes"]["avatar.glb"] / 1e6
    print(f"{args.out}: avatar.glb ({size:.1f} MB, {triangles} triangles), index.html, export.json")
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    compilation_cache.enable()  # compiled programs persist across runs (docstring there)
    try:
        run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
