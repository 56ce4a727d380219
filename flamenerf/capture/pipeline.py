# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Phone video -> checked capture in one command: frames, cameras, fit or import-flame, check.

    python -m flamenerf.capture all VIDEO --out CAPTURE --flame_model FLAME.pkl [options]
    python -m flamenerf.capture all VIDEO --out CAPTURE --from TRACKER PATH [options]

Runs the steps in order, each exactly as its own subcommand runs with the same options:

    frames        VIDEO -> rgb/, dataset.json, metadata.json
    cameras       structure from motion (pycolmap), or --colmap_model DIR
    fit           FLAME fitted to detected 2D landmarks (needs a FLAME model), or, with
    import-flame  --from TRACKER PATH, the FLAME parameters of a face tracker
    check         the validator, check.png and check.json

then prints the train command to run next. Each option below is a step's own (its group names
the step; `python -m flamenerf.capture STEP --help` documents it) and is passed to that step
only; an option several steps have is passed to each of them. `check --out` is `--check_out`
here. Before a step runs its command line is printed; the first step that fails stops the
pipeline with that step's error and exit code.

A FLAME model is needed the first time: --flame_model (FLAME 2020's generic_model.pkl, FLAME
2023's flame2023.pkl, or the procedural head that `python -m flamenerf head --out head.npz`
writes); later runs may use the one scene.json records.

Resuming. CAPTURE/pipeline.json records, for each step that finished, its options, the
SHA-256 of every file or folder its options name (the video, the COLMAP model, the FLAME
model, a tracker's output, ...) and of every file it wrote in CAPTURE. Running the command
again skips a step, and says so, when its options and those inputs are unchanged, every step
before it was skipped or wrote exactly what it wrote last time, and the files it wrote are as
the pipeline left them. Otherwise the step runs again (reusing its own caches: the COLMAP
model in colmap/, the landmarks in landmarks/). So an interrupted run continues with the step
it stopped in, a changed option reruns that step, and a deleted or edited output reruns the
step that wrote it; the steps after a rerun step run again unless it wrote the same files.
Delete pipeline.json to run every step again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io as text_io
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from PIL import Image
from tqdm.auto import tqdm

import flamenerf
from flamenerf.capture import cameras, check, fit, frames, io
from flamenerf.capture.io import StepError
from flamenerf.capture.trackers import command as import_flame
from flamenerf.capture.trackers import registry
from flamenerf.errors import EXIT_OK, EXIT_USER_ERROR, UserError

PROG = "python -m flamenerf.capture"
RECORD = "pipeline.json"  # in CAPTURE: what each finished step did (see the docstring)
RECORD_FORMAT = 1
# The steps `all` can run, by their subcommand names (`__main__.STEPS`); `run` picks fit or
# import-flame.
MODULES: dict[str, ModuleType] = {
    "frames": frames,
    "cameras": cameras,
    "fit": fit,
    "import-flame": import_flame,
    "check": check,
}
# The argument of each step that names the capture folder: `all`'s --out (frames' own).
CAPTURE_ARGUMENT = {step: "out" if step == "frames" else "capture" for step in MODULES}
# import-flame's --from TRACKER and PATH: `all` takes both in its own --from TRACKER PATH.
TRACKER_ARGUMENTS = ("tracker", "path")
RENAMED = {("check", "--out"): "--check_out"}  # step options whose name `all` uses otherwise
OUTPUT_ARGUMENTS = {("check", "out")}  # options naming a file the step writes (not an input)
BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt} steps [{elapsed}]"  # the outer bar (no rate: steps differ)
TRAIN_GIN = "gin/demo.gin"
TRAIN_MAX_SIDE = 512  # the train command picks the smallest image scale at most this large


# --------------------------------------------------------------------------------------------
# The steps' options, declared once by each step's own `add_arguments`.


class _Declarations(argparse.ArgumentParser):
    """A parser that remembers its `add_argument` calls: (names, keyword arguments, action)."""

    def __init__(self, step: str) -> None:
        super().__init__(prog=f"{PROG} {step}", add_help=False)
        self.calls: list[tuple[tuple[str, ...], dict[str, Any], argparse.Action]] = []

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*names, **kwargs)
        self.calls.append((names, kwargs, action))
        return action


def declarations() -> dict[str, list[tuple[tuple[str, ...], dict[str, Any], argparse.Action]]]:
    """{step: its add_argument calls}, from each step's own `add_arguments`."""
    declared = {}
    for step, module in MODULES.items():
        parser = _Declarations(step)
        module.add_arguments(parser)
        declared[step] = parser.calls
    return declared


def supplied(step: str) -> set[str]:
    """The step's arguments that `all` fills in itself (the capture folder, the tracker)."""
    own = {CAPTURE_ARGUMENT[step]} if step != "frames" else set()  # frames' --out is all's
    return own | (set(TRACKER_ARGUMENTS) if step == "import-flame" else set())


class Flag(NamedTuple):
    """An option of `all`: a step's own, as the first step declaring it declares it."""

    names: tuple[str, ...]  # option strings in `all` (a positional's name)
    kwargs: dict[str, Any]  # the step's add_argument keyword arguments
    action: argparse.Action  # the step's action (its dest, default, nargs)
    steps: list[str]  # the steps that take it (an option several steps declare is shared)


class Options:
    """How `all`'s options map to the steps' arguments.

    Attributes:
      flags: {dest in `all`: Flag}, in the order the steps declare them.
      route: {(step, dest in the step): dest in `all`}.
      declared: the steps' declarations (see `declarations`).
    """

    def __init__(self) -> None:
        self.declared = declarations()
        self.flags: dict[str, Flag] = {}
        self.route: dict[tuple[str, str], str] = {}
        by_name: dict[str, str] = {}
        for step, calls in self.declared.items():
            for names, kwargs, action in calls:
                if action.dest in supplied(step):
                    continue
                names = tuple(RENAMED.get((step, name), name) for name in names)
                if names[0] in by_name:  # the same option in an earlier step: shared
                    dest = by_name[names[0]]
                    self.flags[dest].steps.append(step)
                else:
                    dest = action.dest
                    if names != tuple(action.option_strings or names):  # renamed
                        dest = names[0].lstrip("-").replace("-", "_")
                        kwargs = {k: v for k, v in kwargs.items() if k != "dest"}
                    self.flags[dest] = Flag(names, kwargs, action, [step])
                    by_name.update((name, dest) for name in names)
                self.route[(step, action.dest)] = dest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options = Options()
    groups: dict[str, Any] = {}
    for dest, (names, kwargs, _, steps) in options.flags.items():
        if not names[0].startswith("-") or kwargs.get("required"):
            target = parser  # VIDEO and --out CAPTURE (frames')
        elif len(steps) > 1:
            target = groups.setdefault(
                "shared", parser.add_argument_group("options of several steps (passed to each)")
            )
        else:
            title = f"{steps[0]} options"
            if steps[0] == "fit":
                title += " (without --from)"
            if steps[0] == "import-flame":
                title += " (with --from)"
            target = groups.setdefault(steps[0], parser.add_argument_group(title))
        extra = {"dest": dest} if names[0].startswith("-") else {}
        if len(steps) > 1:
            extra["help"] = f"{kwargs.get('help', '')} [{', '.join(steps)}]"
        target.add_argument(*names, **{**kwargs, **extra})
    parser.add_argument(
        "--from",
        dest="from_tracker",
        nargs=2,
        metavar=("TRACKER", "PATH"),
        default=None,
        help="import the FLAME parameters from a face tracker's output instead of fitting them "
        f"(import-flame instead of fit): TRACKER is one of {', '.join(registry.TRACKERS)}, "
        "PATH its output (see `import-flame --help`)",
    )


# --------------------------------------------------------------------------------------------
# The steps' command lines.


def pipeline_steps(args: argparse.Namespace) -> list[str]:
    """The steps `all` runs for these arguments, in order."""
    flame_step = "fit" if args.from_tracker is None else "import-flame"
    return ["frames", "cameras", flame_step, "check"]


def step_values(step: str, args: argparse.Namespace, options: Options) -> list[tuple[Any, Any]]:
    """(action, value) of every argument the step declares, in its order, for `all`'s args."""
    given = {CAPTURE_ARGUMENT[step]: args.out}
    if args.from_tracker is not None:
        given.update(zip(TRACKER_ARGUMENTS, args.from_tracker, strict=True))
    values = []
    for _, _, action in options.declared[step]:
        if action.dest in supplied(step):
            value = given[action.dest]
        else:
            value = getattr(args, options.route[(step, action.dest)])
        values.append((action, value))
    return values


def step_argv(values: Sequence[tuple[Any, Any]]) -> list[str]:
    """The step's command-line arguments: positionals, required options, and every option
    whose value is not the step's default."""
    argv = []
    for action, value in values:
        words = [str(v) for v in (value if isinstance(value, list | tuple) else [value])]
        if not action.option_strings:
            argv += words
        elif action.nargs == 0:  # a switch
            if value != action.default:
                argv.append(action.option_strings[0])
        elif action.required or (value is not None and value != action.default):
            argv += [action.option_strings[0], *words]
    return argv


def check_options(args: argparse.Namespace, steps: Sequence[str], options: Options) -> None:
    """Refuses options of a step that does not run, and a fit or import without a FLAME model."""
    if args.from_tracker is not None and args.from_tracker[0] not in registry.TRACKERS:
        raise StepError(
            f"--from {args.from_tracker[0]}: expected a tracker: {', '.join(registry.TRACKERS)}"
        )
    for dest, flag in options.flags.items():
        if not set(flag.steps) & set(steps) and getattr(args, dest) != flag.action.default:
            when = "with --from" if args.from_tracker is not None else "without --from"
            raise StepError(
                f"{flag.names[0]}: an option of {' and '.join(flag.steps)}, which does not run "
                f"{when}"
            )
    if args.flame_model is None:
        scene_path = Path(args.out) / "scene.json"
        scene = io.read_json(scene_path) if scene_path.is_file() else {}
        section = scene.get("flame") if isinstance(scene, dict) else None
        if not (isinstance(section, dict) and section.get("model")):
            step = "import-flame" if args.from_tracker is not None else "fit"
            raise StepError(
                f"--flame_model: {step} needs a FLAME model and {scene_path} names none yet; "
                "pass --flame_model PATH (FLAME 2020's generic_model.pkl, FLAME 2023's "
                "flame2023.pkl, or a procedural head: python -m flamenerf head --out head.npz)"
            )


def run_step(step: str, argv: Sequence[str]) -> int:
    """Parses `argv` with the step's own parser and runs it, as its subcommand would."""
    module = MODULES[step]
    parser = argparse.ArgumentParser(prog=f"{PROG} {step}")
    module.add_arguments(parser)
    return module.run(parser.parse_args(list(argv)))


# --------------------------------------------------------------------------------------------
# What a step read and wrote.


class Digests:
    """SHA-256 of files, remembered within one run by (inode, size, modification time)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, tuple[int, int, int]], str] = {}

    @staticmethod
    def stat_key(stat: os.stat_result) -> tuple[int, int, int]:
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def file(self, path: Path, stat: os.stat_result | None = None) -> str:
        """The hex SHA-256 of a file's bytes."""
        stat = path.stat() if stat is None else stat
        key = (str(path.absolute()), self.stat_key(stat))
        if key not in self._known:
            self._known[key] = io.file_sha256(path)
        return self._known[key]

    def path(self, path: Path) -> str:
        """The digest of a file, or of a folder: of every file's relative path and digest."""
        if path.is_file():
            return self.file(path)
        digest = hashlib.sha256()
        for name, stat in sorted(files(path).items()):
            digest.update(f"{name}\0{self.file(path / name, stat)}\n".encode())
        return digest.hexdigest()


def files(root: Path, exclude: str | None = None) -> dict[str, os.stat_result]:
    """{path relative to root (POSIX): stat} of every file under `root` but `exclude`."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative != exclude:
                found[relative] = path.stat()
    return found


def step_key(step: str, values: Sequence[tuple[Any, Any]], digests: Digests) -> dict[str, Any]:
    """What a step's result depends on besides the capture: its options (the capture folder
    as "CAPTURE", existing paths made absolute), the digest of every file or folder an option
    names (outputs aside) and the flamenerf version."""
    options, inputs = {}, {}
    for action, value in values:
        if action.dest == CAPTURE_ARGUMENT[step]:
            options[action.dest] = "CAPTURE"
            continue
        text = None if value is None else str(value)
        is_input = (step, action.dest) not in OUTPUT_ARGUMENTS
        if text and is_input and Path(text).exists():
            inputs[action.dest] = digests.path(Path(text))
            text = os.path.abspath(text)
        options[action.dest] = text
    return {"step": step, "version": flamenerf.__version__, "options": options, "inputs": inputs}


def written(
    capture: Path,
    before: Mapping[str, os.stat_result],
    previous: Mapping[str, str | None],
    digests: Digests,
) -> dict[str, str | None]:
    """{path: digest, or None when deleted} of the files a step wrote or removed.

    A file counts as written when it is new or its inode, size or time changed since `before`
    (rewritten with the same bytes included). Files of the step's `previous` record that it did
    not touch this time (e.g. cached landmarks) stay its own, as they are now.
    """
    after = files(capture, RECORD)
    changed: dict[str, str | None] = {
        name: digests.file(capture / name, stat)
        for name, stat in after.items()
        if name not in before or Digests.stat_key(before[name]) != Digests.stat_key(stat)
    }
    changed.update((name, None) for name in before if name not in after)
    kept = {
        name: digests.file(capture / name, after[name]) if name in after else None
        for name in previous
        if name not in changed
    }
    return dict(sorted({**kept, **changed}.items()))


def intact(
    capture: Path, outputs: Mapping[str, str | None], later: Sequence[Mapping[str, Any]], digests
) -> bool:
    """Whether the files a step wrote are as the pipeline left them.

    `later` are the step's record and those after it: a file's expected digest is the last
    one recorded for it (a later step may rewrite a file, as cameras does dataset.json).
    """
    for name in outputs:
        expected = next(r["outputs"][name] for r in reversed(later) if name in r["outputs"])
        path = capture / name
        if expected is None:
            if path.exists():
                return False
        elif not path.is_file() or digests.file(path) != expected:
            return False
    return True


def read_record(capture: Path) -> list[dict[str, Any]]:
    """The steps recorded in CAPTURE/pipeline.json; [] when there is none or it is unusable."""
    path = capture / RECORD
    if not path.is_file():
        return []
    try:
        record = io.read_json(path)
        steps = record["steps"] if record.get("format") == RECORD_FORMAT else []
        if all(isinstance(s["outputs"], dict) and "key" in s and "step" in s for s in steps):
            return steps
    except (StepError, KeyError, TypeError, AttributeError):
        pass
    print(f"{path}: not a record this version reads; running every step")
    return []


def write_record(capture: Path, steps: Sequence[Mapping[str, Any]]) -> None:
    io.write_json(capture / RECORD, {"format": RECORD_FORMAT, "steps": list(steps)})


# --------------------------------------------------------------------------------------------
# Output.


class _LinesAboveBars(text_io.TextIOBase):
    """stdout while the progress bars are shown: each whole line is written with the bars
    cleared and redrawn below it (the steps print as they would alone)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        if lines:
            with tqdm.external_write_mode(file=sys.stderr):
                self.stream.write("".join(line + "\n" for line in lines))
                self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close_line(self) -> None:
        if self.pending:
            self.stream.write(self.pending)
            self.pending = ""
        self.stream.flush()


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Any]:
    """An outer progress bar over the steps, with stdout printed above the bars."""
    lines = _LinesAboveBars(sys.stdout)
    with contextlib.redirect_stdout(lines), tqdm(total=total, desc="all", bar_format=BAR) as bar:
        try:
            yield bar
        finally:
            lines.close_line()


def train_scale(size: tuple[int, int], scales: Sequence[int]) -> int:
    """The image scale to train at: the smallest of `scales` (those written, e.g. 1, 2, 4) at
    which the longest side of `size` (W, H) is at most TRAIN_MAX_SIDE, else the largest."""
    fitting = [s for s in sorted(scales) if max(size) / s <= TRAIN_MAX_SIDE]
    return fitting[0] if fitting else max(scales)


def train_command(args: argparse.Namespace) -> list[str]:
    """The command that trains the demo configuration on the capture `all` wrote."""
    capture = Path(args.out)
    train_ids, _ = io.read_split(capture)
    with Image.open(capture / "rgb" / "1x" / f"{train_ids[0]}.png") as image:
        size = image.size
    written_scales = [s for s in frames.SCALES if (capture / "rgb" / f"{s}x").is_dir()]
    command = ["python", "-m", "flamenerf.train", "--gin_configs", TRAIN_GIN]
    command += ["--base_folder", f"exp/{capture.resolve().name}", "--data_dir", str(capture)]
    if args.flame_model is not None:
        command += ["--flame_model", str(args.flame_model)]
    scale = train_scale(size, written_scales)
    if scale > 1:
        command += ["--scale", str(scale)]
    return command


# --------------------------------------------------------------------------------------------
# The command.


def run(args: argparse.Namespace) -> int:
    options = Options()
    steps = pipeline_steps(args)
    check_options(args, steps, options)
    capture = Path(args.out)
    previous = read_record(capture)
    stored = list(previous)  # what pipeline.json holds
    done: list[dict[str, Any]] = []  # this run's record
    digests = Digests()
    same_so_far = True  # every step so far skipped, or wrote what it wrote last time
    failure: tuple[int, str | None] | None = None
    with _progress(len(steps)) as bar:
        for n, step in enumerate(steps):
            bar.set_description(f"all: {step}")
            counter = f"[{n + 1}/{len(steps)}] {step}"
            values = step_values(step, args, options)
            argv = step_argv(values)
            key = step_key(step, values, digests)
            last = previous[n] if n < len(previous) and previous[n]["step"] == step else None
            if (
                last is not None
                and same_so_far
                and last["key"] == key
                and intact(capture, last["outputs"], previous[n:], digests)
            ):
                print(f"{counter}: skipped (done with these options and inputs; its files are "
                      "unchanged)")  # fmt: skip
                done.append(last)
                bar.update(1)
                continue
            # This step's record and later ones go first: an interrupted step is never done.
            if stored != done:
                write_record(capture, done)
                stored = list(done)
            print(f"{counter}: {shlex.join([*PROG.split(), step, *argv])}")
            before = files(capture, RECORD) if capture.is_dir() else {}
            started = time.time()
            try:
                code = run_step(step, argv)
            except UserError as error:
                failure = (EXIT_USER_ERROR, f"error: {error}")
                break
            if code != EXIT_OK:
                failure = (code, None)
                break
            outputs = written(capture, before, last["outputs"] if last else {}, digests)
            same_so_far = same_so_far and last is not None and last["outputs"] == outputs
            done.append({"step": step, "key": key, "command": argv, "outputs": outputs})
            write_record(capture, done)
            stored = list(done)
            print(f"{counter}: done in {time.time() - started:.1f} s")
            bar.update(1)
        else:
            bar.set_description("all: done")
    if failure is not None:
        code, message = failure
        if message is not None:
            print(message, file=sys.stderr)
        print(f"stopped at {step} (exit code {code}); rerun the same command after fixing it: "
              "the steps before it are skipped")  # fmt: skip
        return code
    if stored != done:
        write_record(capture, done)
    train, val = io.read_split(capture)
    print(f"{capture}: capture ready ({len(train)} training, {len(val)} validation frames; "
          f"check.png shows the fit). Train on it with:")  # fmt: skip
    print("  " + shlex.join(train_command(args)))
    return EXIT_OK
