# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Mutation fuzzing of capture inputs: `python benchmarks/fuzz_inputs.py [--jobs 2]`.

Every mutation of `tests/fuzz_util.py` (each breaks one thing in a fresh copy of an
independently written capture) runs through `flamenerf.datasets.validate` twice: in-process
(`validate.main`) and as the real CLI subprocess; a sample (one per category, plus the
defects of issue "Real inputs") also runs through `python -m flamenerf.train`. Each run must
exit 1 or 2, print a line naming the mutated file and the field, print no traceback, and
leave the capture (and every symlink target) byte-identical; training must also stop before
writing its experiment folder. The benign changes of `BENIGN` must validate (exit 0).

Prints "N mutations tried, P passed, K failed" and every failure; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz_util

# Training also runs on these (besides one mutation per category).
TRAIN_ALWAYS = ("image/16-bit RGB", "image/truncated half", "flame/expression string item")


def train_sample(mutations: list[fuzz_util.Mutation]) -> list[fuzz_util.Mutation]:
    """One scale-1 mutation per category (the middle one), plus TRAIN_ALWAYS."""
    by_category: dict[str, list[fuzz_util.Mutation]] = {}
    for m in mutations:
        if not m.args:
            by_category.setdefault(m.category, []).append(m)
    sample = [group[len(group) // 2] for group in by_category.values()]
    sample += [m for m in mutations if m.name in TRAIN_ALWAYS and m not in sample]
    return sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="subprocesses run at once")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument(
        "--no_train", action="store_true", help="skip the runs through flamenerf.train"
    )
    args = parser.parse_args(argv)
    started = time.time()
    scratch = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(args.workdir or scratch.name)
    pristine = fuzz_util.write_capture(work / "pristine" / "cap")
    code, _, err = fuzz_util.run_in_process(pristine)
    if code != 0:
        print(f"the unmutated capture does not validate:\n{err}", file=sys.stderr)
        return 1

    cases = [(m, False) for m in fuzz_util.MUTATIONS] + [(m, True) for m in fuzz_util.BENIGN]
    failures: dict[str, list[str]] = {}

    def record(mutation: fuzz_util.Mutation, how: str, problems: list[str], err: str) -> None:
        if problems:
            first = err.strip().splitlines()[:3]
            failures.setdefault(mutation.name, []).append(
                f"{how}: {'; '.join(problems)}" + "".join(f"\n      | {ln}" for ln in first)
            )

    # In-process (validate.main swaps sys.stdout, so one at a time).
    for n, (m, benign) in enumerate(cases):
        problems, err = fuzz_util.check_mutation(
            m, pristine, work / "inproc" / str(n), fuzz_util.run_in_process, benign
        )
        record(m, "in-process", problems, err)
    print(f"in-process: {len(cases)} runs in {time.time() - started:.0f} s", flush=True)

    # The real CLI, and training on a sample, as subprocesses.
    jobs: list[tuple[fuzz_util.Mutation, bool, str, Path, fuzz_util.Runner]] = []
    for n, (m, benign) in enumerate(cases):
        jobs.append((m, benign, "CLI", work / "cli" / str(n), fuzz_util.run_cli))
    sample = [] if args.no_train else train_sample(fuzz_util.MUTATIONS)
    for n, m in enumerate(sample):
        base = work / "train" / f"exp{n}"
        runner = lambda capture, _args, base=base: fuzz_util.run_train(capture, base)
        jobs.append((m, False, "train", work / "train" / str(n), runner))

    def run(job):
        m, benign, how, folder, runner = job
        problems, err = fuzz_util.check_mutation(m, pristine, folder, runner, benign)
        if how == "train":
            base = folder.parent / f"exp{folder.name}"
            if base.exists():
                problems.append(f"training wrote its experiment folder {base}")
        return m, how, problems, err

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for done, (m, how, problems, err) in enumerate(pool.map(run, jobs), 1):
            record(m, how, problems, err)
            if done % 50 == 0:
                print(f"subprocesses: {done}/{len(jobs)}", flush=True)

    tried, failed = len(cases), len(failures)
    print(
        f"\n{tried} mutations tried, {tried - failed} passed, {failed} failed "
        f"({len(fuzz_util.MUTATIONS)} breaking + {len(fuzz_util.BENIGN)} allowed changes; "
        f"each in-process and through the CLI, {len(sample)} also through training; "
        f"{time.time() - started:.0f} s)"
    )
    for name, lines in failures.items():
        print(f"FAILED {name}")
        for line in lines:
            print(f"    {line}")
    if scratch is not None:
        scratch.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
