# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""LPIPS, the learned perceptual image distance (Zhang et al. 2018), in JAX.

The same computation as the reference `lpips` package (PyPI `lpips` 0.1.4, `LPIPS(net=...,
version='0.1')` called with `normalize=True`), for images in [0, 1]:

1. each image is mapped to [-1, 1] (`2 x - 1`), then through the scaling layer
   `(x - SHIFT) / SCALE` per RGB channel (the ImageNet statistics in [-1, 1] units);
2. the torchvision backbone's convolutional features are tapped after five ReLUs: AlexNet
   relu1..relu5 (64, 192, 384, 256, 256 channels) or VGG-16 relu1_2, relu2_2, relu3_3,
   relu4_3, relu5_3 (64, 128, 256, 512, 512 channels);
3. every feature vector is divided by its Euclidean norm over channels (plus 1e-10);
4. the squared difference of the two images' normalised features goes through the learned
   1x1 linear head of its layer (non-negative weights, no bias), is averaged over the layer's
   pixels, and the five layers' values are summed.

0 for identical images; larger is more different. Head-avatar papers report the AlexNet
variant, the default here.

Images are (..., H, W, 3) float arrays in [0, 1]; every function is pure and can be wrapped
in `jax.jit` (the weights are a pytree, the network name static). AlexNet needs H, W >= 31
and VGG-16 H, W >= 16 (`min_side`); smaller images have no features at the last layers.

Weights are the user's files, never downloaded (README, "Evaluation and rendering"): one
folder (`--lpips_weights DIR` on `python -m flamenerf.eval`, else `$FLAMENERF_LPIPS`, else
`cache_root()/lpips/`) holding, per network, the `lpips` package's linear heads
(`alex.pth`, `vgg.pth`: `lpips/weights/v0.1/` inside the lpips wheel) and torchvision's
ImageNet checkpoint (`alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`). They are read
without torch by `flamenerf.io.torch_files` (the restricted unpickler: a hostile file is
refused before anything runs). `enable` registers the metric (`lpips` for AlexNet,
`lpips_vgg` for VGG-16) in `flamenerf.evaluation.metrics.METRICS` when the files are there,
and otherwise returns the one-line note `eval` prints. Training-time validation does not
compute LPIPS (`Metric.validation` False): it needs the user's files and would make
metrics.jsonl depend on their presence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from flamenerf.errors import UserError
from flamenerf.evaluation import metrics
from flamenerf.io import torch_files
from flamenerf.io.paths import cache_root

__all__ = [
    "ENV",
    "EPS",
    "NETWORKS",
    "SCALE",
    "SHIFT",
    "Conv",
    "LpipsWeights",
    "Network",
    "Stage",
    "disable",
    "enable",
    "enabled",
    "feature_shapes",
    "features",
    "frame_metric",
    "layer_distances",
    "load_weights",
    "lpips",
    "min_side",
    "missing_files",
    "normalize_channels",
    "scale_input",
    "weights_folder",
]

ENV = "FLAMENERF_LPIPS"  # the weight folder when --lpips_weights is not given
# lpips.ScalingLayer: per-channel shift and scale of images in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor: f / (||f|| + EPS)
POOL_STRIDE = 2  # every max-pooling of both backbones


@dataclasses.dataclass(frozen=True)
class Conv:
    """A convolution of torchvision's `features`, followed by a ReLU.

    Attributes:
      index: its position in `features` (the checkpoint's `features.{index}.weight`/`bias`).
      channels: output channels; kernel, stride, padding: square, in pixels.
    """

    index: int
    channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1


@dataclasses.dataclass(frozen=True)
class Stage:
    """One slice of the backbone: an optional max-pooling (window `pool`, stride 2, no
    padding, floor), then convolutions with ReLUs; its output is one LPIPS layer."""

    pool: int | None
    convs: tuple[Conv, ...]


@dataclasses.dataclass(frozen=True)
class Network:
    """An LPIPS variant: where its weights come from and its five stages.

    Attributes:
      name: "alex" or "vgg" (the reference's `net=`).
      metric: its name in the metrics registry and the results table.
      head_file: the lpips package's linear heads (`lpips/weights/v0.1/NAME.pth`).
      backbone_file: torchvision's ImageNet checkpoint.
      backbone_url: where torchvision publishes that checkpoint (for the user to fetch).
      stages: the slices of `features` up to each tapped ReLU.
    """

    name: str
    metric: str
    head_file: str
    backbone_file: str
    backbone_url: str
    stages: tuple[Stage, ...]

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the five tapped layers (the sizes of the linear heads)."""
        return tuple(stage.convs[-1].channels for stage in self.stages)

    @property
    def convs(self) -> tuple[Conv, ...]:
        return tuple(conv for stage in self.stages for conv in stage.convs)


# torchvision.models.alexnet().features: Conv(3, 64, 11, 4, 2), ReLU, MaxPool(3, 2),
# Conv(64, 192, 5, 1, 2), ReLU, MaxPool(3, 2), Conv(192, 384, 3, 1, 1), ReLU,
# Conv(384, 256, 3, 1, 1), ReLU, Conv(256, 256, 3, 1, 1), ReLU, MaxPool(3, 2); LPIPS taps
# the five ReLUs (lpips.pretrained_networks.alexnet: slices [0, 2), [2, 5), [5, 8), [8, 10),
# [10, 12)).
ALEXNET = Network(
    name="alex",
    metric="lpips",
    head_file="alex.pth",
    backbone_file="alexnet-owt-7be5be79.pth",
    backbone_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    stages=(
        Stage(None, (Conv(0, 64, 11, 4, 2),)),
        Stage(3, (Conv(3, 192, 5, 1, 2),)),
        Stage(3, (Conv(6, 384),)),
        Stage(None, (Conv(8, 256),)),
        Stage(None, (Conv(10, 256),)),
    ),
)
# torchvision.models.vgg16().features: 13 convolutions (3x3, padding 1), each with a ReLU,
# in blocks of 2, 2, 3, 3, 3 separated by MaxPool(2, 2); LPIPS taps each block's last ReLU
# (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: slices [0, 4), [4, 9), [9, 16), [16, 23),
# [23, 30)).
VGG16 = Network(
    name="vgg",
    metric="lpips_vgg",
    head_file="vgg.pth",
    backbone_file="vgg16-397923af.pth",
    backbone_url="https://download.pytorch.org/models/vgg16-397923af.pth",
    stages=(
        Stage(None, (Conv(0, 64), Conv(2, 64))),
        Stage(2, (Conv(5, 128), Conv(7, 128))),
        Stage(2, (Conv(10, 256), Conv(12, 256), Conv(14, 256))),
        Stage(2, (Conv(17, 512), Conv(19, 512), Conv(21, 512))),
        Stage(2, (Conv(24, 512), Conv(26, 512), Conv(28, 512))),
    ),
)
NETWORKS = {network.name: network for network in (ALEXNET, VGG16)}


def _network(net: str) -> Network:
    try:
        return NETWORKS[net]
    except KeyError:
        raise UserError(f"lpips: network {net!r}: expected one of {sorted(NETWORKS)}") from None


@struct.dataclass
class LpipsWeights:
    """The weights of one LPIPS variant (a pytree; `net` is static).

    Attributes:
      net: "alex" or "vgg".
      kernels: per convolution, in order, (out, in, k, k) float32 (torchvision's OIHW).
      biases: per convolution, (out,) float32.
      heads: per tapped layer, (channels,) float32 >= 0: the linear heads' 1x1 weights.
    """

    net: str = struct.field(pytree_node=False)
    kernels: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]
    heads: tuple[jax.Array, ...]


# ------------------------------------------------------------------------------------------
# The computation.


def _side(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output size of a convolution or pooling window (floor, as torch)."""
    return (size + 2 * padding - kernel) // stride + 1


def feature_shapes(net: str, height: int, width: int) -> list[tuple[int, int]]:
    """(h, w) of each tapped layer for an H x W image; a side < 1 means too small an image."""
    shapes, h, w = [], height, width
    for stage in _network(net).stages:
        if stage.pool is not None:
            h, w = _side(h, stage.pool, POOL_STRIDE), _side(w, stage.pool, POOL_STRIDE)
        for conv in stage.convs:
            h = _side(h, conv.kernel, conv.stride, conv.padding)
            w = _side(w, conv.kernel, conv.stride, conv.padding)
        shapes.append((h, w))
    return shapes


def min_side(net: str) -> int:
    """The smallest image side every layer of the network has pixels for (31 for AlexNet,
    16 for VGG-16)."""
    side = 1
    while min(h for h, _ in feature_shapes(net, side, side)) < 1:
        side += 1
    return side


def scale_input(images: jax.Array) -> jax.Array:
    """Images in [0, 1] to the backbone's input: `(2 x - 1 - SHIFT) / SCALE`.

    Args:
      images: (..., 3).

    Returns:
      (..., 3) float.
    """
    x = 2 * images - 1
    return (x - jnp.asarray(SHIFT, x.dtype)) / jnp.asarray(SCALE, x.dtype)


def _conv(x: jax.Array, kernel: jax.Array, bias: jax.Array, conv: Conv) -> jax.Array:
    """Convolution + bias + ReLU. x: (N, H, W, C_in); kernel (C_out, C_in, k, k) ->
    (N, H', W', C_out)."""
    y = jax.lax.conv_general_dilated(
        x,
        kernel.astype(x.dtype),
        window_strides=(conv.stride, conv.stride),
        padding=((conv.padding, conv.padding), (conv.padding, conv.padding)),
        dimension_numbers=("NHWC", "OIHW", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return jax.nn.relu(y + bias.astype(x.dtype))


def _max_pool(x: jax.Array, window: int) -> jax.Array:
    """Max-pooling, stride 2, no padding, floor. x: (N, H, W, C) -> (N, H', W', C)."""
    return jax.lax.reduce_window(
        x,
        -jnp.inf,
        jax.lax.max,
        (1, window, window, 1),
        (1, POOL_STRIDE, POOL_STRIDE, 1),
        "VALID",
    )


def features(weights: LpipsWeights, x: jax.Array) -> list[jax.Array]:
    """The five tapped ReLU outputs of the backbone.

    Args:
      weights: the variant's weights.
      x: (N, H, W, 3) scaled input (`scale_input`).

    Returns:
      Five (N, h_l, w_l, C_l) arrays (`feature_shapes`, `Network.channels`).
    """
    network = _network(weights.net)
    taps, index = [], 0
    for stage in network.stages:
        if stage.pool is not None:
            x = _max_pool(x, stage.pool)
        for conv in stage.convs:
            x = _conv(x, weights.kernels[index], weights.biases[index], conv)
            index += 1
        taps.append(x)
    return taps


def normalize_channels(f: jax.Array) -> jax.Array:
    """Each feature vector divided by its Euclidean norm (+ EPS). f: (..., C) -> (..., C)."""
    return f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + EPS)


def _check_images(net: str, pred: jax.Array, target: jax.Array) -> None:
    if pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"lpips: pred: expected shape (..., H, W, 3), got {pred.shape}")
    if pred.shape != target.shape:
        raise ValueError(
            f"lpips: target: expected the shape of pred {pred.shape}, got {target.shape}"
        )
    if min(pred.shape[-3:-1]) < min_side(net):
        raise ValueError(
            f"lpips: pred: expected H and W >= {min_side(net)} for the {net} network, got "
            f"shape {pred.shape}"
        )


def layer_distances(weights: LpipsWeights, pred: jax.Array, target: jax.Array) -> jax.Array:
    """The five layers' terms of LPIPS (their sum is `lpips`).

    Args:
      weights: the variant's weights.
      pred, target: (..., H, W, 3) images in [0, 1], H and W >= `min_side`.

    Returns:
      (..., 5): per layer, the spatial mean of the head-weighted squared difference of the
      channel-normalised features.
    """
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    if not jnp.issubdtype(pred.dtype, jnp.floating):
        pred, target = pred.astype(jnp.float32), target.astype(jnp.float32)
    _check_images(weights.net, pred, target)
    lead, image = pred.shape[:-3], pred.shape[-3:]
    both = jnp.concatenate([pred.reshape((-1, *image)), target.reshape((-1, *image))])
    n = both.shape[0] // 2
    terms = []
    for feature, head in zip(features(weights, scale_input(both)), weights.heads, strict=True):
        f = normalize_channels(feature)
        diff = (f[:n] - f[n:]) ** 2  # (N, h, w, C)
        weighted = jnp.einsum(
            "nhwc,c->nhw", diff, head.astype(diff.dtype), precision=jax.lax.Precision.HIGHEST
        )
        terms.append(jnp.mean(weighted, axis=(-2, -1)))
    return jnp.stack(terms, axis=-1).reshape((*lead, len(terms)))


def lpips(weights: LpipsWeights, pred: jax.Array, target: jax.Array) -> jax.Array:
    """LPIPS of each image pair (the reference's `LPIPS(...)(pred, target, normalize=True)`).

    Args:
      weights: the variant's weights (`load_weights`).
      pred, target: (..., H, W, 3) images in [0, 1], H and W >= `min_side(weights.net)`.

    Returns:
      (...) distance per pair; 0 for identical images.
    """
    terms = layer_distances(weights, pred, target)
    total = terms[..., 0]
    for layer in range(1, terms.shape[-1]):  # the reference's order of summation
        total = total + terms[..., layer]
    return total


# ------------------------------------------------------------------------------------------
# The weight files.


def weights_folder(folder: str | os.PathLike | None = None) -> Path:
    """Where the weight files are: `folder`, else `$FLAMENERF_LPIPS`, else
    `cache_root()/lpips/` (`~` expanded)."""
    chosen = folder or os.environ.get(ENV) or cache_root() / "lpips"
    return Path(chosen).expanduser()


def missing_files(folder: str | os.PathLike | None, net: str = "alex") -> list[str]:
    """The variant's weight files (head, backbone) that are not in the folder."""
    network, root = _network(net), weights_folder(folder)
    return [f for f in (network.head_file, network.backbone_file) if not (root / f).is_file()]


def _checked(path: Path, key: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if array.shape != shape or array.dtype.kind != "f":
        raise UserError(
            f"{path}: {key!r} has shape {array.shape} and dtype {array.dtype}; expected "
            f"{shape} floats (the {path.name} of torchvision/lpips)"
        )
    if not np.all(np.isfinite(array)):
        raise UserError(f"{path}: {key!r} holds non-finite values")
    return array.astype(np.float32)


def _head_key(layer: int, names: Sequence[str]) -> str:
    """`linL.model.1.weight` (lpips with dropout, as published), else `linL.model.0.weight`."""
    for key in (f"lin{layer}.model.1.weight", f"lin{layer}.model.0.weight"):
        if key in names:
            return key
    return f"lin{layer}.model.1.weight"


def load_weights(folder: str | os.PathLike | None = None, net: str = "alex") -> LpipsWeights:
    """Reads a variant's linear heads and backbone from the weight folder, without torch.

    Args:
      folder: the folder (None: `weights_folder()`).
      net: "alex" or "vgg".

    Returns:
      The weights, as device arrays.

    Raises:
      UserError: naming the file: missing, not a readable torch checkpoint or refused
        (`flamenerf.io.torch_files`), a missing tensor, a wrong shape, non-finite values, or
        negative head weights.
    """
    network, root = _network(net), weights_folder(folder)
    backbone_path = root / network.backbone_file
    keys = [f"features.{c.index}.{p}" for c in network.convs for p in ("weight", "bias")]
    backbone = torch_files.load_state_dict(backbone_path, keys)
    kernels, biases, channels_in = [], [], 3
    for conv in network.convs:
        shape = (conv.channels, channels_in, conv.kernel, conv.kernel)
        name = f"features.{conv.index}"
        kernels.append(_checked(backbone_path, f"{name}.weight", backbone[f"{name}.weight"], shape))
        biases.append(
            _checked(backbone_path, f"{name}.bias", backbone[f"{name}.bias"], (conv.channels,))
        )
        channels_in = conv.channels
    head_path = root / network.head_file
    heads_file = torch_files.load_state_dict(head_path)
    heads = []
    for layer, channels in enumerate(network.channels):
        key = _head_key(layer, list(heads_file))
        if key not in heads_file:
            raise UserError(
                f"{head_path}: no {key!r}; expected the lpips package's linear heads "
                f"(lin0..lin4), found {', '.join(list(heads_file)[:6]) or 'nothing'}"
            )
        head = _checked(head_path, key, heads_file[key], (1, channels, 1, 1)).reshape(channels)
        if np.any(head < 0):
            raise UserError(
                f"{head_path}: {key!r} has negative weights (min {head.min():.3g}); the lpips "
                "linear heads are non-negative"
            )
        heads.append(head)
    return LpipsWeights(
        net=network.name,
        kernels=tuple(jnp.asarray(k) for k in kernels),
        biases=tuple(jnp.asarray(b) for b in biases),
        heads=tuple(jnp.asarray(h) for h in heads),
    )


# ------------------------------------------------------------------------------------------
# The metric in the registry.

_LPIPS_JIT = jax.jit(lpips)


def frame_metric(weights: LpipsWeights) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """A "frame" metric of the registry: fn(pred (H, W, 3), target (H, W, 3), mask) -> float,
    jitted (compiled once per image shape); NaN for images smaller than `min_side`."""
    smallest = min_side(weights.net)

    def value(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
        del mask
        pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
        if min(pred.shape[:2]) < smallest:
            return math.nan
        return float(_LPIPS_JIT(weights, pred, target))

    return value


def _note(folder: Path, missing: dict[str, list[str]]) -> str:
    """The one line `eval` prints when weight files are absent."""
    parts = []
    for net, files in missing.items():
        network = NETWORKS[net]
        origin = {
            network.head_file: f"the lpips wheel's lpips/weights/v0.1/{network.head_file}",
            network.backbone_file: "torchvision's checkpoint",
        }
        parts.append(", ".join(f"{f} ({origin[f]})" for f in files))
    names = ", ".join(NETWORKS[net].metric for net in missing)
    return (
        f"note: {names} skipped: no weights in {folder}; put {'; '.join(parts)} there, or pass "
        f"--lpips_weights DIR or set {ENV} (README: Evaluation and rendering)"
    )


def enable(folder: str | os.PathLike | None = None, nets: Sequence[str] = ("alex",)) -> str | None:
    """Registers the LPIPS metric of each variant whose weight files are in the folder.

    Each is a "frame" metric (`lpips` for AlexNet, `lpips_vgg` for VGG-16, format ".4f", a
    table column, not part of training-time validation) placed after `ms_ssim_scales`; a
    previous registration of the same name is replaced. A variant whose files are absent is
    unregistered.

    Args:
      folder: the weight folder (None: `weights_folder()`).
      nets: the variants, "alex" and/or "vgg".

    Returns:
      None when every variant was registered, else one line saying which files to put where.

    Raises:
      UserError: a weight file is present but unreadable, refused or of the wrong shape.
    """
    root = weights_folder(folder)
    missing = {}
    after = "ms_ssim_scales"
    for net in dict.fromkeys(nets):  # each once, in order
        network = _network(net)
        metrics.unregister(network.metric)
        absent = missing_files(root, net)
        if absent:
            missing[net] = absent
            continue
        fn = frame_metric(load_weights(root, net))
        metrics.register(metrics.Metric(network.metric, "frame", fn, format=".4f"), after=after)
        after = network.metric
    return _note(root, missing) if missing else None


def disable(nets: Sequence[str] = tuple(NETWORKS)) -> None:
    """Removes the LPIPS metrics from the registry."""
    for net in nets:
        metrics.unregister(_network(net).metric)


@contextlib.contextmanager
def enabled(
    folder: str | os.PathLike | None = None, nets: Sequence[str] = ("alex",)
) -> Iterator[str | None]:
    """`enable` for the duration of a `with` block (yields its note), then `disable`."""
    try:
        yield enable(folder, nets)
    finally:
        disable(nets)
