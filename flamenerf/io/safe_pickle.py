# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Safe unpickling of the pickle formats flamenerf reads, with one allow-list per format.

flamenerf reads pickles it did not write: the official FLAME model (`generic_model.pkl`, a
Python 2 pickle of chumpy arrays), metrical-tracker's checkpoints (torch.save zips whose
`data.pkl` holds numpy arrays) and PyTorch state dicts (LPIPS weights: the `lpips` package's
linear heads, torchvision's backbones; the files are read by `flamenerf.io.torch_files`). A
pickle is a program: unpickled naively it can call any importable function, and even a
restricted one can allocate gigabytes from a few bytes. A file is therefore read in three
layers, and refused (`PickleRefused`, a ValueError naming the file) as soon as one of them
objects:

1. `prescan`: before anything is built, the opcode stream is walked with `pickletools.genops`
   through a zero-copy reader (long arguments such as array data, binary or protocol-0 text,
   are stepped over, not copied). It refuses unknown opcodes and truncated streams, declared
   lengths beyond the file's remaining bytes, memo indices beyond the opcodes read so far or
   never stored (a C unpickler allocates a memo of that size), and streams whose opcode
   count, stack depth, MARK nesting, text-argument or integer size exceed the caps below. Its
   cost is bounded by `MAX_OPCODES`, whatever the file size.
2. `loads`: a restricted unpickler (the pure-Python `pickle._Unpickler`, whose opcode handlers
   can be overridden) resolves only the globals of the format's allow-list, mapped to checking
   wrappers, never to the real callables:
     * `numpy.core.multiarray._reconstruct` (numpy 1 and 2 paths): only with the `numpy.ndarray`
       marker, a shape of at most one element and the dtype code 'b', which is what numpy
       always writes; the array gets its data from the next BUILD.
     * `numpy.ndarray`: a marker that is not callable; only `_reconstruct` accepts it.
     * `numpy.dtype`: numeric, string and bool dtypes only (kinds `biufcSU`); object ('O'),
       void/structured, datetime and sub-array dtypes are refused. Always a fresh copy.
     * `numpy.core.multiarray.scalar`: the same dtypes, with exactly `itemsize` bytes.
     * `numpy.core.numeric._frombuffer` (numpy's protocol-5 form): the same dtypes, a copy of
       exactly the bytes the shape needs.
     * `_codecs.encode` (how Python 3 writes bytes at protocol 2): only `encode(str, 'latin1')`.
     * FLAME only: `chumpy.ch.Ch` and `scipy.sparse.csc.csc_matrix`/`csr_matrix` (also the
       newer module paths) resolve to the stand-ins `ChumpyArray` and `SparseMatrix`, which
       keep their pickled state (chumpy and scipy are never imported for it);
       `__builtin__.set` (a Ch state holds `_dirty_vars`, a set) builds a set of plain
       hashable values (str, bytes, int, float, bool, None); `copy_reg._reconstructor` and
       `__builtin__.object` (protocol 0/1 pickles of new-style objects) only as
       `_reconstructor(stand-in class, object, None)`.
     * Torch state dicts only (`TORCH_CHECKPOINT`): `collections.OrderedDict` builds a
       `TorchDict` (a dict; empty, or from a list of (plain key, value) pairs; a BUILD may set
       only its `_metadata`, which is dropped); `torch.FloatStorage` and the other typed
       storages are markers accepted only inside a persistent id
       `('storage', type, key, location, numel[, view])`, which the caller's `TorchStorages`
       turns into an inert `TorchStorage` record (dtype and size; no data); and
       `torch._utils._rebuild_tensor`, `_rebuild_tensor_v2` (requires_grad a bool, empty hooks,
       no metadata) and `_rebuild_parameter` build a `TorchTensor` record (storage, offset,
       shape, strides: ints checked like array shapes). torch is never imported; the file
       reader fills the storages' data afterwards and `TorchTensor.to_numpy` checks that the
       strided view lies inside its storage before copying it.
   Every other global is refused before it runs, and so are persistent ids (except a torch
   state dict's storages). The opcodes that call or mutate are checked too: REDUCE calls only
   those wrappers; NEWOBJ/INST/OBJ create only stand-ins, without arguments; BUILD sets the
   state of a numpy array (a numeric dtype, a shape of at most `MAX_NDIM` dims and exactly
   `nbytes` of data), of a numpy dtype (no fields, no sub-array, its own flags: a forged flags
   word could make float data be read as object pointers), of a stand-in (a dict) or a
   `TorchDict`'s `_metadata`; dict keys and set items must be plain hashable
   values (hashing a nested tuple can take exponential time), and items go only into real
   lists, dicts and sets.
3. The caller checks what it gets: `check_tree` walks a result with a node budget (a pickle
   can share sub-lists so that a few hundred bytes expand to 2**40 elements: "billion laughs")
   and a depth limit; the stand-ins' `to_numpy` validate their state (a chumpy `x` must be an
   array, a sparse matrix must be well-formed and at most `MAX_SPARSE_DENSE_ENTRIES` when
   densified). `flamenerf.geometry.flame` requires arrays for the model keys.

Usage:

    content = safe_pickle.load_file("generic_model.pkl", safe_pickle.FLAME_MODEL)
    payload = safe_pickle.loads(data, "frame.frame", safe_pickle.TORCH_FRAME)
    safe_pickle.check_tree(payload, "frame.frame", safe_pickle.TORCH_FRAME)
    tree = safe_pickle.loads(data, "alex.pth", safe_pickle.TORCH_CHECKPOINT, TorchStorages())

The bound: a hostile file of any size up to a real FLAME model's (~100 MB) is refused in well
under a second with a few megabytes of extra memory (the file itself is memory-mapped, not
read). Legitimate data costs what it costs: an array's bytes are copied into the array.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import mmap
import os
import pickle
import pickletools
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from flamenerf.errors import UserError

# --------------------------------------------------------------------------------------------
# Limits. A real FLAME pickle is 50-100 MB but has only a few hundred to a few thousand opcodes
# (about 40 per array and 50 per chumpy array, a dozen arrays: the tests' official-style file
# has 522, 720 at protocol 0), at most 34 items on the stack and MARKs nested 4 deep; a
# metrical-tracker frame is a few kilobytes with a few hundred opcodes. Each cap leaves a wide
# margin over that and still bounds what a hostile file can make the reader do.

# Opcodes read before the file is refused: 20x a few thousand; the pre-scan reads them in about
# 0.2 s, and the unpickler builds at most one object per opcode.
MAX_OPCODES = 100_000
# Items on the unpickler's stack. Picklers batch APPENDS/SETITEMS in runs of 1000 items (2000
# stack entries for a dict); 10,000 allows a few such batches to nest.
MAX_STACK_DEPTH = 10_000
# MARKs open at once (tuples, lists, dicts being built inside each other): FLAME uses 4.
MAX_MARK_DEPTH = 64
# A text-mode argument (GLOBAL module/name, protocol-0 numbers and strings) up to its newline.
MAX_LINE_BYTES = 1 << 16
# A LONG1/LONG4 integer's bytes: no FLAME or tracker file stores an integer this large.
MAX_LONG_BYTES = 64
# Array dimensions, each dimension, total elements (zero-size arrays included) and item size.
MAX_NDIM = 32
MAX_ELEMENTS = 1 << 40
MAX_ITEMSIZE = 1 << 10
# Entries of a densified sparse matrix: FLAME's J_regressor has 5 x 5023 = 25k (4M is 32 MB
# of float64).
MAX_SPARSE_DENSE_ENTRIES = 1 << 22
# Values `check_tree` visits (a shared value is counted each time it is reached) and depth.
MAX_TREE_NODES = 100_000
MAX_TREE_DEPTH = 32
# Arguments up to this size are copied by the pre-scan's reader; longer ones are skipped.
_SCAN_COPY_LIMIT = 1 << 12

# Hashable values allowed as dict keys and set items.
PLAIN_KEY_TYPES = (str, bytes, int, float, bool, type(None))
# numpy dtype kinds an array or scalar may have: bool, signed/unsigned int, float, complex,
# bytes, unicode. Not object ('O'), void/structured ('V'), datetime ('M', 'm').
ARRAY_KINDS = "biufcSU"


class PickleRefused(UserError):
    """A pickle was refused or unreadable; the message names the file and the reason."""


class _Refusal(Exception):
    """Raised inside the unpickler's wrappers; `loads` adds the file name."""


def _short(value: Any, limit: int = 80) -> str:
    """A bounded description of a value: its repr for short plain values, else its type."""
    if isinstance(value, _Marker):
        return value.name
    if isinstance(value, int) and abs(value) >= 1 << 64:
        return "a large int"
    if isinstance(value, PLAIN_KEY_TYPES) and not isinstance(value, str | bytes):
        text = repr(value)
    elif isinstance(value, str | bytes) and len(value) <= limit:
        text = repr(value)
    else:
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Stand-ins for the classes a FLAME pickle names.


class StandIn:
    """Base of the stand-in classes: an instance keeps the pickled state dict, nothing runs."""

    state: dict[str, Any] = types.MappingProxyType({})  # until a BUILD sets it

    def __setstate__(self, state: Any) -> None:
        if type(state) is not dict or not all(type(k) is str for k in state):
            raise _Refusal(
                f"the state of a {type(self).__name__} must be a dict with string keys, "
                f"found {_short(state)}"
            )
        self.state = state

    def to_numpy(self, where: str) -> np.ndarray:
        raise NotImplementedError


def _numeric_array(value: Any, where: str, field: str) -> np.ndarray:
    """`value` as an ndarray if it already is one (or a number); lists etc. are refused."""
    if isinstance(value, np.ndarray | np.generic) or type(value) in (int, float, bool):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array
        raise PickleRefused(f"{where}: {field} has dtype {array.dtype}; expected numbers")
    raise PickleRefused(f"{where}: {field} is {_short(value)}; expected a numpy array")


class ChumpyArray(StandIn):
    """Stand-in for `chumpy.ch.Ch`. chumpy pickles a Ch's whole `__dict__` except `_parents`
    and `_cache`: the array `x` beside `_dirty_vars` (a set), `_itr` (None),
    `_depends_on_deps` (a dict), `_make_dense` and `_make_sparse` (bools). Only `x` is used."""

    def to_numpy(self, where: str) -> np.ndarray:
        """The array `x` (an ndarray or a number; anything else is refused)."""
        if "x" not in self.state:  # also a Ch whose state was never set
            raise PickleRefused(f"{where}: a chumpy object without its array ('x' in its state)")
        return _numeric_array(self.state["x"], where, "the chumpy array 'x'")


class SparseMatrix(StandIn):
    """Stand-in for a pickled scipy sparse matrix (legacy `scipy.sparse.csc.csc_matrix`;
    state `_shape`, `indices`, `indptr`, `data`, `maxprint`)."""

    fmt = "csc"

    def to_numpy(self, where: str) -> np.ndarray:
        """The dense matrix, after checking the compressed structure (indices in range,
        monotonic `indptr`) and that it has at most MAX_SPARSE_DENSE_ENTRIES entries."""
        state = self.state
        missing = [k for k in ("_shape", "data", "indices", "indptr") if k not in state]
        if missing:
            raise PickleRefused(f"{where}: malformed sparse matrix state (missing {missing})")
        shape = state["_shape"]
        if (
            type(shape) is not tuple
            or len(shape) != 2
            or not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape)
        ):
            raise PickleRefused(
                f"{where}: sparse matrix '_shape' is {_short(shape)}; expected 2 sizes"
            )
        rows, cols = shape
        if rows * cols > MAX_SPARSE_DENSE_ENTRIES:
            raise PickleRefused(
                f"{where}: sparse matrix of shape {shape} has more than "
                f"{MAX_SPARSE_DENSE_ENTRIES} entries when dense"
            )
        data = _numeric_array(state["data"], where, "sparse matrix 'data'")
        indices = _numeric_array(state["indices"], where, "sparse matrix 'indices'")
        indptr = _numeric_array(state["indptr"], where, "sparse matrix 'indptr'")
        major, minor = (cols, rows) if self.fmt == "csc" else (rows, cols)
        ok = (
            data.ndim == indices.ndim == indptr.ndim == 1
            and indices.dtype.kind in "iu"
            and indptr.dtype.kind in "iu"
            and len(indptr) == major + 1
            and len(data) == len(indices)
        )
        ok = ok and int(indptr[0]) == 0 and int(indptr[-1]) == len(indices)
        ok = ok and bool(np.all(np.diff(indptr.astype(np.int64)) >= 0))
        ok = ok and bool(np.all((indices >= 0) & (indices < minor)))
        if not ok:
            raise PickleRefused(
                f"{where}: malformed sparse matrix state ({self.fmt}, shape {shape}, "
                f"{len(data)} values, {len(indptr)} pointers)"
            )
        build = scipy.sparse.csc_matrix if self.fmt == "csc" else scipy.sparse.csr_matrix
        return np.asarray(build((data, indices, indptr), shape=shape).toarray())


class SparseMatrixCsr(SparseMatrix):
    """Stand-in for a pickled `scipy.sparse.csr_matrix`."""

    fmt = "csr"


# --------------------------------------------------------------------------------------------
# Checking wrappers that allowed globals resolve to.


class _Marker:
    """A non-callable placeholder for a global that may only be passed as an argument."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


NDARRAY = _Marker("numpy.ndarray")


def _check_shape(shape: Any, what: str) -> int:
    """Number of elements of a shape tuple, refusing anything but small non-negative ints."""
    if type(shape) is not tuple or len(shape) > MAX_NDIM:
        raise _Refusal(f"{what}: shape {_short(shape)}; expected a tuple of <= {MAX_NDIM} sizes")
    if not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise _Refusal(f"{what}: shape {_short(shape)} has a size that is not an int in range")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise _Refusal(f"{what}: shape {shape} has more than {MAX_ELEMENTS} elements")
    return count


def _check_dtype(dtype: Any, what: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _Refusal(f"{what}: expected a numpy dtype, found {_short(dtype)}")
    if (
        dtype.kind not in ARRAY_KINDS
        or dtype.hasobject
        or dtype.fields is not None
        or dtype.subdtype is not None
        or not 1 <= dtype.itemsize <= MAX_ITEMSIZE
    ):
        raise _Refusal(f"{what}: dtype {dtype.str} is not a plain numeric or string dtype")
    return dtype


def _numpy_reconstruct(subtype: Any, shape: Any, code: Any) -> np.ndarray:
    """numpy's `_reconstruct(ndarray, (0,), b'b')`: an empty array awaiting its BUILD state."""
    if subtype is not NDARRAY:
        raise _Refusal(f"numpy _reconstruct of {_short(subtype)}; only numpy.ndarray is allowed")
    if _check_shape(shape, "numpy _reconstruct") > 1 or code not in ("b", b"b"):
        raise _Refusal(
            f"numpy _reconstruct with shape {_short(shape)} and code {_short(code)}; "
            "numpy writes (0,) and 'b'"
        )
    return np.empty(shape, np.int8)


def _numpy_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """`numpy.dtype(spec, align, copy)` for plain dtypes; always a copy (never numpy's shared
    instance, which a following BUILD would otherwise modify for the whole process)."""
    del copy
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if type(spec) is not str or len(spec) > 16 or type(align) not in (bool, int):
        raise _Refusal(f"numpy.dtype({_short(spec)}, {_short(align)}); expected a type code")
    try:
        dtype = np.dtype(spec, align=bool(align), copy=True)
    except (TypeError, ValueError) as error:
        raise _Refusal(f"numpy.dtype({spec!r}): {error}") from None
    return _check_dtype(dtype, f"numpy.dtype({spec!r})")


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    """numpy's `scalar(dtype, bytes)`: one value of a plain dtype from exactly its bytes."""
    dtype = _check_dtype(dtype, "numpy scalar")
    if isinstance(data, str):
        data = data.encode("latin1")  # Python 2 pickles store the bytes as a str
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise _Refusal(f"numpy scalar of {dtype.str} from {_short(data)}")
    return np.frombuffer(data, dtype)[0]


def _numpy_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's `_frombuffer(buffer, dtype, shape, order)`, how numpy pickles an array at
    protocol 5 (Python 3.14's default): a copy of exactly `prod(shape) * itemsize` bytes."""
    dtype = _check_dtype(dtype, "numpy _frombuffer")
    count = _check_shape(shape, "numpy _frombuffer")
    if type(buffer) not in (bytes, bytearray) or order not in ("C", "F"):
        raise _Refusal(f"numpy _frombuffer of {_short(buffer)} in order {_short(order)}")
    if len(buffer) != count * dtype.itemsize:
        raise _Refusal(
            f"numpy _frombuffer: {len(buffer)} bytes for shape {shape} of {dtype.str}; "
            f"expected {count * dtype.itemsize}"
        )
    return np.frombuffer(buffer, dtype).reshape(shape, order=order).copy(order=order)


def _codecs_encode(text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
    """`_codecs.encode(text, 'latin1')`, how Python 3 writes bytes at protocols 0-2."""
    if type(text) is not str or encoding != "latin1" or rest:
        raise _Refusal(
            f"_codecs.encode({_short(text)}, {_short(encoding)}): only the latin1 encoding of "
            "a string is allowed"
        )
    return text.encode("latin1")


def _plain_items(items: Any, what: str) -> Any:
    for item in items:
        if type(item) not in PLAIN_KEY_TYPES:
            raise _Refusal(f"{what} holds {_short(item)}; only str, bytes, numbers and None")
    return items


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    """Key-value pairs of a SETITEMS/DICT run, keys checked before anything hashes them."""
    if len(items) % 2:
        raise _Refusal(f"a dict built from {len(items)} items (an odd number)")
    _plain_items(items[0::2], "a dict key")
    return list(zip(items[0::2], items[1::2], strict=True))


def _make_set(items: Any = ()) -> set:
    """`set(list)` of plain hashable values (chumpy's `_dirty_vars`)."""
    if type(items) not in (list, tuple):
        raise _Refusal(f"set({_short(items)}); expected a list")
    return set(_plain_items(items, "a set"))


def _reconstructor(cls: Any, base: Any, state: Any) -> StandIn:
    """`copy_reg._reconstructor(cls, object, None)` for the stand-in classes only."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)) or base is not object:
        raise _Refusal(
            f"copy_reg._reconstructor({_short(cls)}, {_short(base)}, ...); only a chumpy or "
            "scipy sparse class with base object"
        )
    if state is not None:
        raise _Refusal(f"copy_reg._reconstructor with state {_short(state)}; expected None")
    return cls.__new__(cls)


# --------------------------------------------------------------------------------------------
# Torch checkpoints: tensors and storages as inert records (torch is never imported).

# torch's typed storage classes, as the pickles name them, and the numpy dtype of their bytes
# (torch.save writes little-endian data; `flamenerf.io.torch_files` refuses the rest).
TORCH_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
MAX_TORCH_KEY = 256  # characters of a storage key or location ("0", "94799569955472", "cpu")


class _StorageType(_Marker):
    """`torch.FloatStorage` and the like: a marker that may only appear in a persistent id."""

    def __init__(self, name: str, dtype: str):
        super().__init__(f"torch.{name}")
        self.dtype = np.dtype(dtype)


class TorchDict(dict):
    """Stand-in for the `collections.OrderedDict` of a torch state dict (a plain dict whose
    `_metadata`, set by BUILD, is dropped: it holds module version numbers only)."""


class TorchStorage:
    """A storage named by a persistent id `('storage', torch.FloatStorage, key, location,
    numel[, view])`: its dtype and size. `data` ((numel,) array) is filled by the file reader
    (`flamenerf.io.torch_files`) from the archive's record or the legacy file's tail; a view
    (legacy files only) reads `numel` elements of its `root` from `offset` on."""

    def __init__(self, key: str, dtype: np.dtype, numel: int, location: str):
        self.key, self.dtype, self.numel, self.location = key, dtype, numel, location
        self.data: np.ndarray | None = None
        self.root: TorchStorage = self
        self.offset = 0


class TorchTensor:
    """A tensor of a torch checkpoint (`torch._utils._rebuild_tensor[_v2]`): a strided view of
    a `TorchStorage`, resolved to a numpy array by `to_numpy` once the storage data is read."""

    def __init__(self, storage: TorchStorage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def shape(self) -> tuple[int, ...]:
        return self.size

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype

    def to_numpy(self, where: str) -> np.ndarray:
        """A copy of the tensor's elements, shape `size`, after checking that every element
        lies inside its storage.

        Raises:
          PickleRefused: naming `where`, the storage was not read or is too small.
        """
        root = self.storage.root
        if root.data is None:
            raise PickleRefused(f"{where}: the data of storage '{root.key}' was not read")
        if math.prod(self.size) == 0:
            return np.zeros(self.size, self.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if last >= self.storage.numel:
            raise PickleRefused(
                f"{where}: a tensor of shape {self.size}, stride {self.stride} and offset "
                f"{self.offset} reaches element {last} of storage '{self.storage.key}', which "
                f"has {self.storage.numel}"
            )
        start = self.storage.offset + self.offset
        if self.storage.offset + self.storage.numel > root.numel or len(root.data) != root.numel:
            raise PickleRefused(f"{where}: storage '{self.storage.key}' is not inside its data")
        itemsize = self.dtype.itemsize
        view = np.ndarray(
            self.size,
            self.dtype,
            buffer=root.data,
            offset=start * itemsize,
            strides=tuple(s * itemsize for s in self.stride),
        )
        return np.array(view, copy=True)


class TorchStorages:
    """The persistent-id handler of a torch checkpoint (pass to `loads`): one `TorchStorage` per
    key, as `torch.save` names them: `('storage', storage type, key, location, numel)` in an
    archive, with a sixth item, a view `(view key, offset, numel)` or None, in a legacy file."""

    def __init__(self) -> None:
        self.by_key: dict[str, TorchStorage] = {}

    def __call__(self, pid: Any) -> TorchStorage:
        if type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage":
            raise _Refusal(
                f"the persistent id {_short(pid)}; expected ('storage', type, key, location, "
                "numel[, view])"
            )
        kind, key, location, numel = pid[1:5]
        if not isinstance(kind, _StorageType):
            raise _Refusal(f"a storage of type {_short(kind)}; expected e.g. torch.FloatStorage")
        for what, text in (("key", key), ("location", location)):
            if type(text) is not str or not 0 < len(text) <= MAX_TORCH_KEY:
                raise _Refusal(f"a storage {what} {_short(text)}; expected a short string")
        if type(numel) is not int or not 0 <= numel <= MAX_ELEMENTS:
            raise _Refusal(f"a storage of {_short(numel)} elements")
        storage = self.by_key.setdefault(key, TorchStorage(key, kind.dtype, numel, location))
        if storage.dtype != kind.dtype or storage.numel != numel:
            raise _Refusal(
                f"storage '{key}' named as {kind.name} of {numel} elements after "
                f"{storage.dtype.str} of {storage.numel}"
            )
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return storage
        if type(view) is not tuple or len(view) != 3 or type(view[0]) is not str:
            raise _Refusal(f"a storage view {_short(view)}; expected (key, offset, numel)")
        offset, count = view[1], view[2]
        if type(offset) is not int or type(count) is not int or offset < 0 or count < 0:
            raise _Refusal(f"a view of storage '{key}' at {_short(offset)} of {_short(count)}")
        if offset + count > numel:
            raise _Refusal(f"a view of {count} elements at {offset} of storage '{key}' ({numel})")
        part = TorchStorage(view[0], storage.dtype, count, location)
        part.root, part.offset = storage, offset
        return part


def _torch_ordered_dict(items: Any = ()) -> TorchDict:
    """`collections.OrderedDict()` (empty: what torch pickles, then fills with SETITEMS), or
    `OrderedDict([[key, value], ...])` as Python 2 and early Python 3 pickled it."""
    if type(items) not in (list, tuple):
        raise _Refusal(f"OrderedDict({_short(items)}); expected a list of pairs")
    pairs = []
    for pair in items:
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise _Refusal(f"OrderedDict item {_short(pair)}; expected a (key, value) pair")
        pairs.append(tuple(pair))
    _plain_items([k for k, _ in pairs], "an OrderedDict key")
    return TorchDict(pairs)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any) -> TorchTensor:
    if type(storage) is not TorchStorage:
        raise _Refusal(f"a tensor of {_short(storage)}; expected a storage (persistent id)")
    _check_shape(size, "torch tensor")
    if type(stride) is not tuple or len(stride) != len(size):
        raise _Refusal(f"torch tensor: stride {_short(stride)} for size {size}")
    if not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in stride):
        raise _Refusal(f"torch tensor: stride {_short(stride)}; expected non-negative ints")
    if type(offset) is not int or not 0 <= offset <= MAX_ELEMENTS:
        raise _Refusal(f"torch tensor: storage offset {_short(offset)}")
    if math.prod(size) > storage.numel:  # overlapping strides (e.g. 0) would copy unboundedly
        raise _Refusal(
            f"torch tensor: size {size} has more elements than its storage ({storage.numel})"
        )
    return TorchTensor(storage, offset, size, stride)


def _empty_hooks(hooks: Any) -> None:
    if type(hooks) not in (dict, TorchDict) or hooks:
        raise _Refusal(f"tensor backward hooks {_short(hooks)}; expected an empty OrderedDict")


def _torch_rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> TorchTensor:
    """`torch._utils._rebuild_tensor(storage, offset, size, stride)` (torch < 0.4 files)."""
    return _tensor(storage, offset, size, stride)


def _torch_rebuild_tensor_v2(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    hooks: Any = None,
    metadata: Any = None,
) -> TorchTensor:
    """`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
    OrderedDict()[, metadata])`, how torch >= 0.4 pickles a dense tensor."""
    if type(requires_grad) is not bool:
        raise _Refusal(f"tensor requires_grad {_short(requires_grad)}; expected a bool")
    _empty_hooks(TorchDict() if hooks is None else hooks)
    if metadata is not None and (type(metadata) not in (dict, TorchDict) or metadata):
        raise _Refusal(f"tensor metadata {_short(metadata)}; expected none")
    return _tensor(storage, offset, size, stride)


def _torch_rebuild_parameter(data: Any, requires_grad: Any, hooks: Any) -> TorchTensor:
    """`torch._utils._rebuild_parameter(tensor, requires_grad, OrderedDict())`: the tensor."""
    if type(data) is not TorchTensor or type(requires_grad) is not bool:
        raise _Refusal(f"a parameter of {_short(data)}; expected a tensor")
    _empty_hooks(hooks)
    return data


# --------------------------------------------------------------------------------------------
# Formats.


@dataclasses.dataclass(frozen=True)
class PickleFormat:
    """What one kind of file may contain.

    Attributes:
      name: what the file is, for messages ("a FLAME model file").
      refusal: why a global is refused ("a FLAME file needs only numpy arrays, ...").
      persistent: the message for a persistent id.
      globals: (module, name) -> what that global resolves to (a wrapper above, a marker, a
        stand-in class or `object`).
      leaves: further types `check_tree` accepts as values (`TorchTensor`).
    """

    name: str
    refusal: str
    persistent: str
    globals: Mapping[tuple[str, str], Any]
    leaves: tuple[type, ...] = ()

    @functools.cached_property
    def callables(self) -> dict[int, Callable[..., Any]]:
        """The wrappers REDUCE may call, by id."""
        return {id(v): v for v in self.globals.values() if isinstance(v, types.FunctionType)}

    @functools.cached_property
    def classes(self) -> dict[int, type]:
        """The stand-in classes NEWOBJ/INST/OBJ may create, by id."""
        return {
            id(v): v
            for v in self.globals.values()
            if isinstance(v, type) and issubclass(v, StandIn)
        }


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {("_codecs", "encode"): _codecs_encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _numpy_reconstruct
        allowed[(module, "scalar")] = _numpy_scalar
    for module in ("numpy", "numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "ndarray")] = NDARRAY
        allowed[(module, "dtype")] = _numpy_dtype
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _numpy_frombuffer
    return allowed


def _flame_globals() -> dict[tuple[str, str], Any]:
    allowed = _numpy_globals()
    for module in ("chumpy.ch", "chumpy"):
        allowed[(module, "Ch")] = ChumpyArray
    for module in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"):
        allowed[(module, "csc_matrix")] = SparseMatrix
    for module in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"):
        allowed[(module, "csr_matrix")] = SparseMatrixCsr
    for module in ("__builtin__", "builtins"):
        allowed[(module, "set")] = _make_set
        allowed[(module, "object")] = object
    for module in ("copy_reg", "copyreg"):
        allowed[(module, "_reconstructor")] = _reconstructor
    return allowed


FLAME_MODEL = PickleFormat(
    name="a FLAME model file",
    refusal="a FLAME file needs only numpy arrays, scipy sparse matrices and chumpy arrays",
    persistent="refused a persistent id (a FLAME file has none)",
    globals=types.MappingProxyType(_flame_globals()),
)
"""The official `generic_model.pkl` (and `flame_static_embedding.pkl`): a dict of numpy
arrays, chumpy arrays (with their sets and dicts of state) and scipy sparse matrices."""

TORCH_FRAME = PickleFormat(
    name="a metrical-tracker frame",
    refusal="a metrical-tracker frame holds numpy arrays, strings and numbers only",
    persistent=(
        "holds torch tensors (persistent storages), which are not read; metrical-tracker "
        "frames hold numpy arrays"
    ),
    globals=types.MappingProxyType(_numpy_globals()),
)
"""The `data.pkl` of a metrical-tracker `.frame` (torch.save): nested dicts of numpy arrays,
strings and numbers."""


def _torch_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _torch_ordered_dict,
        ("torch._utils", "_rebuild_tensor"): _torch_rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _torch_rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _torch_rebuild_parameter,
    }
    for name, dtype in TORCH_STORAGE_DTYPES.items():
        marker = _StorageType(name, dtype)
        allowed[("torch", name)] = allowed[("torch.cuda", name)] = marker
    return allowed


TORCH_CHECKPOINT = PickleFormat(
    name="a PyTorch state dict",
    refusal=(
        "a state dict holds tensors (torch._utils._rebuild_tensor*, typed storages) in "
        "(Ordered)dicts only"
    ),
    persistent="refused a persistent id; only storages are expected",
    globals=types.MappingProxyType(_torch_globals()),
    leaves=(TorchTensor,),
)
"""A `torch.save` of a module's `state_dict()` (the `lpips` package's linear heads,
torchvision's checkpoints), zip archive or legacy file: an OrderedDict (its `_metadata`
dropped) of tensors, which become `TorchTensor`s of `TorchStorage`s (read with a
`TorchStorages` handler: `loads(data, source, TORCH_CHECKPOINT, TorchStorages())`)."""


# --------------------------------------------------------------------------------------------
# Layer 1: the pre-scan.


class _Skipped(bytes):
    """An argument the pre-scan did not copy: empty, but reports the length it stands for, so
    pickletools' readers accept it (they compare `len`, then decode or return it)."""

    def __new__(cls, size: int) -> _Skipped:
        skipped = super().__new__(cls)
        skipped.size = size
        return skipped

    def __len__(self) -> int:
        return self.size

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return ""


class _Limit(Exception):
    """A pre-scan cap was exceeded."""


class _BufferReader:
    """A file-like reader over an in-memory buffer (bytes or a read-only mmap).

    With `skip_long`, reads longer than _SCAN_COPY_LIMIT return a `_Skipped` placeholder and
    nothing is copied; reads beyond the end return what remains (the caller compares lengths).
    `readline` looks for the newline within MAX_LINE_BYTES.
    """

    def __init__(self, data: Any, skip_long: bool, start: int = 0):
        self._data = data
        self._size = len(data)
        self._pos = start
        self._skip_long = skip_long

    def tell(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._size - self._pos

    def read(self, n: int = -1) -> bytes:
        start = self._pos
        end = self._size if n is None or n < 0 else min(start + n, self._size)
        self._pos = end
        if self._skip_long and end - start > _SCAN_COPY_LIMIT:
            return _Skipped(end - start)
        return bytes(self._data[start:end])

    def readline(self) -> bytes:
        start = self._pos
        if not self._skip_long:
            newline = self._data.find(b"\n", start)
            self._pos = self._size if newline < 0 else newline + 1
            return bytes(self._data[start : self._pos])
        limit = min(start + MAX_LINE_BYTES, self._size)
        newline = self._data.find(b"\n", start, limit)
        if newline < 0 and limit < self._size:
            # Protocol 0 stores array data as one STRING ('S') or UNICODE ('V') line: step
            # over it (the byte before a one-line argument is its opcode) and hand pickletools
            # an empty argument of that kind. Other text arguments are short.
            opcode = bytes(self._data[start - 1 : start]) if start else b""
            newline = self._data.find(b"\n", limit) if opcode in (b"S", b"V") else -1
            if newline < 0:
                raise _Limit(f"a text argument longer than {MAX_LINE_BYTES} bytes")
            self._pos = newline + 1
            return b"''\n" if opcode == b"S" else b"\n"
        self._pos = limit if newline < 0 else newline + 1  # no newline: pickletools reports it
        return bytes(self._data[start : self._pos])


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def prescan(data: Any, source: str, fmt: PickleFormat, start: int = 0) -> int:
    """Walks the opcode stream without building anything; refuses bombs and garbage.

    Args:
      data: the pickle (bytes, bytearray or a read-only mmap); it is not copied.
      source: the file name for messages.
      fmt: the format (its name appears in messages).
      start: where the pickle starts in `data` (a legacy torch file holds several in a row).

    Returns:
      The offset just past the pickle's STOP opcode.

    Raises:
      PickleRefused: an unknown opcode or truncated stream ("not a readable pickle"), a
        declared length beyond the remaining bytes, an unset memo index, or more than
        MAX_OPCODES opcodes, MAX_STACK_DEPTH stack items, MAX_MARK_DEPTH open MARKs,
        MAX_LINE_BYTES in a text argument or MAX_LONG_BYTES in an integer ("refused").
    """
    reader = _BufferReader(data, skip_long=True, start=start)
    mark, count, depth, marks, memo = pickletools.markobject, 0, 0, [], set()
    try:
        for opcode, arg, pos in pickletools.genops(reader):
            count += 1
            name = opcode.name
            if count > MAX_OPCODES:
                raise _Limit(f"more than {MAX_OPCODES} opcodes ({fmt.name} has a few thousand)")
            if name == "FRAME" and arg > reader.remaining():
                raise _Limit(f"a frame of {arg} bytes but only {reader.remaining()} remain")
            if name in ("LONG1", "LONG4") and reader.tell() - pos > MAX_LONG_BYTES + 5:
                raise _Limit(f"an integer of more than {MAX_LONG_BYTES} bytes")
            if name in _MEMO_PUTS or name == "MEMOIZE":
                index = len(memo) if name == "MEMOIZE" else arg
                if not 0 <= index < count:
                    raise _Limit(f"memo index {index} after only {count} opcodes")
                memo.add(index)
            elif name in _MEMO_GETS and arg not in memo:
                raise _Limit(f"memo index {arg} that was never stored")
            # Stack effect, as pickletools describes it.
            before, after = opcode.stack_before, opcode.stack_after
            floor = marks[-1] if marks else 0
            if mark in before:
                if not marks:
                    raise ValueError("a mark-consuming opcode without a MARK")
                depth = marks.pop() - before.index(mark)
                floor = marks[-1] if marks else 0
            elif name == "POP" and marks and depth == floor:
                marks.pop()  # POP of an empty segment pops its MARK
                continue
            else:
                depth -= len(before)
            if depth < floor:
                raise ValueError("stack underflow")
            if mark in after:
                marks.append(depth)
                if len(marks) > MAX_MARK_DEPTH:
                    raise _Limit(f"more than {MAX_MARK_DEPTH} nested MARKs")
            else:
                depth += len(after)
                if depth > MAX_STACK_DEPTH:
                    raise _Limit(f"more than {MAX_STACK_DEPTH} items on the stack")
    except _Limit as error:
        raise PickleRefused(
            f"{source}: refused before unpickling: {error} (near byte {reader.tell()}); "
            f"not {fmt.name}"
        ) from None
    except Exception as error:  # pickletools: unknown opcode, truncated or malformed argument
        raise PickleRefused(
            f"{source}: not a readable pickle ({_clip(str(error))}, near byte {reader.tell()})"
        ) from None
    return reader.tell()


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Layer 2: the restricted unpickler.


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with the format's allow-list and checked opcode handlers."""

    def __init__(
        self,
        reader: _BufferReader,
        source: str,
        fmt: PickleFormat,
        persistent: Callable[[Any], Any] | None = None,
    ):
        super().__init__(reader, encoding="latin1")
        self._source = source
        self._fmt = fmt
        self._callables = fmt.callables
        self._classes = fmt.classes
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._fmt.globals[(module, name)]
        except KeyError:
            raise PickleRefused(
                f"{self._source}: refused to load '{_clip(module, 100)}.{_clip(name, 100)}': "
                f"{self._fmt.refusal}"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise PickleRefused(f"{self._source}: {self._fmt.persistent}")
        return self._persistent(pid)

    def _instantiate(self, klass: Any, args: list[Any]) -> None:  # INST, OBJ
        self.append(self._new(klass, tuple(args), {}))

    def _new(self, cls: Any, args: Any, kwargs: Any) -> StandIn:
        if id(cls) not in self._classes or args != () or kwargs != {}:
            raise _Refusal(f"creating {_short(cls)}; only a chumpy or sparse stand-in")
        return cls.__new__(cls)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, {}))

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in self._callables or func is not self._callables[id(func)]:
            raise _Refusal(f"calling {_short(func)}")
        if type(args) is not tuple:
            raise _Refusal(f"calling {func.__name__} with {_short(args)}")
        self.stack[-1] = func(*args)

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            _check_array_state(inst, state)
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
            inst.__setstate__(state)
        elif isinstance(inst, StandIn):
            inst.__setstate__(state)
        elif type(inst) is TorchDict:
            # A state dict's `_metadata` (module versions), dropped.
            if type(state) is not dict or not set(state) <= {"_metadata"}:
                raise _Refusal(f"the state {_short(state)} of an OrderedDict")
        else:
            raise _Refusal(f"setting the state of {_short(inst)}")

    def _target(self, kind: type) -> Any:
        target = self.stack[-1]
        if type(target) is not kind and not (kind is dict and type(target) is TorchDict):
            raise _Refusal(f"adding items to {_short(target)}; expected a {kind.__name__}")
        return target

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._target(list).append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._target(list).extend(items)

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        _plain_items((key,), "a dict key")
        self._target(dict)[key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        self._target(dict).update(_pairs(items))

    def _load_dict(self) -> None:
        items = self.pop_mark()  # before `self.append`, which pop_mark rebinds
        self.append(dict(_pairs(items)))

    def _load_additems(self) -> None:
        items = self.pop_mark()
        self._target(set).update(_plain_items(items, "a set"))

    def _load_frozenset(self) -> None:
        items = self.pop_mark()
        self.append(frozenset(_plain_items(items, "a frozenset")))

    # The pure-Python unpickler looks opcode handlers up in this table (the C one cannot be
    # changed); every handler that calls, creates or inserts is replaced.
    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset


def _check_array_state(array: np.ndarray, state: Any) -> None:
    """numpy's array state: ([1,] shape, dtype, is_fortran, raw bytes) of a plain dtype with
    exactly shape-product x itemsize bytes (never a list: that is an object array)."""
    if type(state) is not tuple or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
        raise _Refusal(f"numpy array state {_short(state)}; expected (1, shape, dtype, ...)")
    shape, dtype, fortran, raw = state[-4:]
    count = _check_shape(shape, "numpy array")
    dtype = _check_dtype(dtype, "numpy array")
    if type(fortran) not in (bool, int) or type(raw) not in (bytes, str):
        raise _Refusal(f"numpy array data {_short(raw)}; expected bytes")
    if len(raw) != count * dtype.itemsize:
        raise _Refusal(
            f"numpy array of shape {shape} and dtype {dtype.str} with {len(raw)} data bytes; "
            f"expected {count * dtype.itemsize}"
        )
    if array.size != 0:
        raise _Refusal("setting the state of a numpy array twice")


def _check_dtype_state(dtype: np.dtype, state: Any) -> None:
    """numpy's dtype state (3, byte order, None, None, None, size, alignment, flags[, None]):
    no sub-array, no fields, no metadata, and the dtype's own size, alignment and flags."""
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise _Refusal(f"numpy dtype state {_short(state)}; expected version 3 or 4")
    order, subarray, names, fields, size, alignment, flags = state[1:8]
    ok = (
        order in ("<", ">", "|", "=")
        and subarray is None
        and names is None
        and fields is None
        and size in (-1, dtype.itemsize)
        and alignment in (-1, dtype.alignment)
        and flags == dtype.flags
        and (len(state) == 8 or state[8] is None)
    )
    if not ok:
        raise _Refusal(
            f"numpy dtype {dtype.str} with state (order {_short(order)}, size {_short(size)}, "
            f"alignment {_short(alignment)}, flags {_short(flags)}, ...): only a plain dtype "
            "without fields or sub-arrays and with its own flags"
        )


def loads(
    data: Any, source: str, fmt: PickleFormat, persistent: Callable[[Any], Any] | None = None
) -> Any:
    """Pre-scans, then unpickles `data` with the format's allow-list.

    Args:
      data: the pickle (bytes, bytearray or a read-only mmap).
      source: the file name for messages.
      fmt: FLAME_MODEL, TORCH_FRAME or TORCH_CHECKPOINT.
      persistent: what a persistent id becomes (a `TorchStorages` for TORCH_CHECKPOINT; it
        raises `_Refusal` for anything else); None refuses every persistent id.

    Returns:
      The unpickled object: dicts, lists, tuples, sets of plain values, numpy arrays and
      scalars, and the format's stand-ins.

    Raises:
      PickleRefused: naming `source`; a refused global or call, a bomb, or an unreadable pickle.
    """
    prescan(data, source, fmt)
    unpickler = _RestrictedUnpickler(_BufferReader(data, skip_long=False), source, fmt, persistent)
    try:
        return unpickler.load()
    except PickleRefused:
        raise
    except _Refusal as error:
        raise PickleRefused(f"{source}: refused to unpickle {error}; {fmt.refusal}") from None
    except Exception as error:  # a malformed stream the pre-scan could not see
        raise PickleRefused(
            f"{source}: not a readable pickle ({type(error).__name__}: {_clip(str(error))})"
        ) from None


def load_file(path: str | Path, fmt: PickleFormat) -> Any:
    """`loads` of a file, memory-mapped so that the pre-scan never reads what it skips.

    Raises:
      PickleRefused: as `loads`, or the file cannot be read.
    """
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                return loads(b"", str(path), fmt)
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return loads(data, str(path), fmt)
    except OSError as error:
        raise PickleRefused(f"{path}: cannot read ({error})") from None


# --------------------------------------------------------------------------------------------
# Layer 3: checking the result.


def check_tree(value: Any, source: str, fmt: PickleFormat) -> None:
    """Refuses a result that is not a small tree of plain values.

    Allowed: dicts (plain keys), lists, tuples, sets, numpy arrays of plain dtypes, numpy
    scalars, str, bytes, numbers, None and the format's stand-ins. At most MAX_TREE_NODES
    values are visited, counting a shared value each time it is reached, so a "billion laughs"
    structure (lists sharing sub-lists exponentially) is refused before anything expands it
    (`np.asarray`, `repr`); nesting is limited to MAX_TREE_DEPTH.

    Raises:
      PickleRefused: naming `source` and what was found.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    visited = 0
    while pending:
        item, depth = pending.pop()
        visited += 1
        if visited > MAX_TREE_NODES:
            raise PickleRefused(
                f"{source}: refused: more than {MAX_TREE_NODES} values (shared ones counted "
                f"each time they are reached); {fmt.name} holds a few dozen"
            )
        if depth > MAX_TREE_DEPTH:
            raise PickleRefused(
                f"{source}: refused: values nested more than {MAX_TREE_DEPTH} levels deep"
            )
        if type(item) in PLAIN_KEY_TYPES or isinstance(item, np.ndarray | np.generic):
            continue
        if type(item) in (dict, TorchDict):
            pending.extend((v, depth + 1) for v in item.values())
        elif type(item) in (list, tuple, set, frozenset):
            pending.extend((v, depth + 1) for v in item)
        elif isinstance(item, StandIn) and id(type(item)) in fmt.classes:
            pending.append((item.state, depth + 1))
        elif type(item) in fmt.leaves:
            continue
        else:
            raise PickleRefused(f"{source}: refused: holds {_short(item)}; not {fmt.name}")
