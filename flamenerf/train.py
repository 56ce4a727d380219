# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.train --gin_configs gin/demo.gin --base_folder EXP [--scale S] [...]`.

Trains FLAME-in-NeRF data-parallel over every device (and every host, with
`--coordinator_address`). Without `--data_dir` (or `DataConfig.capture`) it trains on the
default synthetic capture, generated once into the cache folder. Running the same command
again resumes from the latest checkpoint. The experiment folder (a local path or
`gs://BUCKET/PATH`) holds `config.gin`, `checkpoints/` (Orbax), `metrics.jsonl` and
`tensorboard/`; the capture may be a URL too (`flamenerf.io.paths`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import signal
import sys
import threading
import time
from typing import Any

from flamenerf import cli_args, compilation_cache, errors, help_format
from flamenerf.datasets import capture as capture_lib
from flamenerf.io import paths
from flamenerf.training import experiment, progress

# Summaries are only written by process 0; the others run the same loop silently.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flamenerf.train",
        formatter_class=help_format.HelpFormatter,
        description="Train a FLAME-in-NeRF model on a capture (default: the synthetic demo).",
    )
    experiment.add_gin_flags(parser)
    cli_args.add_base_folder(parser, created=True)
    parser.add_argument(
        "--data_dir",
        default=None,
        help="capture folder, a local path or a URL (gs://, s3://, az://) (default: "
        "DataConfig.capture, else the synthetic demo capture, generated once into "
        "$FLAMENERF_CACHE)",
    )
    parser.add_argument(
        "--flame_model",
        default=None,
        help="FLAME model file (.pkl/.npz) overriding the capture's scene.json flame.model",
    )
    parser.add_argument(
        "--scale",
        type=int,
        choices=capture_lib.IMAGE_SCALES,
        default=None,
        metavar="S",
        help="image scale 1, 2, 4 or 8 (binds DataConfig.scale after the gin bindings; saved "
        "in config.gin; default: the gin configs')",
    )
    experiment.add_distributed_flags(parser)
    return parser.parse_args(argv)


def scale_bindings(gin_bindings: list[str], scale: int | None) -> list[str]:
    """The gin bindings with `DataConfig.scale = S` last when `--scale S` is given."""
    return [*gin_bindings, f"DataConfig.scale = {int(scale)}"] if scale else list(gin_bindings)


class _Stop:
    """Turns SIGTERM into a flag checked between steps (Ctrl-C raises KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        del signum, frame
        self.requested = True


class _Background:
    """Runs `fn()` on a daemon thread; `wait` joins it and returns its exception, if any."""

    def __init__(self, fn: Any) -> None:
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Any) -> None:
        try:
            fn()
        except Exception as error:  # reported by `wait`; the first call then compiles
            self._error = error

    def wait(self) -> Exception | None:
        self._thread.join()
        return self._error


def _truncate_metrics(path: paths.AnyPath, step: int) -> None:
    """Drops records past `step` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
    if len(kept) != len(lines):
        path.write_text("".join(ln + "\n" for ln in kept))


def _save(exp: experiment.Experiment, state: Any, step: int) -> bool:
    """Checkpoints `state`; a non-finite one is reported and not written (returns False)."""
    try:
        exp.save(state, step)
    except experiment.NonFiniteStateError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    clock = progress.StartupClock(progress.process_started())  # the "startup" record
    args = parse_args(argv)
    compilation_cache.enable()  # compiled programs persist across runs (docstring there)
    try:
        exp = experiment.Experiment.create(
            base_folder=args.base_folder,
            gin_configs=args.gin_configs,
            gin_bindings=scale_bindings(args.gin_bindings, args.scale),
            data_dir=args.data_dir,
            flame_model=args.flame_model,
            distributed=experiment.distributed_settings(args),
        )
    except experiment.UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    clock.mark("setup_s")
    clock.split("setup_s", "capture_s", exp.capture_seconds)
    return train(exp, clock)


def train(exp: experiment.Experiment, startup: progress.StartupClock | None = None) -> int:
    """The training loop; returns the process exit code.

    `startup` times the start-up phases up to the first step for the "startup" record of
    metrics.jsonl (docs/architecture.md#metrics); None: timed from this call.
    """
    import jax
    from tqdm.auto import tqdm

    clock = startup or progress.StartupClock()
    train_config = exp.train_config
    state, start_step = exp.restore_or_init_state()
    chief = jax.process_index() == 0
    if chief:
        _truncate_metrics(exp.metrics_path, start_step)
    if chief and start_step:
        print(f"{exp.base_folder}: resuming from step {start_step}")
    if start_step >= train_config.max_steps:
        if chief:
            print(f"{exp.base_folder}: already trained to step {start_step}; nothing to do")
        return errors.EXIT_OK

    batches = exp.ray_batches(start_step)
    train_step = exp.train_step()
    key = jax.random.PRNGKey(train_config.seed)
    clock.mark("data_s")
    ahead, first_batch = None, None
    if train_config.compile_ahead:  # on another thread, while the grids are built
        first_batch = exp.shard(next(batches))
        lower = functools.partial(train_step.lower, state, first_batch, key, exp.extras_spec())
        ahead = _Background(lambda: lower().compile())
    extras = exp.extras(exp.training_frames())  # guide grids of the frames it reads only
    clock.mark("grids_s")
    writer = exp.summary_writer() if chief else None
    stop = _Stop()
    bar = tqdm(
        total=train_config.max_steps,
        initial=start_step,
        disable=not chief,
        desc="training",
        dynamic_ncols=True,
    )
    # The bar, rays/s and the ETA follow completed steps, not dispatched ones.
    completed = progress.CompletedSteps(start_step, bar)
    started = time.time()
    wall_budget = train_config.max_minutes * 60 if train_config.max_minutes > 0 else math.inf
    step = start_step
    last_stats: dict[str, float] = {}
    val: dict[str, float] = {}
    validated = -1  # the step of the last validation
    code = 0
    try:
        while step < train_config.max_steps:
            first = step == start_step
            if first and first_batch is not None:
                batch, first_batch = first_batch, None
            else:
                batch = exp.shard(next(batches))
            if first:
                clock.restart()
                if ahead is not None and (error := ahead.wait()) is not None and chief:
                    print(
                        f"warning: compiling the train step ahead failed ({error!r}); "
                        "compiling it now",
                        file=sys.stderr,
                    )
            state, stats = train_step(state, batch, key, extras)
            step += 1
            if first:  # the call compiles (or reads the compilation cache), then runs
                clock.mark("compile_s")
                jax.block_until_ready(stats)
                clock.mark("first_step_s")
                if chief:
                    exp.log(start_step, "startup", clock.record(exp.started))
            completed.dispatched(step, stats)
            log_now = step % train_config.log_every == 0 or step == train_config.max_steps
            out_of_time = time.time() - started > wall_budget
            if log_now or out_of_time or stop.requested:
                completed.wait()
                stats = {k: float(v) for k, v in jax.device_get(stats).items()}
                if not all(math.isfinite(v) for v in stats.values()):
                    bad = {k: v for k, v in stats.items() if not math.isfinite(v)}
                    print(
                        f"\nerror: non-finite training values at step {step}: {bad}; "
                        f"stopping, the last good checkpoint is kept in "
                        f"{exp.base_folder / 'checkpoints'}",
                        file=sys.stderr,
                    )
                    code = errors.EXIT_NONFINITE
                    break
                stats["rays_per_s"] = completed.rays_per_second(train_config.batch_size)
                last_stats = stats
                if chief:
                    exp.log(step, "train", stats, writer)
                    bar.set_postfix(
                        loss=f"{stats['loss']:.4f}",
                        psnr=f"{stats['psnr']:.2f}",
                        rays_s=f"{stats['rays_per_s']:.0f}",
                    )
            if train_config.val_every and step % train_config.val_every == 0:
                with completed.paused():
                    val, validated = exp.validate(state, step, writer), step
            checkpoint_now = step % train_config.checkpoint_every == 0
            if checkpoint_now or out_of_time or stop.requested:
                with completed.paused():
                    saved = _save(exp, state, step)
                if not saved:
                    code = errors.EXIT_NONFINITE
                    break
            if out_of_time or stop.requested:
                reason = "time budget reached" if out_of_time else "stopped by SIGTERM"
                if chief:
                    print(f"\n{reason} at step {step}; checkpoint saved")
                break
        completed.wait()
    except KeyboardInterrupt:
        saved = code == 0 and _save(exp, state, step)
        if chief and saved:
            print(f"\ninterrupted at step {step}; checkpoint saved")
        code = 130 if saved or code != 0 else errors.EXIT_NONFINITE  # not finite: not saved
    finally:
        bar.close()
        batches.close()  # join the prefetch thread before validation and exit
    if code == 0 and step == train_config.max_steps and not _save(exp, state, step):
        code = errors.EXIT_NONFINITE
    if code == 0:
        if validated != step:  # not validated at this step already
            val = exp.validate(state, step, writer) if train_config.val_frames else {}
        if chief:
            minutes = (time.time() - started) / 60
            parts = [f"step {step}", f"{minutes:.1f} min"]
            if last_stats:
                parts.append(f"train psnr {last_stats['psnr']:.2f}")
            parts += [f"val {k} {v:.2f}" for k, v in val.items()]
            print(f"{exp.base_folder}: " + ", ".join(parts))
    exp.close()
    if writer is not None:
        writer.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
