# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Time to quality (issue 19): when does the train command first reach the PSNR targets?

    python benchmarks/time_to_quality.py [--variant NAME=GIN[,GIN...] [BINDING ...]] ...
        [--seeds 0 1] [--val_every 100] [--whole 30] [--face 28] [--budget 300]
        [--bindings BINDING ...] [--data_dir CAPTURE] [--out bench_out/time_to_quality]

Runs the train command (`python -m flamenerf.train --gin_configs GIN ... --base_folder EXP`)
of each variant (default: `demo=demo.gin`, the demo; `--variant` again for more, side by
side, e.g. `--variant contracted=demo.gin 'ModelConfig.spacing = "contracted"'`) and
each training seed, one run after the other (all variants for the first seed, then all for
the next, so that a drift in the machine's load falls on every variant alike). Each run is a
fresh process with an empty cache folder (`FLAMENERF_CACHE`) and an empty compilation cache
(`FLAMENERF_COMPILATION_CACHE`, flamenerf/compilation_cache.py), both inside its run folder,
so its start-up is what a new user sees: the procedural head and the synthetic demo capture
generated (with `--data_dir`, that capture is read instead and its making is not counted),
the capture packed, the FLAME guide grids built, every program compiled.

Every run validates every `--val_every` steps on the config's validation frames (the demo's
16) and at its last step, and runs with `TrainConfig.max_minutes = 0` (the validations would
otherwise eat into the config's time budget; `--bindings 'TrainConfig.max_minutes = 10'`
puts it back). Everything else is the variant's config (its model, schedule and steps).

From the run's metrics.jsonl (docs/architecture.md#metrics) the benchmark reports, for each
validation: the step, the wall time since the process started with start-up included and the
time of every validation so far (its own included) left out (`wall_s + process_s` minus the
`val_s` of the validations up to it: validating every 100 steps is the benchmark's cost, not
the method's; checkpoints count, a user waits for them too), and the PSNR of the whole image
and of the face (inside the FLAME silhouette). Then, per variant and seed, the first such
wall time at which both `--whole` and `--face` are met (resolved to `--val_every` steps: the
quality was reached at or before it), the start-up breakdown (the "startup" record: imports,
the capture (its generation), the rest of the setup, data, guide grids, compilation, first
step, and what is in none of them), whether the targets were met within `--budget` seconds,
and the mean time to quality over seeds.

Writes, in `--out`: `RUN/` per run (`exp/` the experiment, `cache/`, `compilation_cache/`,
`train.log` its output), `time_to_quality.json` (every figure), `time_to_quality.md` (the
tables, also printed) and `time_to_quality.png` (PSNR whole and face against wall time, one
line per variant and seed, the thresholds and the budget drawn). Run folders that exist
already are refused. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

DEFAULT_VARIANT = ["demo=demo.gin"]
# The start-up phases of the "startup" record (flamenerf/train.py), in order, and their
# column names; "other" is the rest of `startup_s` (e.g. waiting for the first batch).
PHASES = {
    "imports_s": "imports",
    "capture_s": "capture",
    "setup_s": "setup",
    "data_s": "data",
    "grids_s": "guide grids",
    "compile_s": "compile",
    "first_step_s": "first step",
}


class Variant(NamedTuple):
    """A configuration to run: its gin files (paths or packaged names) and bindings."""

    name: str
    configs: list[str]
    bindings: list[str]


def parse_variant(items: list[str]) -> Variant:
    """`NAME=GIN[,GIN...]` then gin bindings, each one argument (commas inside are fine).

    Raises:
      ValueError: no `=`, an empty name or no gin file.
    """
    head, *bindings = items
    name, equals, files = head.partition("=")
    configs = [f for f in files.split(",") if f.strip()]
    if not equals or not name.strip() or not configs:
        raise ValueError(f"{head!r}: expected NAME=GIN[,GIN...] (e.g. demo=demo.gin)")
    if "/" in name or name.startswith("."):
        raise ValueError(f"{name!r}: a variant name is a folder name (no '/', no leading '.')")
    return Variant(name.strip(), configs, list(bindings))


def run_bindings(val_every: int, seed: int) -> list[str]:
    """Bindings every run gets after its variant's: validation cadence, no time budget, seed."""
    return [
        f"TrainConfig.val_every = {val_every}",
        "TrainConfig.max_minutes = 0",
        f"TrainConfig.seed = {seed}",
    ]


def run_folder(out: Path, variant: str, seed: int) -> Path:
    return out / f"{variant}-seed{seed}"


def train_command(variant: Variant, seed: int, folder: Path, args: argparse.Namespace) -> list[str]:
    """The train command line of one run (the variant's configs and bindings, then
    `run_bindings`, then `--bindings`, later bindings winning)."""
    bindings = [*variant.bindings, *run_bindings(args.val_every, seed), *args.bindings]
    command = [sys.executable, "-m", "flamenerf.train", "--gin_configs", *variant.configs]
    command += ["--gin_bindings", *bindings, "--base_folder", str(folder / "exp")]
    if args.data_dir:
        command += ["--data_dir", str(args.data_dir)]
    return command


def run_environment(folder: Path) -> dict[str, str]:
    """The environment of a run: this one with empty caches inside the run folder."""
    env = dict(os.environ)
    env["FLAMENERF_CACHE"] = str((folder / "cache").resolve())
    env["FLAMENERF_COMPILATION_CACHE"] = str((folder / "compilation_cache").resolve())
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # FLAMENERF_COMPILATION_CACHE wins anyway
    return env


def timeline(records: list[dict[str, Any]], where: str = "metrics") -> dict[str, Any]:
    """A fresh run's start-up and validations from its metrics records (file order).

    Returns:
      {"startup": the "startup" record's seconds (`PHASES`, `startup_s`, `process_s`) and
      `other_s` (the part of `startup_s` in no phase), "validations": [{"step", "wall_s":
      seconds since the process started with every validation up to this one (its own
      included) left out, "val_s", "psnr", "psnr_face"}, ...], "validation_s": the seconds
      of every validation}. A step validated twice keeps its first record (both are left
      out of the time).

    Raises:
      ValueError: no "startup" record, one without `process_s`, or a validation without
        `val_s` (metrics of an older flamenerf), naming `where`.
    """
    startups = [r for r in records if r.get("split") == "startup"]
    if not startups:
        raise ValueError(f"{where}: no 'startup' record (trained by an older flamenerf?)")
    startup = dict(startups[0])
    if "process_s" not in startup:
        raise ValueError(f"{where}: the 'startup' record has no process_s")
    keys = [*PHASES, "startup_s", "process_s"]
    summary = {k: float(startup[k]) for k in keys if k in startup}
    if "startup_s" in summary:
        phases = sum(summary.get(k, 0.0) for k in PHASES)
        summary["other_s"] = summary["startup_s"] - phases
    offset, spent = float(startup["process_s"]), 0.0
    validations, seen = [], set()
    for record in records:
        if record.get("split") != "val":
            continue
        if "val_s" not in record:
            raise ValueError(f"{where}: step {record.get('step')}: a validation without val_s")
        spent += float(record["val_s"])
        if record["step"] in seen:
            continue
        seen.add(record["step"])
        validations.append(
            {
                "step": int(record["step"]),
                "wall_s": offset + float(record["wall_s"]) - spent,
                "val_s": float(record["val_s"]),
                "psnr": float(record["psnr"]),
                "psnr_face": float(record["psnr_face"]),
            }
        )
    return {"startup": summary, "validations": validations, "validation_s": spent}


def first_crossing(
    validations: list[dict[str, Any]], whole: float, face: float
) -> dict[str, Any] | None:
    """The first validation with PSNR >= `whole` and face PSNR >= `face` (None: never)."""
    for row in validations:
        if row["psnr"] >= whole and row["psnr_face"] >= face:
            return row
    return None


def run(variant: Variant, seed: int, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Runs one variant with one seed in a fresh process; its timeline (`timeline`), first
    crossing, exit code and the process's wall time as this script measured it."""
    folder = run_folder(out, variant.name, seed)
    folder.mkdir(parents=True)
    command = train_command(variant, seed, folder, args)
    log = folder / "train.log"
    start = time.time()
    with log.open("w") as sink:
        sink.write(" ".join(command) + "\n")
        sink.flush()
        done = subprocess.run(
            command,
            env=run_environment(folder),
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=args.timeout,
        )
    result: dict[str, Any] = {
        "folder": str(folder),
        "command": command,
        "returncode": done.returncode,
        "process_wall_s": time.time() - start,
    }
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        result["error"] = f"exit {done.returncode}: {tail[0][:160]} (see {log})"
        return result
    metrics = folder / "exp" / "metrics.jsonl"
    from flamenerf.evaluation import figures

    result.update(timeline(figures.read_records(metrics), str(metrics)))
    result["crossing"] = first_crossing(result["validations"], args.whole, args.face)
    return result


# ------------------------------------------------------------------------------------------
# Report.


def _seconds(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def _done(runs: dict[int, dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [(seed, r) for seed, r in runs.items() if "error" not in r]


def summary_table(results: dict[str, dict[int, dict[str, Any]]], budget: float) -> str:
    """Per variant and seed: start-up, first crossing, last validation; then the mean over
    seeds of the runs that crossed (when there are two or more)."""
    lines = [
        "| variant | seed | start-up s | crossed at step | time to quality s "
        f"| within {budget:.0f} s | last step | PSNR whole | PSNR face | validation s "
        "| process s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in results.items():
        for seed, r in runs.items():
            if "error" in r:
                lines.append(f"| {name} | {seed} | {r['error']} |" + "  |" * 8)
                continue
            cross = r["crossing"]
            last = r["validations"][-1] if r["validations"] else None
            cells = [
                _seconds(r["startup"].get("startup_s")),
                str(cross["step"]) if cross else "never",
                _seconds(cross["wall_s"]) if cross else "n/a",
                ("yes" if cross["wall_s"] <= budget else "no") if cross else "no",
                str(last["step"]) if last else "n/a",
                f"{last['psnr']:.2f}" if last else "n/a",
                f"{last['psnr_face']:.2f}" if last else "n/a",
                _seconds(r["validation_s"]),
                _seconds(r["process_wall_s"]),
            ]
            lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
        crossed = [r["crossing"]["wall_s"] for _, r in _done(runs) if r["crossing"]]
        if len(crossed) > 1:
            mean = statistics.fmean(crossed)
            lines.append(
                f"| {name} | mean of {len(crossed)} crossed |  |  | {mean:.1f} "
                f"| {'yes' if mean <= budget else 'no'} |  |  |  |  |  |"
            )
    return "\n".join(lines)


def startup_table(results: dict[str, dict[int, dict[str, Any]]]) -> str:
    """Per variant and seed: the seconds of each start-up phase, the rest and the total."""
    lines = [
        "| variant | seed | " + " | ".join(PHASES.values()) + " | other | total |",
        "| --- | --- | " + "--- | " * (len(PHASES) + 2),
    ]
    lines[1] = lines[1].rstrip()
    for name, runs in results.items():
        for seed, r in _done(runs):
            s = r["startup"]
            cells = [_seconds(s.get(k)) for k in [*PHASES, "other_s", "startup_s"]]
            lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def validation_table(results: dict[str, dict[int, dict[str, Any]]]) -> str:
    """Every validation of every run: step, wall time (validations left out), PSNRs."""
    lines = [
        "| variant | seed | step | wall s | PSNR whole | PSNR face | validation s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in results.items():
        for seed, r in _done(runs):
            for v in r["validations"]:
                lines.append(
                    f"| {name} | {seed} | {v['step']} | {v['wall_s']:.1f} | {v['psnr']:.2f} "
                    f"| {v['psnr_face']:.2f} | {v['val_s']:.1f} |"
                )
    return "\n".join(lines)


def report(results: dict[str, dict[int, dict[str, Any]]], args: argparse.Namespace) -> str:
    """The markdown: settings, then the summary, start-up and validation tables."""
    return "\n\n".join(
        [
            f"Targets: PSNR whole >= {args.whole:g} dB and face >= {args.face:g} dB, within "
            f"{args.budget:g} s; validation every {args.val_every} steps (its time left out); "
            f"seeds {args.seeds}; bindings for every run {args.bindings}; capture "
            f"{args.data_dir or 'the synthetic demo capture, generated by each run'}.",
            summary_table(results, args.budget),
            "Start-up (seconds from the process's start to its first step done):\n\n"
            + startup_table(results),
            "Validations (wall s: since the process started, validations left out):\n\n"
            + validation_table(results),
        ]
    )


def plot(
    results: dict[str, dict[int, dict[str, Any]]], args: argparse.Namespace, path: Path
) -> Path:
    """PSNR whole and face against wall time: one line per variant and seed, the thresholds
    (dashed) and the budget (dotted)."""
    from matplotlib.figure import Figure  # not pyplot: no backend or display involved

    figure = Figure(figsize=(11, 4), dpi=100, layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    panels = (("psnr", "whole image", args.whole), ("psnr_face", "face", args.face))
    colours = [f"C{i}" for i in range(10)]
    for axis, (key, title, threshold) in zip(axes, panels, strict=True):
        for index, (name, runs) in enumerate(results.items()):
            for number, (seed, r) in enumerate(_done(runs)):
                points = r["validations"]
                if not points:
                    continue
                axis.plot(
                    [p["wall_s"] for p in points],
                    [p[key] for p in points],
                    marker="o",
                    markersize=3,
                    color=colours[index % len(colours)],
                    linestyle=("-", "--", ":", "-.")[number % 4],
                    label=f"{name} seed {seed}",
                )
        axis.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
        axis.axvline(args.budget, color="grey", linestyle=":", linewidth=0.8)
        axis.set_title(f"PSNR, {title} (target {threshold:g} dB)")
        axis.set_xlabel("wall time since the process started, validations left out (s)")
        axis.set_ylabel("PSNR (dB)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.savefig(path)
    return path


# ------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variant",
        dest="variants",
        nargs="+",
        action="append",
        metavar="ITEM",
        help="NAME=GIN[,GIN...] then its gin bindings (each one argument); repeat for more "
        f"variants (default: {' '.join(DEFAULT_VARIANT)})",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default: 0 1)"
    )
    parser.add_argument(
        "--val_every", type=int, default=100, help="steps between validations (default: 100)"
    )
    parser.add_argument(
        "--whole", type=float, default=30.0, help="PSNR target, whole image (default: 30)"
    )
    parser.add_argument("--face", type=float, default=28.0, help="PSNR target, face (default: 28)")
    parser.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help="wall-time target in seconds, for the table and the plot (default: 300)",
    )
    parser.add_argument(
        "--bindings",
        nargs="*",
        default=[],
        help="extra gin bindings for every run, after the others (default: none)",
    )
    parser.add_argument(
        "--data_dir",
        default=None,
        help="capture to train on, its making then not timed (default: the synthetic demo "
        "capture, generated by each run in its empty cache)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per run (default: no limit)"
    )
    parser.add_argument(
        "--out",
        default="bench_out/time_to_quality",
        help="run folders and results (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        args.variants = [parse_variant(items) for items in (args.variants or [DEFAULT_VARIANT])]
    except ValueError as error:
        parser.error(f"--variant {error}")
    names = [v.name for v in args.variants]
    if len(set(names)) != len(names):
        parser.error(f"--variant: names must differ, got {names}")
    if args.val_every < 1:
        parser.error(f"--val_every must be >= 1, got {args.val_every}")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must differ, got {args.seeds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    existing = [
        str(run_folder(out, v.name, s))
        for v in args.variants
        for s in args.seeds
        if run_folder(out, v.name, s).exists()
    ]
    if existing:
        print(f"error: run folders exist already: {', '.join(existing)}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[int, dict[str, Any]]] = {v.name: {} for v in args.variants}
    start = time.time()
    for seed in args.seeds:  # every variant for one seed, then the next seed
        for variant in args.variants:
            try:
                results[variant.name][seed] = run(variant, seed, out, args)
            except Exception as error:  # a failed run keeps its row
                results[variant.name][seed] = {"error": f"failed: {str(error)[:160]}"}
            row = results[variant.name][seed]
            state = row.get("error") or (
                f"crossed at {row['crossing']['wall_s']:.0f} s"
                if row["crossing"]
                else "never crossed"
            )
            print(
                f"{variant.name} seed {seed}: {state} ({time.time() - start:.0f} s so far)",
                file=sys.stderr,
            )
    settings = {
        "variants": [v._asdict() for v in args.variants],
        **{k: getattr(args, k) for k in ("seeds", "val_every", "whole", "face", "budget")},
        **{k: getattr(args, k) for k in ("bindings", "data_dir")},
    }
    (out / "time_to_quality.json").write_text(
        json.dumps({"settings": settings, "runs": results}, indent=1) + "\n"
    )
    text = report(results, args)
    (out / "time_to_quality.md").write_text(text + "\n")
    plot(results, args, out / "time_to_quality.png")
    print(text)
    failed = any("error" in r for runs in results.values() for r in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
