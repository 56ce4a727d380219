# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""LPIPS test inputs without torch: a torch.save writer, random weights and images.

`write_torch_file` is an independent writer of the two layouts `torch.save` produces (the zip
archive and the legacy file, see flamenerf/io/torch_files.py), written from torch's file
format, not from flamenerf's reader: tensors pickle as `torch._utils._rebuild_tensor_v2(
storage, offset, size, stride, False, OrderedDict())` with the storage as the persistent id
`('storage', torch.FloatStorage, key, 'cpu', numel[, None])`; the state dict is an
OrderedDict with `_metadata`, or (`py2_pairs`, as the lpips package's own files) built from a
list of [key, value] pairs. Shared by tests/evaluation/test_lpips.py, tests/io/test_torch_files.py,
tests/test_eval.py and tests/golden/lpips_reference.py (which recomputes the golden values
with the reference `lpips` package).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage"}
STORAGES[np.dtype("int64")] = "LongStorage"

# The architectures as torchvision defines them: (features index, out, in, kernel) per conv.
BACKBONES = {
    "alex": [
        (0, 64, 3, 11),
        (3, 192, 64, 5),
        (6, 384, 192, 3),
        (8, 256, 384, 3),
        (10, 256, 256, 3),
    ],
    "vgg": [
        (0, 64, 3, 3),
        (2, 64, 64, 3),
        (5, 128, 64, 3),
        (7, 128, 128, 3),
        (10, 256, 128, 3),
        (12, 256, 256, 3),
        (14, 256, 256, 3),
        (17, 512, 256, 3),
        (19, 512, 512, 3),
        (21, 512, 512, 3),
        (24, 512, 512, 3),
        (26, 512, 512, 3),
        (28, 512, 512, 3),
    ],
}
HEADS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
FILES = {"alex": ("alex.pth", "alexnet-owt-7be5be79.pth"), "vgg": ("vgg.pth", "vgg16-397923af.pth")}


class Global:
    """A global reference written as GLOBAL 'module name' (torch need not be importable)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle's save_reduce wants a callable
        raise TypeError("a stand-in")


REBUILD_V2 = Global("torch._utils", "_rebuild_tensor_v2")


class _Storage:
    def __init__(self, key: str, array: np.ndarray):
        self.key, self.array = key, np.ascontiguousarray(array).reshape(-1)


class _Tensor:
    def __init__(self, storage: _Storage, shape: tuple[int, ...]):
        self.storage, self.shape = storage, shape


class _Pairs:
    """An OrderedDict pickled as Python 2 did: OrderedDict([[key, value], ...]) + BUILD."""

    def __init__(self, items, state):
        self.items, self.state = items, state


class _Writer(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def _save_global_ref(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = _save_global_ref

    def persistent_id(self, obj):
        if not isinstance(obj, _Storage):
            return None
        kind = Global("torch", STORAGES[obj.array.dtype])
        pid = ("storage", kind, obj.key, "cpu", obj.array.size)
        return pid + (None,) if self.legacy else pid

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            stride, step = [], 1
            for n in reversed(obj.shape):
                stride.insert(0, step)
                step *= n
            hooks = collections.OrderedDict()
            args = (obj.storage, 0, tuple(obj.shape), tuple(stride), False, hooks)
            return REBUILD_V2, args
        if isinstance(obj, _Pairs):
            return (
                Global("collections", "OrderedDict"),
                ([list(kv) for kv in obj.items],),
                obj.state,
            )
        return NotImplemented


def state_pickle(tensors: dict, legacy: bool, py2_pairs: bool = False, keys=None):
    """(pickle bytes, [storages]) of a state dict of numpy arrays (or any picklable values)."""
    storages, items = [], []
    for index, (name, value) in enumerate(tensors.items()):
        if isinstance(value, np.ndarray):
            key = keys[index] if keys else str(index)
            storage = _Storage(key, value)
            storages.append(storage)
            value = _Tensor(storage, value.shape)
        items.append((name, value))
    metadata = collections.OrderedDict([("", {"version": 1})])
    if py2_pairs:
        root = _Pairs(items, {"_metadata": metadata})
    else:
        root = collections.OrderedDict(items)
        root._metadata = metadata
    buffer = io.BytesIO()
    _Writer(buffer, legacy).dump(root)
    return buffer.getvalue(), storages


def write_torch_file(
    path: Path, tensors: dict, legacy: bool = False, py2_pairs: bool = False
) -> Path:
    """`torch.save(state_dict, path)` of {name: numpy array}, as a zip archive or (`legacy`)
    as torch < 1.6 wrote it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if legacy:
        keys = [str(94000000000000 + 64 * i) for i in range(len(tensors))]  # like _cdata ids
        data, storages = state_pickle(tensors, True, py2_pairs, keys)
        with open(path, "wb") as f:
            pickle.dump(LEGACY_MAGIC, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            info = {"protocol_version": 1001, "little_endian": True}
            info["type_sizes"] = {"short": 2, "int": 4, "long": 4}
            pickle.dump(info, f, protocol=2)
            f.write(data)
            order = sorted(storages, key=lambda s: s.key)
            pickle.dump([s.key for s in order], f, protocol=2)
            for storage in order:
                f.write(struct.pack("<q", storage.array.size))
                f.write(storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
        return path
    data, storages = state_pickle(tensors, False, py2_pairs)
    prefix = path.stem or "archive"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{prefix}/data.pkl", data)
        archive.writestr(f"{prefix}/byteorder", "little")
        for storage in storages:
            archive.writestr(f"{prefix}/data/{storage.key}", storage.array.tobytes())
        archive.writestr(f"{prefix}/version", "3\n")
    return path


# --------------------------------------------------------------------------------------------
# Random weights and images (numpy's legacy RandomState: a stream fixed across versions).


def random_backbone(net: str, seed: int) -> dict[str, np.ndarray]:
    """torchvision-named features of random He-normal kernels and small random biases."""
    rng = np.random.RandomState(seed)
    weights = {}
    for index, out, cin, k in BACKBONES[net]:
        std = np.sqrt(2.0 / (cin * k * k))
        weights[f"features.{index}.weight"] = (rng.standard_normal((out, cin, k, k)) * std).astype(
            np.float32
        )
        weights[f"features.{index}.bias"] = (rng.standard_normal(out) * 0.1).astype(np.float32)
    return weights


def random_heads(net: str, seed: int) -> dict[str, np.ndarray]:
    """lpips-named linear heads (with dropout: `linL.model.1.weight`), non-negative."""
    rng = np.random.RandomState(seed)
    return {
        f"lin{layer}.model.1.weight": rng.uniform(0.0, 1.0, (1, c, 1, 1)).astype(np.float32)
        for layer, c in enumerate(HEADS[net])
    }


def write_weights(folder: Path, net: str, seed: int = 0, legacy: bool = False) -> Path:
    """The folder with random heads and backbone of `net` under their real file names; the
    backbone also gets a (small, random) classifier, which LPIPS does not read."""
    head_file, backbone_file = FILES[net]
    backbone = random_backbone(net, seed)
    backbone["classifier.1.weight"] = np.random.RandomState(seed + 1).standard_normal((4, 3))
    write_torch_file(folder / backbone_file, backbone, legacy)
    write_torch_file(folder / head_file, random_heads(net, seed + 2), legacy, py2_pairs=legacy)
    return folder


def image_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred, target) float32 in [0, 1] of `shape` (..., H, W, 3): a smooth random target and
    a prediction that differs by blur-like and noisy changes."""
    rng = np.random.RandomState(seed)
    coarse = rng.uniform(0, 1, shape[:-3] + (4, 4, 3))
    h, w = shape[-3], shape[-2]
    rows = np.minimum((np.arange(h) * 4) // h, 3)
    cols = np.minimum((np.arange(w) * 4) // w, 3)
    target = coarse[..., rows, :, :][..., :, cols, :] * 0.6 + rng.uniform(0, 0.4, shape)
    pred = np.clip(target + rng.normal(0, 0.1, shape), 0, 1)
    return pred.astype(np.float32), target.astype(np.float32)
