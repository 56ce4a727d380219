# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Nerfies' own train step against flamenerf's at Nerfies' model size, in one run.

    python benchmarks/nerfies_step.py --nerfies /work/.mirror/google+nerfies/repo
        [--steps 5] [--warmup 2] [--rounds 2] [--losses all|rgb] [--batch_size 1024]

Both sides train the same model size on the same random ray batches: 8x128 NeRF MLPs (skip at
4), 64 coarse + 64 fine samples (the fine MLP sees all 128), an SE(3) warp (6x128, 8
frequencies, 8-d codes), 1,024 rays, rgb + elastic + background losses. Nerfies' side is its
`configs/test_vrig.gin` and its own `training.train_step`, pmapped as its train.py does;
flamenerf's side is `benchmarks/nerfies_size.gin` (gin/paper.gin at Nerfies' size) and
`training.step.make_train_step`. The script prints each side's seconds per step, rays/s,
XLA-counted GFLOP per step and MFU against the fp32 matmul peak measured in the same process
(`common.matmul_peak_gflops`, per device, as `benchmarks/throughput.py`), and the ratio
Nerfies s/step / flamenerf s/step (> 1: flamenerf is faster).

Nerfies is not part of flamenerf and nothing is downloaded: `--nerfies PATH` is a git directory
(a bare mirror: exported with `git archive HEAD`) or a checkout of google/nerfies. It is
copied into a scratch folder and patched there to run on today's JAX/Flax (`PATCHES`, after
../shared/notes/nerfies-on-jax-0.10.md); each patch fails loudly when the text it replaces is
not found. Nerfies' train.py is not run (it needs TensorFlow): ray batches are fed to its step
directly. Without `--nerfies`, only flamenerf's side is timed.

Each side runs its own implementation of the same loss terms, so the ratio includes their
designs: Nerfies takes the warp Jacobian (3 forward-mode JVPs) at all 64 coarse samples of
every ray for the elastic loss and warps `--background_points` (16,384, its default) random
points per device for the background loss; flamenerf takes one random coarse sample per ray
for both (`training/losses.py`). `--losses rgb` times the photometric loss alone (both
sides' warps still run on every sample). Figures are only comparable within one run on one
machine; `--steps 2 --warmup 1` is a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import compiled_flops, matmul_peak_gflops

from flamenerf import configs, sharding
from flamenerf.datasets.rays import RayBatch
from flamenerf.nerf.model import init_params, make_model
from flamenerf.training import experiment
from flamenerf.training import step as training
from flamenerf.training.losses import TrainExtras

HERE = Path(__file__).resolve().parent
FLAMENERF_GIN = HERE / "nerfies_size.gin"
NERFIES_GIN = "configs/test_vrig.gin"  # 8x128, 64+64, SE(3), elastic + background losses
NUM_CODES = 100  # warp / appearance codes (frames) on both sides
NEAR, FAR = 0.5, 1.5  # ray bounds of the random batches (the model does the same work anyway)
SHIM_MODULE = "_flamenerf_nerfies_optim"  # the flax.optim stand-in Nerfies imports

# --------------------------------------------------------------------------------------------
# Nerfies, copied and patched at run time.


@dataclasses.dataclass(frozen=True)
class Patch:
    """Replace `old` by `new` in `path` (relative to the Nerfies root), `count` times exactly."""

    path: str
    old: str
    new: str
    count: int = 1
    why: str = ""


# The breaks of Nerfies' last commit on JAX 0.10 / Flax 0.12 / Python 3.11 and their smallest
# fixes (../shared/notes/nerfies-on-jax-0.10.md). `jax.process_indexs` (train.py, eval.py) and
# TensorFlow need no fix: neither script is run.
PATCHES = (
    Patch(
        "nerfies/model_utils.py",
        "from flax import optim\n",
        f"import {SHIM_MODULE} as optim\n",
        why="flax.optim was removed: a shim over optax.inject_hyperparams(optax.adam)",
    ),
    Patch(
        "nerfies/model_utils.py",
        "jnp.broadcast_to([last_sample_z],",
        "jnp.broadcast_to(jnp.asarray([last_sample_z]),",
        why="jnp.broadcast_to no longer takes a list",
    ),
    Patch(
        "nerfies/schedules.py",
        "import collections\n",
        "import collections\nimport collections.abc\n",
        why="collections.Mapping moved to collections.abc (Python 3.10)",
    ),
    Patch(
        "nerfies/schedules.py",
        "collections.Mapping)",
        "collections.abc.Mapping)",
        why="collections.Mapping moved to collections.abc (Python 3.10)",
    ),
    Patch(
        "nerfies/training.py",
        "jax.tree_map(",
        "jax.tree_util.tree_map(",
        why="jax.tree_map was removed",
    ),
    Patch(
        "nerfies/utils.py",
        "jax.tree_map(",
        "jax.tree_util.tree_map(",
        count=2,
        why="jax.tree_map was removed",
    ),
    Patch(
        "nerfies/utils.py",
        "tree_util.tree_multimap(",
        "tree_util.tree_map(",
        why="jax.tree_util.tree_multimap was removed",
    ),
)
# Nerfies' gin configurables share their names with flamenerf's (ModelConfig, TrainConfig) and
# both are registered in this process: the gin files' selectors get their module.
GIN_FILES = ("configs/defaults.gin", NERFIES_GIN)
GIN_SELECTOR = re.compile(r"^(ModelConfig|TrainConfig|ExperimentConfig|EvalConfig)\.", re.M)


class NerfiesSourceError(RuntimeError):
    """`--nerfies` is not a usable google/nerfies tree, or a patch did not apply."""


def export_nerfies(source: Path, scratch: Path) -> Path:
    """Copies google/nerfies from a git directory (`git archive HEAD`) or a checkout.

    Returns:
      The root of the copy (scratch/nerfies_src).

    Raises:
      NerfiesSourceError: `source` is neither (the message says what was found).
    """
    root = scratch / "nerfies_src"
    root.mkdir(parents=True)
    if (source / "nerfies" / "models.py").is_file():  # a checkout
        shutil.copytree(source, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        return root
    if not ((source / "HEAD").is_file() and (source / "objects").is_dir()):
        raise NerfiesSourceError(
            f"--nerfies {source}: expected a git directory (HEAD, objects/) or a checkout "
            "(nerfies/models.py) of google/nerfies, found neither"
        )
    archive = scratch / "nerfies.tar"
    with open(archive, "wb") as out:
        result = subprocess.run(
            ["git", f"--git-dir={source}", "archive", "HEAD"], stdout=out, stderr=subprocess.PIPE
        )
    if result.returncode != 0:
        raise NerfiesSourceError(
            f"--nerfies {source}: git archive HEAD failed: {result.stderr.decode().strip()}"
        )
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    if not (root / "nerfies" / "models.py").is_file():
        raise NerfiesSourceError(f"--nerfies {source}: its HEAD has no nerfies/models.py")
    return root


def apply_patches(root: Path, patches: tuple[Patch, ...] = PATCHES) -> None:
    """Applies the string patches and qualifies the gin selectors, in the copy at `root`.

    Raises:
      NerfiesSourceError: a file is missing or a text to patch is not there exactly `count`
        times (nothing is guessed: another Nerfies version needs its own patch list).
    """
    for patch in patches:
        path = root / patch.path
        if not path.is_file():
            raise NerfiesSourceError(f"{patch.path}: not in the Nerfies tree (patch: {patch.why})")
        text = path.read_text()
        found = text.count(patch.old)
        if found != patch.count:
            raise NerfiesSourceError(
                f"{patch.path}: expected {patch.count} occurrence(s) of {patch.old!r} to patch "
                f"({patch.why}), found {found}: not google/nerfies at its last commit?"
            )
        path.write_text(text.replace(patch.old, patch.new))
    for name in GIN_FILES:
        path = root / name
        if not path.is_file():
            raise NerfiesSourceError(f"{name}: not in the Nerfies tree")
        text, found = GIN_SELECTOR.subn(r"nerfies.configs.\1.", path.read_text())
        if not found:
            raise NerfiesSourceError(f"{name}: no ModelConfig/TrainConfig bindings to qualify")
        path.write_text(text)


# flax.optim's Adam as Nerfies uses it (`Adam(lr).create(params)`, `.target`, `.state`,
# `.apply_gradient(grads, learning_rate=...)`), over optax.


@flax.struct.dataclass
class ShimOptimizer:
    """flax.optim.Optimizer: the parameters, optax's state and (static) the transformation."""

    target: Any
    state: Any
    transform: Any = flax.struct.field(pytree_node=False)

    def apply_gradient(self, grads: Any, learning_rate: Any) -> ShimOptimizer:
        state = _with_learning_rate(self.state, learning_rate)
        updates, state = self.transform.update(grads, state, self.target)
        return self.replace(target=optax.apply_updates(self.target, updates), state=state)


def _with_learning_rate(state: Any, learning_rate: Any) -> Any:
    """optax.inject_hyperparams' state with the learning rate set (float32, not weak)."""
    rate = jnp.asarray(learning_rate, jnp.float32)
    return state._replace(hyperparams=dict(state.hyperparams, learning_rate=rate))


@dataclasses.dataclass(frozen=True)
class ShimAdam:
    """flax.optim.Adam(learning_rate, beta1, beta2, eps): `create(params)` -> optimizer."""

    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def create(self, target: Any) -> ShimOptimizer:
        transform = optax.inject_hyperparams(optax.adam)(
            learning_rate=self.learning_rate, b1=self.beta1, b2=self.beta2, eps=self.eps
        )
        state = _with_learning_rate(transform.init(target), self.learning_rate)
        return ShimOptimizer(target, state, transform)


def install_optim_shim() -> None:
    """Registers the module that the patched `nerfies/model_utils.py` imports as `optim`."""
    module = types.ModuleType(SHIM_MODULE, "flax.optim stand-in for Nerfies (optax Adam)")
    module.Optimizer, module.Adam = ShimOptimizer, ShimAdam
    sys.modules[SHIM_MODULE] = module


def check_nerfies_dependencies() -> None:
    """Raises NerfiesSourceError naming the first module Nerfies' step needs that is missing."""
    for name in ("gin", "immutabledict", "absl.logging", "tqdm", "scipy.interpolate"):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise NerfiesSourceError(f"Nerfies needs the Python module {name}: {error}") from None


# --------------------------------------------------------------------------------------------
# The sizes and the shared batches.


@dataclasses.dataclass(frozen=True)
class Size:
    """What both sides share (defaults: Nerfies' test_vrig.gin)."""

    batch_size: int = 1024
    width: int = 128  # NeRF trunk width
    depth: int = 8  # NeRF trunk depth
    coarse: int = 64  # coarse samples per ray
    fine: int = 64  # fine samples per ray (the fine MLP also sees the coarse ones)
    background_points: int = 16384  # Nerfies' background-loss points per device


def random_batch(seed: int, size: Size) -> dict[str, np.ndarray]:
    """Random rays towards the origin, colours, code ids and background points (host side)."""
    rng = np.random.default_rng(seed)
    n = size.batch_size
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origins = rng.normal(scale=0.05, size=(n, 3)) - directions
    return {
        "origins": origins.astype(np.float32),
        "directions": directions.astype(np.float32),
        "rgb": rng.uniform(size=(n, 3)).astype(np.float32),
        "ids": rng.integers(0, NUM_CODES, size=n).astype(np.int32),
        "inside": (rng.uniform(size=n) < 0.5).astype(np.float32),
        "background": rng.uniform(-1, 1, size=(size.background_points, 3)).astype(np.float32),
    }


@dataclasses.dataclass
class Side:
    """One side's compiled step, ready to run `steps` steps on fresh batches.

    Attributes:
      name: the row's name.
      run: `run(steps)` runs that many steps and waits for the last (returns nothing).
      flops: XLA-counted FLOPs of one step (per device; 0 if unknown).
      batch_size: rays per step.
    """

    name: str
    run: Callable[[int], None]
    flops: float
    batch_size: int


# --------------------------------------------------------------------------------------------
# flamenerf's side.


def flamenerf_bindings(size: Size, losses: str) -> list[str]:
    """Gin bindings on top of `nerfies_size.gin` for `size` and `losses` ("all" or "rgb")."""
    bindings = [
        f"FieldConfig.width = {size.width}",
        f"FieldConfig.depth = {size.depth}",
        f"ModelConfig.num_coarse_samples = {size.coarse}",
        f"ModelConfig.num_fine_samples = {size.fine}",
        f"TrainConfig.batch_size = {size.batch_size}",
    ]
    if losses == "rgb":
        bindings += ["LossConfig.elastic_weight = 0.0", "LossConfig.background_weight = 0.0"]
    return bindings


def flamenerf_configs(size: Size, losses: str) -> dict[str, Any]:
    """flamenerf's configuration dataclasses at `size` (parsed, checked, then gin cleared)."""
    experiment.parse_gin([str(FLAMENERF_GIN)], flamenerf_bindings(size, losses))
    built = configs.build_all()
    import gin

    gin.clear_config()
    return built


def flamenerf_side(size: Size, losses: str, seed: int = 0) -> Side:
    """flamenerf's jitted train step (`make_train_step`) on the device mesh."""
    cfg = flamenerf_configs(size, losses)
    train_config = cfg["TrainConfig"]
    model = make_model(
        cfg["ModelConfig"], cfg["WarpConfig"], cfg["ExpressionConfig"], NUM_CODES, 1, NEAR, FAR
    )
    mesh = sharding.make_mesh()
    optimizer = training.make_optimizer(train_config)
    create = jax.jit(
        lambda key: training.create_state(init_params(model, key), optimizer),
        out_shardings=sharding.replicated(mesh),
    )
    state = create(jax.random.PRNGKey(seed))
    step = training.make_train_step(mesh, model, optimizer, cfg["LossConfig"], train_config)
    extras = jax.device_put(TrainExtras(), sharding.replicated(mesh))
    key = jax.random.PRNGKey(seed)

    def batches(first: int) -> Iterator[RayBatch]:
        index = first
        while True:
            data = random_batch(index, size)
            ids = data["ids"]
            batch = RayBatch(
                origins=data["origins"],
                directions=data["directions"],
                rgb=data["rgb"],
                frame=ids,
                warp_id=ids,
                appearance_id=ids,
                condition=np.zeros((size.batch_size, 1), np.float32),
                inside=data["inside"],
            )
            yield sharding.shard_batch(batch, mesh)
            index += 1

    source = batches(seed * 100_000)
    first = next(source)
    flops = compiled_flops(step, state, first, key, extras)
    holder = {"state": state}

    def run(steps: int) -> None:
        ready = [next(source) for _ in range(steps)]  # on the devices before the clock
        jax.block_until_ready(ready)
        state, stats = holder["state"], None
        for batch in ready:
            state, stats = step(state, batch, key, extras)
        jax.block_until_ready((state, stats))
        holder["state"] = state

    return Side("flamenerf", run, flops, size.batch_size)


# --------------------------------------------------------------------------------------------
# Nerfies' side.


def nerfies_bindings(size: Size, losses: str) -> list[str]:
    """Gin bindings on top of test_vrig.gin for `size` and `losses`."""
    model, train = "nerfies.configs.ModelConfig", "nerfies.configs.TrainConfig"
    bindings = [
        f"batch_size = {size.batch_size}",
        f"{model}.nerf_trunk_width = {size.width}",
        f"{model}.nerf_trunk_depth = {size.depth}",
        f"{model}.num_coarse_samples = {size.coarse}",
        f"{model}.num_fine_samples = {size.fine}",
        f"{train}.background_points_batch_size = {size.background_points}",
    ]
    if losses == "rgb":
        bindings += [f"{train}.use_elastic_loss = False", f"{train}.use_background_loss = False"]
    return bindings


def nerfies_side(root: Path, size: Size, losses: str, seed: int = 0) -> Side:
    """Nerfies' `training.train_step`, pmapped over the local devices as its train.py does.

    Args:
      root: the patched copy of google/nerfies (`export_nerfies`, `apply_patches`).
    """
    check_nerfies_dependencies()
    install_optim_shim()
    sys.path.insert(0, str(root))
    import functools

    import gin
    from flax import jax_utils

    nerfies = {
        name: importlib.import_module(f"nerfies.{name}")
        for name in ("configs", "models", "model_utils", "schedules", "training")
    }
    gin.clear_config()
    # `include 'defaults.gin'` must find Nerfies' file before flamenerf's (gin tries the
    # working directory first, then its search path, where flamenerf's gin/ already is).
    gin.add_config_file_search_path(str(root / "configs"))
    with contextlib.chdir(root / "configs"):
        gin.parse_config_files_and_bindings(
            [str(root / NERFIES_GIN)], nerfies_bindings(size, losses), skip_unknown=True
        )
    model_config = nerfies["configs"].ModelConfig()
    train_config = nerfies["configs"].TrainConfig()
    gin.clear_config()

    devices = jax.local_devices()
    if size.batch_size % len(devices):
        raise ValueError(f"--batch_size {size.batch_size}: not divisible by {len(devices)} devices")
    sched = nerfies["schedules"].from_config
    lr, alpha = sched(train_config.lr_schedule), sched(train_config.warp_alpha_schedule)
    time_alpha = sched(train_config.time_alpha_schedule)
    elastic = sched(train_config.elastic_loss_weight_schedule)
    ids = tuple(range(NUM_CODES))  # a tuple: the model is a static (hashed) jit argument
    model, params = nerfies["models"].construct_nerf(
        jax.random.PRNGKey(seed),
        model_config,
        batch_size=size.batch_size,
        appearance_ids=ids,
        camera_ids=ids,
        warp_ids=ids,
        near=NEAR,
        far=FAR,
        use_warp_jacobian=train_config.use_elastic_loss,
        use_weights=train_config.use_elastic_loss,
    )
    optimizer = ShimAdam(lr(0)).create({"model": params})
    state = nerfies["model_utils"].TrainState(
        optimizer=optimizer, warp_alpha=alpha(0), time_alpha=time_alpha(0)
    )
    state = jax_utils.replicate(state, devices=devices)
    scalars = nerfies["training"].ScalarParams(
        learning_rate=lr(0),
        elastic_loss_weight=elastic(0),
        warp_reg_loss_weight=train_config.warp_reg_loss_weight,
        warp_reg_loss_alpha=train_config.warp_reg_loss_alpha,
        warp_reg_loss_scale=train_config.warp_reg_loss_scale,
        background_loss_weight=train_config.background_loss_weight,
    )
    step_fn = functools.partial(
        nerfies["training"].train_step,
        model,
        elastic_reduce_method=train_config.elastic_reduce_method,
        elastic_loss_type=train_config.elastic_loss_type,
        use_elastic_loss=train_config.use_elastic_loss,
        use_background_loss=train_config.use_background_loss,
        use_warp_reg_loss=train_config.use_warp_reg_loss,
    )
    pstep = jax.pmap(
        step_fn, axis_name="batch", devices=devices, in_axes=(0, 0, 0, None), donate_argnums=(2,)
    )
    # Arrays laid out as the step's outputs are (its mesh axis "batch"): the step's first and
    # later calls then see the same input shardings and compile once (train.py compiles twice:
    # its initial state and keys are laid out differently from the step's outputs).
    place = jax.pmap(lambda x: x, axis_name="batch", devices=devices)
    state = jax.tree.map(place, state)
    count = len(devices)

    def shard(x: np.ndarray) -> jax.Array:
        return place(x.reshape((count, -1) + x.shape[1:]))

    def batches(first: int) -> Iterator[dict[str, Any]]:
        index = first
        while True:
            data = random_batch(index, size)
            ids = data["ids"][:, None].astype(np.uint32)
            metadata = {"warp": ids, "camera": ids, "appearance": ids}
            metadata["time"] = np.zeros_like(ids, np.float32)
            batch = {
                "origins": data["origins"],
                "directions": data["directions"],
                "rgb": data["rgb"],
                "metadata": metadata,
            }
            if train_config.use_background_loss:
                points = np.tile(data["background"], (count, 1))  # per device, as train.py
                batch["background_points"] = points
            yield jax.tree.map(shard, batch)
            index += 1

    source = batches(seed * 100_000)
    keys = place(jax.random.split(jax.random.PRNGKey(seed), count))
    holder = {"state": state, "keys": keys, "step": 1}

    def advance(state: Any, step: int) -> tuple[Any, Any]:
        """The per-step schedules, set as train.py sets them."""
        params = scalars.replace(learning_rate=lr(step), elastic_loss_weight=elastic(step))
        warp = jax_utils.replicate(alpha(step), devices)
        time = jax_utils.replicate(time_alpha(step), devices)
        return state.replace(warp_alpha=warp, time_alpha=time), params

    state0, params0 = advance(state, 1)
    flops = compiled_flops(pstep, keys, state0, next(source), params0)

    def run(steps: int) -> None:
        ready = [next(source) for _ in range(steps)]
        jax.block_until_ready(ready)
        state, keys, step, stats = holder["state"], holder["keys"], holder["step"], None
        for batch in ready:
            state, params = advance(state, step)
            state, stats, keys = pstep(keys, state, batch, params)
            step += 1
        jax.block_until_ready((state, stats))
        holder.update(state=state, keys=keys, step=step)

    return Side("Nerfies", run, flops, size.batch_size)


# --------------------------------------------------------------------------------------------
# Timing and the report.


def time_sides(sides: list[Side], steps: int, warmup: int, rounds: int) -> dict[str, float]:
    """Best seconds per step of each side over `rounds` rounds, the sides alternating.

    Each side first runs `warmup` untimed steps (compilation); in each round each side then
    runs `steps` steps timed together (the batches already on the devices).
    """
    for side in sides:
        side.run(warmup)
    best = {side.name: float("inf") for side in sides}
    for _ in range(rounds):
        for side in sides:
            start = time.perf_counter()
            side.run(steps)
            best[side.name] = min(best[side.name], (time.perf_counter() - start) / steps)
    return best


def mfu(flops: float, seconds: float, peak_gflops: float) -> float:
    """Achieved FLOP/s over the peak (NaN when a figure is unknown)."""
    if flops <= 0 or seconds <= 0 or peak_gflops <= 0:
        return float("nan")
    return flops / seconds / (peak_gflops * 1e9)


def report(sides: list[Side], seconds: dict[str, float], peak: float) -> list[str]:
    """The table's lines (markdown) and the ratio line."""
    lines = [
        "| side | batch | s/step | rays/s | GFLOP/step | GFLOP/s | MFU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side in sides:
        s = seconds[side.name]
        lines.append(
            f"| {side.name} | {side.batch_size} | {s:.3f} | {side.batch_size / s:.0f} | "
            f"{side.flops / 1e9:.1f} | {side.flops / s / 1e9:.1f} | "
            f"{mfu(side.flops, s, peak):.1%} |"
        )
    if "Nerfies" in seconds and "flamenerf" in seconds:
        ratio = seconds["Nerfies"] / seconds["flamenerf"]
        lines.append(
            f"flamenerf is {ratio:.2f}x Nerfies' speed "
            "(Nerfies s/step / flamenerf s/step; > 1: flamenerf faster)"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--nerfies",
        type=Path,
        default=None,
        help="google/nerfies: a git directory (e.g. a bare mirror) or a checkout "
        "(default: time flamenerf's side only)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compiling)")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds (best is kept)")
    parser.add_argument(
        "--losses",
        choices=("all", "rgb"),
        default="all",
        help="all: rgb + elastic + background; rgb: the photometric loss only",
    )
    defaults = Size()
    parser.add_argument("--batch_size", type=int, default=defaults.batch_size)
    parser.add_argument("--width", type=int, default=defaults.width, help="NeRF trunk width")
    parser.add_argument("--depth", type=int, default=defaults.depth, help="NeRF trunk depth")
    parser.add_argument("--coarse", type=int, default=defaults.coarse, help="coarse samples")
    parser.add_argument("--fine", type=int, default=defaults.fine, help="fine samples")
    parser.add_argument(
        "--background_points",
        type=int,
        default=defaults.background_points,
        help="Nerfies' background-loss points per device",
    )
    parser.add_argument("--matmul", type=int, default=2048, help="matmul size of the peak")
    args = parser.parse_args(argv)
    for name in ("steps", "rounds", "batch_size", "width", "depth", "coarse", "fine", "matmul"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: expected at least 1")
    if args.warmup < 1:
        parser.error(f"--warmup {args.warmup}: expected at least 1 (the first step compiles)")
    if args.coarse < 2:
        parser.error(f"--coarse {args.coarse}: expected at least 2")
    if args.background_points < 1:
        parser.error(f"--background_points {args.background_points}: expected at least 1")
    return args


def size_of(args: argparse.Namespace) -> Size:
    return Size(
        batch_size=args.batch_size,
        width=args.width,
        depth=args.depth,
        coarse=args.coarse,
        fine=args.fine,
        background_points=args.background_points,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Nerfies donates its batch, which a CPU cannot reuse: said once per compilation.
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    size = size_of(args)
    with tempfile.TemporaryDirectory(prefix="nerfies_") as scratch:
        root = None
        if args.nerfies is not None:
            try:  # before anything compiles: a bad --nerfies fails at once
                check_nerfies_dependencies()
                root = export_nerfies(args.nerfies.resolve(), Path(scratch))
                apply_patches(root)
            except NerfiesSourceError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
        peak = matmul_peak_gflops(args.matmul)
        print(f"devices: {jax.devices()}; fp32 matmul peak measured now: {peak:.0f} GFLOP/s")
        sides = [flamenerf_side(size, args.losses)]  # first: its gin is parsed before Nerfies'
        if root is not None:
            sides.append(nerfies_side(root, size, args.losses))
        else:
            print("no --nerfies: timing flamenerf's side only")
        seconds = time_sides(sides, args.steps, args.warmup, args.rounds)
    print(
        f"size: {size.width}x{size.depth} NeRF, {size.coarse}+{size.fine} samples, SE(3) warp, "
        f"{size.batch_size} rays, losses: {args.losses}; best of {args.rounds} rounds of "
        f"{args.steps} steps after {args.warmup} warm-up steps"
    )
    print("\n".join(report(sides, seconds, peak)))
    print(f"peak after: {matmul_peak_gflops(args.matmul):.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
