# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""An experiment folder: its configuration, capture, model, checkpoints and summaries.

Shared by the training, evaluation and rendering command lines. `Experiment.create` parses
gin files and bindings (or, when none are given, the folder's saved `config.gin`), resolves
and validates the capture, and builds the model over a device mesh; `Experiment.restore`
reopens a trained experiment at a checkpoint for evaluation or rendering. Layout
(docs/architecture.md#experiment-folder):

    EXP/config.gin      effective configuration, with the resolved capture and FLAME file
    EXP/checkpoints/    Orbax CheckpointManager (atomic, keeps the last N)
    EXP/metrics.jsonl   one JSON object per line: {"step", "wall_s", "split", ...}
                        (docs/architecture.md#metrics)
    EXP/tensorboard/    event files (tensorboardX)

EXP is a local folder or a gs:// URL (`experiment_folder`); a capture may also be a URL
(`flamenerf.io.paths`). Caches derived from the capture (packs, guide grids) stay local.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.resources
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gin
import jax
import jax.numpy as jnp
import numpy as np

from flamenerf import cli_args, configs, schedules, sharding
from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import packing, rays
from flamenerf.errors import UserError
from flamenerf.evaluation import figures
from flamenerf.evaluation import renderer as evaluation
from flamenerf.evaluation.evaluate import evaluate_frame
from flamenerf.evaluation.metrics import metric_names
from flamenerf.io import paths
from flamenerf.nerf import guide
from flamenerf.nerf.model import FlameNerf, condition_spread, init_params, make_model
from flamenerf.training import step as training

GUIDE_VERSION = "3"  # bump when the guide grids' construction changes (invalidates caches)
TENSORBOARD_FRAMES = 4  # validation frames whose images go to TensorBoard at each validation


def _packaged_gin_folder() -> Path:
    """The folder of the gin configs that ship with flamenerf (the repository's `gin/`).

    setup.py installs `gin/` as package data in `flamenerf/gin_configs/` (a wheel). An editable
    install, or a checkout used without installing, reads the checkout's `gin/` itself
    (setuptools' editable finder does not import a data-only package mapped elsewhere).
    """
    installed = importlib.resources.files("flamenerf") / "gin_configs"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "gin"


PROJECT_GIN = _packaged_gin_folder()


def packaged_gin_names() -> list[str]:
    """Names of the packaged gin configs, as `--gin_configs` takes them (`ablations/X.gin`)."""
    return sorted(p.relative_to(PROJECT_GIN).as_posix() for p in PROJECT_GIN.rglob("*.gin"))


def resolve_gin(name: str) -> str:
    """A `--gin_configs` entry as a file path: an existing file, else a packaged config.

    `gin/demo.gin` is a file in the repository; `demo.gin` or `ablations/no_warp.gin` name a
    packaged config from any folder (a leading `gin/` is accepted too). A URL
    (`gs://.../config.gin`) names a file only.

    Raises:
      UserError: neither a file nor a packaged config (the message lists the packaged names).
    """
    if paths.is_remote(name):
        if not paths.as_path(name).is_file():
            raise UserError(f"{name}: gin config file not found")
        return name
    paths.as_path(name)  # a URL gone wrong ("gs:/...") is an error, never a local file
    if Path(name).is_file():
        return name
    relative = Path(name).as_posix().removeprefix("./").removeprefix("gin/")
    if relative in packaged_gin_names():
        return str(PROJECT_GIN / relative)
    raise UserError(
        f"{name}: gin config file not found, and not a packaged config "
        f"(packaged: {', '.join(packaged_gin_names())})"
    )


def units_per_metre(capture: capture_lib.Capture) -> float:
    """Normalised scene units per metre of FLAME space."""
    return capture.scene.units_per_metre


def warp_region(
    capture: capture_lib.Capture, warp: configs.WarpConfig, guide_config: configs.GuideConfig
) -> tuple[tuple[tuple[float, ...], tuple[float, ...]] | None, float]:
    """The box where the learned warp acts (normalised units) and its fade length.

    The box holds every frame's FLAME vertices where the learned warp sees them (posed, and
    their neutral when the FLAME guide moves samples there first), plus the margin.

    Returns:
      ((lower (3,), upper (3,)) or None for "everywhere", fade length).
    """
    units = units_per_metre(capture)
    if warp.warp_type == "none" or warp.region == "everywhere":
        return None, 0.0
    vertices = [capture.vertices(i) for i in capture.ids]
    if guide_config.enabled:
        _, neutral = capture.posed_and_neutral(guide_config.undo_rigid)
        vertices.extend(neutral)
    points = np.concatenate([np.reshape(v, (-1, 3)) for v in vertices])
    margin = warp.region_margin_m * units
    lower = tuple(float(v) for v in points.min(axis=0) - margin)
    upper = tuple(float(v) for v in points.max(axis=0) + margin)
    return (lower, upper), warp.region_fade_m * units


def guide_cache_path(capture: capture_lib.Capture, settings: guide.GuideSettings) -> Path:
    """Where the guide grids of a capture and settings are cached (under the cache root)."""
    key = hashlib.sha256(
        f"{packing.capture_key(capture)}|{settings}|{GUIDE_VERSION}".encode()
    ).hexdigest()[:16]
    return paths.cache_root() / "guides" / f"{key}.npz"


class NonFiniteStateError(RuntimeError):
    """`Experiment.save` refused a training state holding NaN or infinite values."""


def nonfinite_leaves(tree: Any) -> list[str]:
    """Paths (e.g. `.params['fine']['rgb']['kernel']`) of the floating-point leaves of `tree`
    holding any NaN or infinity. Integer leaves (steps, counts) are always finite.

    Replicated arrays are checked on this process's first copy (no cross-device work);
    sharded ones on every shard this process holds. The check runs on the host, after one
    transfer of them all (a checkpoint copies them there anyway): no program is compiled.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    paths, flags = [], []
    for path, leaf in leaves:
        if isinstance(leaf, jax.Array):
            shards = (
                [leaf.addressable_data(0)]
                if leaf.is_fully_replicated
                else [s.data for s in leaf.addressable_shards]
            )
        else:
            shards = [np.asarray(leaf)]
        if not jnp.issubdtype(shards[0].dtype, jnp.inexact):
            continue
        paths.append(jax.tree_util.keystr(path))
        flags.append(shards)
    host = jax.device_get(flags)  # one transfer for every leaf
    finite = [all(np.isfinite(shard).all() for shard in shards) for shards in host]
    return [p for p, ok in zip(paths, finite, strict=True) if not ok]


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
    shipped = ", ".join(n for n in packaged_gin_names() if "/" not in n)
    parser.add_argument(
        "--gin_configs",
        nargs="+",
        action="extend",
        default=[],
        help=f"gin files, or configs that ship with flamenerf by name ({shipped}, "
        "ablations/NAME.gin), applied in order (default: the experiment's saved config.gin)",
    )
    parser.add_argument(
        "--gin_bindings",
        nargs="+",
        action="extend",
        default=[],
        help="gin bindings applied after the files, e.g. 'TrainConfig.max_steps = 100'",
    )


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("multi-host (jax.distributed.initialize)")
    group.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    group.add_argument("--num_processes", type=int, default=None, help="number of processes")
    group.add_argument("--process_id", type=int, default=None, help="this process's index")


def add_checkpoint_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """--checkpoint, --scale and --chunk: the arguments of `Experiment.restore` (the eval and
    render command lines)."""
    cli_args.add_checkpoint(parser, default)
    parser.add_argument(
        "--scale",
        type=int,
        choices=capture_lib.IMAGE_SCALES,
        default=default,
        metavar="S",
        help="image scale 1, 2, 4 or 8 (binds DataConfig.scale; default: the experiment's)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=default,
        metavar="RAYS",
        help="rays per rendering chunk (binds TrainConfig.render_chunk; default: the experiment's)",
    )


def distributed_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.coordinator_address is None:
        return None
    if args.num_processes is None or args.process_id is None:
        raise SystemExit("error: --coordinator_address needs --num_processes and --process_id")
    return {
        "coordinator_address": args.coordinator_address,
        "num_processes": args.num_processes,
        "process_id": args.process_id,
    }


def _open_remote_gin(name: str):
    return paths.as_path(name).open("r")


def _is_remote_gin(name: str) -> bool:
    """gin's existence check for the reader of URLs (gin tries it on every search path)."""
    try:
        return paths.is_remote(name) and paths.as_path(name).is_file()
    except Exception:  # a search path joined to a URL, an unreachable bucket: not this reader's
        return False


# gin reads files with `open`; gin files at URLs (an experiment's saved config.gin) through
# epath, as every other file of an experiment.
gin.config.register_file_reader(_open_remote_gin, _is_remote_gin)


def experiment_folder(folder: str | Path) -> paths.AnyPath:
    """An experiment folder as typed: a local path, or a gs:// URL whose bucket exists.

    Raises:
      UserError: a malformed URL (`paths.as_path`), a URL of another file system (Orbax
        writes the checkpoints through TensorStore, which it drives for gs:// only), or a
        bucket that does not exist or cannot be reached.
    """
    path = paths.as_path(folder)
    if paths.is_remote(path):
        if paths.scheme(path) != "gs":
            raise UserError(
                f"{folder}: an experiment folder is a local path or a gs:// URL (Orbax writes "
                f"checkpoints to gs:// only); captures may be read from {paths.scheme(path)}://"
            )
        paths.check_bucket(path)
    return path


class _GinSearchNoise(logging.Filter):
    """Hides gin's "Path not found" log for search-path prefixes it tries before ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Path not found:")


def parse_gin(files: list[str], bindings: list[str]) -> None:
    """Parses gin files and bindings; errors become UserError naming the file or binding.

    Each file is a path or the name of a packaged config (`resolve_gin`); `include` lines find
    the packaged configs (`include 'defaults.gin'`) and files beside the including one.
    """
    logging.getLogger().addFilter(_GinSearchNoise())
    gin.clear_config()
    files = [resolve_gin(f) for f in files]
    for folder in {PROJECT_GIN, *(paths.resolve(f).parent for f in files)}:
        gin.add_config_file_search_path(str(folder))
    try:
        gin.parse_config_files_and_bindings(files, bindings, finalize_config=False)
    except (ValueError, KeyError, SyntaxError, OSError) as error:
        raise UserError(f"bad gin configuration: {error}") from None
    try:
        configs.build_all()  # a value outside its field's type or range fails here, by name
    except (ValueError, TypeError) as error:  # TypeError: a schedule's value is not bound
        # gin appends "In call to configurable ... [in scope 's']" on further lines.
        first, *rest = str(error).splitlines()
        scope = re.search(r"in scope '([^']+)'", " ".join(rest))
        where = f" (gin scope '{scope.group(1)}')" if scope else ""
        raise UserError(f"bad gin configuration: {first}{where}") from None


def default_capture_path() -> Path:
    from flamenerf.synthetic import generator as synthetic

    return synthetic.default_capture()


@dataclasses.dataclass
class Experiment:
    """Everything a training or evaluation run needs (see the module docstring)."""

    base_folder: paths.AnyPath  # a local Path or a gs:// epath.Path (`experiment_folder`)
    data_config: configs.DataConfig
    train_config: configs.TrainConfig
    model_config: configs.ModelConfig
    warp_config: configs.WarpConfig
    expression_config: configs.ExpressionConfig
    guide_config: configs.GuideConfig
    loss_config: configs.LossConfig
    capture: capture_lib.Capture
    model: FlameNerf
    mesh: jax.sharding.Mesh
    _checkpoints: Any = None
    _source: Any = None
    _renderer: evaluation.Renderer | None = None
    _extras: training.TrainExtras | None = None
    _extras_frames: frozenset[int] = frozenset()  # frames whose grids `_extras` holds
    _guide_stats: guide.GuideStats | None = None  # folding of the guide map (`guide_grids`)
    _started: float = dataclasses.field(default_factory=time.time)
    # Seconds `create` spent on the capture: generating the default synthetic one when the
    # cache has none, reading it (train's "startup" record, docs/architecture.md#metrics).
    capture_seconds: float = 0.0

    # ----------------------------------------------------------------------- construction
    @classmethod
    def create(
        cls,
        base_folder: str | Path,
        gin_configs: list[str],
        gin_bindings: list[str],
        data_dir: str | None = None,
        flame_model: str | None = None,
        distributed: dict[str, Any] | None = None,
        write_config: bool = True,
    ) -> Experiment:
        """Parses the configuration, resolves the capture and builds the model.

        Args:
          base_folder: the experiment folder, local or a gs:// URL (`experiment_folder`);
          data_dir and flame_model: local paths or URLs (`flamenerf.io.paths.as_path`).

        Raises:
          UserError: bad gin files or bindings, a broken capture, a batch that does not
            divide over the devices, a bad folder or URL.
        """
        base_folder = experiment_folder(base_folder)
        if distributed:
            if jax.config.jax_platforms in (None, "", "cpu"):
                # CPU processes need a collectives backend for cross-process all-reduce.
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(**distributed)
        saved = base_folder / "config.gin"
        if not gin_configs and saved.is_file():
            gin_configs = [str(saved)]
        if not gin_configs and not gin_bindings:
            raise UserError(f"{base_folder}: no config.gin there; pass --gin_configs")
        parse_gin(gin_configs, gin_bindings)
        data = configs.DataConfig()
        clock = time.time()  # the capture: generated (the default synthetic one) and read
        data = dataclasses.replace(
            data,
            capture=str(paths.resolve(data_dir or data.capture or default_capture_path())),
            flame_model=str(paths.resolve(flame_model)) if flame_model else data.flame_model,
        )
        try:
            capture = capture_lib.load_capture(data.capture, data.scale, data.flame_model or None)
        except capture_lib.CaptureError as error:
            raise UserError("broken capture:\n  " + "\n  ".join(error.problems)) from None
        capture_seconds = time.time() - clock
        train_config = configs.TrainConfig()
        mesh = sharding.make_mesh()
        devices = mesh.devices.size
        if train_config.batch_size % devices:
            raise UserError(
                f"TrainConfig.batch_size = {train_config.batch_size} does not divide evenly over "
                f"{devices} devices; use a multiple of {devices}"
            )
        expression = configs.ExpressionConfig()
        condition_dim = capture.scene.num_expression + (3 if expression.use_jaw else 0)
        model_config, warp_config = configs.ModelConfig(), configs.WarpConfig()
        guide_config = configs.GuideConfig()
        if model_config.pose_shading and not (guide_config.enabled and guide_config.undo_rigid):
            raise UserError(
                "ModelConfig.pose_shading = True needs the FLAME guide's rigid part: "
                "GuideConfig.enabled = True and GuideConfig.undo_rigid = True (found "
                f"{guide_config.enabled} and {guide_config.undo_rigid}); without the guide, "
                "also bind ModelConfig.pose_shading = False"
            )
        region, fade = warp_region(capture, warp_config, guide_config)
        spread = None
        if expression.noise_scale == "spread":
            spread = condition_spread(
                np.stack([capture.condition(i, expression.use_jaw) for i in capture.train_ids])
            )
        try:
            model = make_model(
                model_config,
                warp_config,
                expression,
                capture.num_train,
                condition_dim,
                capture.scene.near,
                capture.scene.far,
                use_guide=guide_config.enabled,
                mesh_radius=expression.mesh_radius_m * units_per_metre(capture),
                warp_region=region,
                warp_fade=fade,
                condition_spread=spread,
            )
        except ValueError as error:
            raise UserError(str(error)) from None
        exp = cls(
            base_folder=base_folder,
            data_config=data,
            train_config=train_config,
            model_config=model_config,
            warp_config=warp_config,
            expression_config=expression,
            guide_config=guide_config,
            loss_config=configs.LossConfig(),
            capture=capture,
            model=model,
            mesh=mesh,
            capture_seconds=capture_seconds,
        )
        if write_config and jax.process_index() == 0:
            exp.write_config()
        return exp

    @classmethod
    @contextlib.contextmanager
    def restore(
        cls,
        folder: str | Path,
        checkpoint: int | None = None,
        *,
        scale: int | None = None,
        chunk: int | None = None,
        bindings: Sequence[str] = (),
    ) -> Iterator[Restored]:
        """Opens a trained experiment folder (its saved config.gin) at a checkpoint.

        A context manager: `with Experiment.restore(folder) as restored:` gives a `Restored`
        (experiment, train state, checkpoint step, trained scale, `eval_folder`); the
        experiment is closed on leaving the block.

        Args:
          folder: the experiment folder.
          checkpoint: the step to restore; None for the latest.
          scale: image scale overriding DataConfig.scale; chunk: overrides
            TrainConfig.render_chunk.
          bindings: gin bindings applied after the saved config.gin (settings that leave the
            parameters' shapes alone, e.g. `ModelConfig.num_coarse_samples`: the renders'
            samples per ray; a binding that changes a shape fails to restore).

        Raises:
          UserError: no experiment there, no such checkpoint (naming the folder and the steps
            available), a broken capture or configuration, a chunk that is not positive.
        """
        restored = cls._restore(folder, checkpoint, scale=scale, chunk=chunk, bindings=bindings)
        try:
            yield restored
        finally:
            restored.exp.close()

    @classmethod
    def _restore(
        cls,
        folder: str | Path,
        checkpoint: int | None = None,
        *,
        scale: int | None = None,
        chunk: int | None = None,
        bindings: Sequence[str] = (),
    ) -> Restored:
        """`restore` without the context: the caller closes `Restored.exp`."""
        folder = experiment_folder(folder)
        if not (folder / "config.gin").is_file():
            raise UserError(f"{folder}: not an experiment folder (no config.gin)")
        if chunk is not None and chunk <= 0:
            raise UserError(f"--chunk {chunk}: expected a positive number of rays")
        overrides = list(bindings)
        if scale is not None:
            overrides.append(f"DataConfig.scale = {int(scale)}")
        if chunk is not None:
            overrides.append(f"TrainConfig.render_chunk = {int(chunk)}")
        parse_gin([str(folder / "config.gin")], [])
        trained_scale = configs.DataConfig().scale
        exp = cls.create(folder, [], overrides, write_config=False)
        steps = sorted(exp.checkpoints.all_steps())
        if not steps:
            exp.close()
            raise UserError(
                f"{folder / 'checkpoints'}: no checkpoints (train the experiment first)"
            )
        if checkpoint is None:
            checkpoint = steps[-1]
        try:
            state, _ = exp.restore_or_init_state(checkpoint)
        except UserError:
            exp.close()
            raise
        return Restored(exp, state, int(checkpoint), trained_scale)

    def write_config(self) -> None:
        """Writes EXP/config.gin: every binding, with the resolved capture and FLAME file."""
        paths.make_folder(self.base_folder)
        text = gin.config_str()
        capture = json.dumps(self.data_config.capture)
        flame_file = json.dumps(str(self.capture.scene.flame_model))
        resolved = (
            f"\n# Resolved by flamenerf:\nDataConfig.capture = {capture}\n"
            f"DataConfig.flame_model = {flame_file}\n"
        )
        paths.write_atomic(self.base_folder / "config.gin", text + resolved)

    # ----------------------------------------------------------------------- state
    @property
    def checkpoints(self):
        if self._checkpoints is None:
            import orbax.checkpoint as ocp

            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.train_config.keep_checkpoints,
                create=True,
                enable_async_checkpointing=False,
            )
            self._checkpoints = ocp.CheckpointManager(
                paths.resolve(self.base_folder / "checkpoints"), options=options
            )
        return self._checkpoints

    def init_state(self) -> training.TrainState:
        """A fresh state (compiled once: eager initialisation of the fields is slow)."""
        optimizer = training.make_optimizer(self.train_config)
        create = jax.jit(
            lambda key: training.create_state(init_params(self.model, key), optimizer),
            out_shardings=sharding.replicated(self.mesh),
        )
        return create(jax.random.PRNGKey(self.train_config.seed))

    def restore_or_init_state(self, step: int | None = None) -> tuple[training.TrainState, int]:
        """The latest (or the given) checkpoint's state, else a fresh one; and its step."""
        import orbax.checkpoint as ocp

        step = self.checkpoints.latest_step() if step is None else step
        if step is None:
            return self.init_state(), 0
        if step not in self.checkpoints.all_steps():
            raise UserError(
                f"{self.base_folder / 'checkpoints'}: no checkpoint at step {step} "
                f"(have {sorted(self.checkpoints.all_steps())})"
            )
        # The state's structure without computing it (initialisation is slow eagerly).
        replicated = sharding.replicated(self.mesh)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
            jax.eval_shape(self.init_state),
        )
        restored = self.checkpoints.restore(step, args=ocp.args.StandardRestore(abstract))
        return restored, int(restored.step)

    def save(self, state: training.TrainState, step: int) -> None:
        """Saves a checkpoint atomically (every process calls this; Orbax coordinates).

        Raises:
          NonFiniteStateError: a parameter or optimizer-state array holds NaN or inf; nothing
            is written, so the latest checkpoint stays the last good one.
        """
        import orbax.checkpoint as ocp

        if step in self.checkpoints.all_steps():
            return
        bad = nonfinite_leaves(state)
        if bad:
            folder = self.base_folder / "checkpoints"
            latest = self.checkpoints.latest_step()
            kept = (
                f"the last good checkpoint (step {latest}) is kept in {folder}"
                if latest is not None
                else f"no checkpoint was written to {folder} before"
            )
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise NonFiniteStateError(
                f"step {step}: not saving a checkpoint: NaN or infinite values in {shown}; {kept}"
            )
        self.checkpoints.save(step, args=ocp.args.StandardSave(state))
        self.checkpoints.wait_until_finished()

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()

    # ----------------------------------------------------------------------- data
    @property
    def frame_source(self) -> rays.FrameSource:
        if self._source is None:
            if self.data_config.pack:
                self._source = packing.pack_capture(
                    self.capture, show_progress=jax.process_index() == 0
                )
            else:
                self._source = rays.CaptureSource(self.capture)
        return self._source

    def ray_batches(self, start_step: int = 0) -> rays.Prefetcher:
        """This process's share of every training batch, prefetched in a background thread.

        Close the result (or use it in a `with` block) to stop the thread.
        """
        processes = jax.process_count()
        sampler = rays.RaySampler(
            self.capture,
            self.frame_source,
            batch_size=self.train_config.batch_size // processes,
            seed=self.train_config.seed * 1000 + jax.process_index(),
            jaw=self.expression_config.use_jaw,
            frames_per_group=self.data_config.frames_per_group,
            num_shards=jax.local_device_count(),
        )
        # Replaying the stream up to `start_step` makes a resumed run continue exactly.
        return rays.Prefetcher(sampler.batches(skip=start_step), self.data_config.prefetch)

    def shard(self, batch: rays.RayBatch) -> rays.RayBatch:
        return sharding.shard_batch(batch, self.mesh)

    @property
    def needs_grids(self) -> bool:
        return self.guide_config.enabled or self.expression_config.spatial_prior == "mesh"

    def guide_settings(self) -> guide.GuideSettings:
        units = units_per_metre(self.capture)
        cfg = self.guide_config
        return guide.GuideSettings(
            sigma=cfg.sigma_m * units,
            resolution=cfg.resolution,
            move_threshold=cfg.move_threshold_m * units,
            undo_rigid=cfg.undo_rigid,
            rigid_fade=cfg.rigid_fade_m * units,
            # The "mesh" prior reads the distance to the mesh out to its radius.
            reach=(
                self.expression_config.mesh_radius_m * units
                if self.expression_config.spatial_prior == "mesh"
                else 0.0
            ),
            rigid_weight=cfg.rigid_weight,
            neck_level=cfg.neck_level_m * units,
            neck_fade=cfg.neck_fade_m * units,
        )

    def frame_indices(self, frame_ids: Sequence[str] | None = None) -> list[int]:
        """Indices in `capture.ids` (as `RayBatch.frame`) of frame ids (None: every frame).

        Raises:
          UserError: an id that is not a frame of the capture.
        """
        ids = list(self.capture.ids)
        if frame_ids is None:
            return list(range(len(ids)))
        index = {frame_id: i for i, frame_id in enumerate(ids)}
        unknown = [f for f in frame_ids if f not in index]
        if unknown:
            raise UserError(
                f"{self.capture.root / 'dataset.json'}: no frame {unknown[0]!r} "
                f"(the capture has {len(ids)} frames)"
            )
        return sorted({index[f] for f in frame_ids})

    def training_frames(self) -> list[str]:
        """The frames a training run reads guide grids of: the training frames (their rays)
        and the validation frames it renders (`validation_ids`)."""
        wanted = set(self.capture.train_ids) | set(self.validation_ids())
        return [frame_id for frame_id in self.capture.ids if frame_id in wanted]

    def guide_grids(
        self, show_progress: bool = True, frames: Sequence[str] | None = None
    ) -> guide.GuideGrids:
        """The FLAME-guide grids of the frames of `capture.ids` (indexed like it), cached.

        Only the grids of `frames` (ids; default: every frame) are needed: those in the cache
        (`guide_cache_path`, one file per capture and settings) are read, the missing ones
        built (`guide.build_grids`, every core) and added to it. The grids of frames neither
        cached nor asked for are NaN (a render reading them is NaN, never silently wrong). A
        frame's grid does not depend on which others are built: the result is the same as
        building every frame at once. Their folding (`guide.folded_fraction`) is measured
        when they are built, kept with them, printed with `show_progress` and left in
        `guide_stats` (NaN for frames not built).
        """
        settings = self.guide_settings()
        path = guide_cache_path(self.capture, settings)
        names = [field.name for field in dataclasses.fields(guide.GuideGrids)]
        count = len(self.capture.ids)
        grids, stats, built = None, None, np.zeros(count, bool)
        if path.is_file():
            with np.load(path) as data:
                if data["values"].shape[0] == count:
                    # Fields the settings leave None (the "neck" weight's) are not stored.
                    stored = [name for name in names if name in data.files]
                    grids = guide.GuideGrids(**{name: data[name] for name in stored})
                    stats = guide.GuideStats(
                        folded=data["folded"], rigid_margin=float(data["rigid_margin"])
                    )
                    # Files written before frames could be left out hold every frame.
                    built = data["built"] if "built" in data.files else ~built
        missing = [i for i in self.frame_indices(frames) if not built[i]]
        if missing:
            posed, neutral = self.capture.posed_and_neutral(settings.undo_rigid)
            new = guide.build_grids(
                posed,
                neutral,
                settings,
                show_progress,
                transforms=self.head_motion(),
                head=guide.head_vertices(self.capture.flame_model),
                frames=missing,
                neck=self.neck_frame(),
            )
            new_stats = guide.folded_fraction(new, posed, settings.sigma, frames=missing)
            if grids is not None:  # the box and the rigid part are the same: add the frames
                values, folded = np.array(grids.values), np.array(stats.folded)
                values[missing], folded[missing] = new.values[missing], new_stats.folded[missing]
                new = new.replace(values=values)
                new_stats = guide.GuideStats(folded=folded, rigid_margin=new_stats.rigid_margin)
            grids, stats = new, new_stats
            built = np.array(built)
            built[missing] = True
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{jax.process_index()}.tmp.npz")
            arrays = {name: getattr(grids, name) for name in names}
            arrays = {name: value for name, value in arrays.items() if value is not None}
            np.savez(
                tmp, folded=stats.folded, rigid_margin=stats.rigid_margin, built=built, **arrays
            )
            tmp.replace(path)
        self._guide_stats = stats
        if show_progress:
            print(stats.summary())
        return grids

    @property
    def guide_stats(self) -> guide.GuideStats | None:
        """The folding of the guide map over the capture's frames (after `guide_grids`)."""
        return self._guide_stats

    def head_motion(self, flame_params: list[Any] | None = None) -> np.ndarray:
        """(F, 4, 4) the head's rest -> posed transforms in the normalised frame, for the
        parameters of every frame of `capture.ids` (or the given ones)."""
        if flame_params is None:
            flame_params = [self.capture.flame_params[i] for i in self.capture.ids]
        transforms = guide.head_transforms(self.capture.subject, list(flame_params))
        return guide.in_frame(transforms, self.capture.scene.flame_to_scene)

    def neck_frame(self, flame_params: list[Any] | None = None) -> np.ndarray | None:
        """(F, 2, 3) the root joints at rest and FLAME's up axis in the normalised frame, for
        the parameters of every frame of `capture.ids` (or the given ones), as the "neck"
        rigid weight needs them (`guide.neck_frame`); None with the "ball" weight."""
        if self.guide_config.rigid_weight != "neck":
            return None
        if flame_params is None:
            flame_params = [self.capture.flame_params[i] for i in self.capture.ids]
        subject = self.capture.subject
        return guide.neck_frame(subject, list(flame_params), self.capture.scene.flame_to_scene)

    def grids_for(
        self, flame_params: list[Any], show_progress: bool = False
    ) -> guide.GuideGrids | None:
        """Guide grids of meshes posed with other parameters (grid i for `flame_params[i]`,
        so rays rendered with it carry frame = i), replicated; None when the model reads no
        grids. Used to render novel expressions and reanimations
        (docs/architecture.md#rendering-with-other-parameters). `show_progress`: a progress
        bar over the grids built."""
        if not self.needs_grids:
            return None
        settings = self.guide_settings()
        posed, neutral = self.capture.subject.posed_and_neutral(
            list(flame_params), settings.undo_rigid
        )
        grids = guide.build_grids(
            posed,
            neutral,
            settings,
            show_progress,
            transforms=self.head_motion(flame_params),
            head=guide.head_vertices(self.capture.flame_model),
            neck=self.neck_frame(flame_params),
        )
        return jax.device_put(grids, sharding.replicated(self.mesh))

    def extras(self, frames: Sequence[str] | None = None) -> training.TrainExtras:
        """Per-capture arrays the train step reads, replicated over the mesh.

        `vertices`: (F, V, 3) the frames' posed FLAME vertices where the learned warp sees
        them (moved by the FLAME guide when it is on), for the FLAME warp penalty;
        `vertex_targets`: (F, V, 3) where the warp should take them (with the guide: their
        canonical, neutral positions; without: None, i.e. stay put); `guide`: the frames'
        guide grids (`guide_grids`), built for `frames` (ids; default: every frame), NaN
        for the others (so are those frames' `vertices` with the guide on). Kept: a later
        call for frames already built returns the same arrays.
        """
        wanted = frozenset(self.frame_indices(frames))
        if self._extras is not None and not wanted <= self._extras_frames:
            self._extras = None  # more frames needed: rebuilt with the ones already there
            wanted |= self._extras_frames
        if self._extras is None:
            grids = vertices = targets = None
            if self.needs_grids:
                ids = [self.capture.ids[i] for i in sorted(wanted)]
                grids = self.guide_grids(show_progress=jax.process_index() == 0, frames=ids)
            weight = self.loss_config.flame_warp_weight
            if self.warp_config.warp_type != "none" and weight != 0:
                posed, neutral = self.capture.posed_and_neutral(self.guide_config.undo_rigid)
                vertices = jnp.asarray(posed, jnp.float32)
                if self.guide_config.enabled:
                    # The guide leaves the warp only what it does not explain itself.
                    frames = jnp.arange(len(posed))
                    vertices = jax.jit(guide.apply)(grids, frames, vertices)[0]
                    # The neutral; with the "neck" weight, the torso's part stays put.
                    targets = guide.vertex_targets(grids, posed, neutral)
                    targets = jnp.asarray(targets, jnp.float32)
            extras = training.TrainExtras(vertices=vertices, vertex_targets=targets, guide=grids)
            self._extras = jax.device_put(extras, sharding.replicated(self.mesh))
            self._extras_frames = wanted
        return self._extras

    def extras_spec(self) -> training.TrainExtras:
        """The shapes, dtypes and shardings of `extras()` (`jax.ShapeDtypeStruct` leaves, None
        where it has None), known without building anything: the train step can be compiled
        while the guide grids are built (`TrainConfig.compile_ahead`)."""
        frames, size = len(self.capture.ids), self.guide_config.resolution
        replicated = sharding.replicated(self.mesh)  # as `extras()` puts them
        spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=replicated)
        f32 = lambda *shape: spec(shape, jnp.float32)
        grids = vertices = targets = None
        if self.needs_grids:
            grids = guide.GuideGrids(
                values=spec((frames, size, size, size, 4), jnp.float16),
                lower=f32(3),
                upper=f32(3),
                rigid=f32(frames, 3, 4),
                rotation=f32(frames, 3),
                centre=f32(frames, 3),
                radius=f32(frames),
                fade=f32(),
            )
            if self.guide_config.rigid_weight == "neck":
                grids = grids.replace(
                    twist=f32(frames, 3),
                    neck_origin=f32(frames, 3),
                    neck_axis=f32(frames, 3),
                    neck_fade=f32(),
                )
        if self.warp_config.warp_type != "none" and self.loss_config.flame_warp_weight != 0:
            vertices = f32(frames, self.capture.flame_model.num_vertices, 3)
            if self.guide_config.enabled:
                targets = vertices
        return training.TrainExtras(vertices=vertices, vertex_targets=targets, guide=grids)

    def frame_grids(
        self, frame_ids: Sequence[str], show_progress: bool = False
    ) -> guide.GuideGrids | None:
        """The guide grids of the capture's frames `frame_ids` (indexed like `capture.ids`,
        as `RayBatch.frame`; the other frames' are NaN), replicated; None when the model reads
        no grids. Only what the cache lacks is built (`guide_grids`). Used by `eval`."""
        if not self.needs_grids:
            return None
        if self._extras is not None and set(self.frame_indices(frame_ids)) <= self._extras_frames:
            return self._extras.guide
        grids = self.guide_grids(show_progress, frames=list(frame_ids))
        return jax.device_put(grids, sharding.replicated(self.mesh))

    def train_step(self):
        return training.make_train_step(
            self.mesh,
            self.model,
            training.make_optimizer(self.train_config),
            self.loss_config,
            self.train_config,
        )

    # ----------------------------------------------------------------------- summaries
    @property
    def metrics_path(self) -> paths.AnyPath:
        return self.base_folder / "metrics.jsonl"

    def summary_writer(self):
        from tensorboardX import SummaryWriter

        return SummaryWriter(paths.tensorboard_logdir(self.base_folder / "tensorboard"))

    @property
    def started(self) -> float:
        """When this experiment object was made (`time.time()`): the zero of `wall_s`."""
        return self._started

    def log(self, step: int, split: str, stats: dict[str, float], writer: Any = None) -> None:
        """Appends a metrics.jsonl record and the same scalars to TensorBoard."""
        record = {"step": step, "wall_s": round(time.time() - self._started, 3), "split": split}
        record.update({k: float(v) for k, v in stats.items()})
        paths.append_text(self.metrics_path, json.dumps(record) + "\n")
        if writer is not None:
            for name, value in stats.items():
                writer.add_scalar(f"{split}/{name}", float(value), step)

    @property
    def renderer(self) -> evaluation.Renderer:
        if self._renderer is None:
            self._renderer = evaluation.Renderer(
                self.model, self.mesh, self.train_config.render_chunk
            )
        return self._renderer

    def warp_alpha(self, step: int) -> float:
        return float(schedules.as_schedule(self.train_config.warp_alpha_schedule)(step))

    def validation_ids(self) -> list[str]:
        """`TrainConfig.val_frames` validation frames, evenly spread over `val_ids`."""
        ids = self.capture.val_ids
        count = min(self.train_config.val_frames, len(ids))
        if count == 0:
            return []
        return [ids[i] for i in np.linspace(0, len(ids) - 1, count).round().astype(int)]

    def validate(self, state: training.TrainState, step: int, writer: Any = None) -> dict:
        """Renders validation frames; logs mean PSNR (whole, face, outside) and images.

        Frames are scored as `eval` scores them (`evaluation.evaluate.evaluate_frame`), with
        the registry's validation metrics (`Metric.validation`). The first
        `TENSORBOARD_FRAMES` frames' images go to TensorBoard (`validation_images`). The
        metrics.jsonl record also has `val_s`, the seconds this validation took (so that
        time-to-quality measurements can leave validation out); the means returned do not.
        """
        clock = time.time()
        ids = self.validation_ids()
        if not ids:
            return {}
        names = metric_names("frame", validation=True)
        per_frame, images = [], {}
        for frame_id in ids:
            source = self.frame_source
            frame = evaluate_frame(
                self.renderer,
                self.capture,
                frame_id,
                state.params,
                self.warp_alpha(step),
                self.extras(ids).guide,
                use_jaw=self.expression_config.use_jaw,
                source=source,
                names=names,
            )
            per_frame.append(frame.metrics)
            if writer is not None and frame_id in ids[:TENSORBOARD_FRAMES]:
                images.update(validation_images(frame_id, frame.render, frame.target))
        means = {k: float(np.nanmean([m[k] for m in per_frame])) for k in per_frame[0]}
        if jax.process_index() == 0:
            self.log(step, "val", {**means, "val_s": round(time.time() - clock, 3)}, writer)
            if writer is not None:
                for tag, image in images.items():
                    writer.add_image(tag, image, step, dataformats="HWC")
        return means


def validation_images(
    frame_id: str, render: dict[str, np.ndarray], target: np.ndarray
) -> dict[str, np.ndarray]:
    """The TensorBoard images of one validation frame: {tag: float (H, W, 3) in [0, 1]}.

    Tags `val/ID/prediction`, `val/ID/target`, `val/ID/error` (`figures.error_map`, fixed
    scale) and `val/ID/depth` (`figures.depth_map`, normalised per image).

    Args:
      render: "rgb" (H, W, 3), "depth" (H, W), "acc" (H, W); target: (H, W, 3).
    """
    rgb = np.asarray(render["rgb"], np.float32)
    return {
        f"val/{frame_id}/prediction": np.clip(rgb, 0.0, 1.0),
        f"val/{frame_id}/target": np.clip(np.asarray(target, np.float32), 0.0, 1.0),
        f"val/{frame_id}/error": figures.error_map(rgb, target),
        f"val/{frame_id}/depth": figures.depth_map(render["depth"], render["acc"]),
    }


class Restored(NamedTuple):
    """A trained experiment reopened at a checkpoint (`Experiment.restore`)."""

    exp: Experiment
    state: Any  # the restored training.TrainState
    checkpoint: int  # its step
    trained_scale: int  # DataConfig.scale of the saved config.gin (before a `scale` override)

    @property
    def eval_folder(self) -> paths.AnyPath:
        """EXP/eval/step_N, or EXP/eval/step_N/scale_S when `scale` changed the image scale."""
        folder = self.exp.base_folder / "eval" / f"step_{self.checkpoint}"
        scale = self.exp.capture.scale
        return folder if scale == self.trained_scale else folder / f"scale_{scale}"
