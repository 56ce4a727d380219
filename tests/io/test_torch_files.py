# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Reading torch.save files without torch: both layouts, hostile and damaged files.

Files are written by tests/lpips_util.py's independent torch-free writer; with torch installed,
also by torch.save itself (views, transposes, other dtypes, parameters).
"""

import importlib.util
import os
import pickle
import struct
import zipfile

import bomb_util
import numpy as np
import pytest
from lpips_util import write_torch_file

from flamenerf.errors import UserError
from flamenerf.io import safe_pickle, torch_files

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def sample_tensors():
    rng = np.random.RandomState(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
        "conv.bias": rng.standard_normal(4),  # float64
        "steps": np.array(7, np.int64),  # a 0-d tensor
        "empty": np.zeros((0, 3), np.float32),
    }


@pytest.mark.parametrize("legacy, py2_pairs", [(False, False), (True, False), (True, True)])
def test_state_dicts_round_trip_in_both_layouts(tmp_path, legacy, py2_pairs):
    tensors = sample_tensors()
    path = write_torch_file(tmp_path / "weights.pth", tensors, legacy, py2_pairs)
    loaded = torch_files.load_state_dict(path)
    assert list(loaded) == list(tensors)
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].flags.writeable and loaded[key].flags.owndata
    some = torch_files.load_state_dict(path, ["conv.bias", "steps"])
    assert list(some) == ["conv.bias", "steps"]
    with pytest.raises(UserError, match=r"weights.pth: no tensor 'nope' in the state dict"):
        torch_files.load_state_dict(path, ["conv.bias", "nope"])


def test_strided_tensors_and_views_stay_inside_their_storage():
    storage = safe_pickle.TorchStorage("0", np.dtype("<f4"), 12, "cpu")
    storage.data = np.arange(12, dtype=np.float32)
    transposed = safe_pickle.TorchTensor(storage, 1, (3, 2), (1, 3))
    np.testing.assert_array_equal(transposed.to_numpy("f"), [[1, 4], [2, 5], [3, 6]])
    storages = safe_pickle.TorchStorages()
    kind = safe_pickle.TORCH_CHECKPOINT.globals[("torch", "FloatStorage")]
    root = storages(("storage", kind, "7", "cuda:0", 12, None))
    root.data = np.arange(12, dtype=np.float32)
    view = storages(("storage", kind, "7", "cuda:0", 12, ("8", 4, 6)))
    assert view.root is root and view.offset == 4
    np.testing.assert_array_equal(
        safe_pickle.TorchTensor(view, 1, (2, 2), (2, 1)).to_numpy("f"), [[5, 6], [7, 8]]
    )
    with pytest.raises(
        safe_pickle.PickleRefused, match="reaches element 6 of storage '8', which has 6"
    ):
        safe_pickle.TorchTensor(view, 0, (7,), (1,)).to_numpy("f")  # past the view's end
    with pytest.raises(safe_pickle.PickleRefused, match=r"f: a tensor of shape \(2, 3\)"):
        safe_pickle.TorchTensor(storage, 0, (2, 3), (10, 1)).to_numpy("f")
    unread = safe_pickle.TorchStorage("9", np.dtype("<f4"), 3, "cpu")
    with pytest.raises(safe_pickle.PickleRefused, match="storage '9' was not read"):
        safe_pickle.TorchTensor(unread, 0, (3,), (1,)).to_numpy("f")
    for pid, message in [
        (("storage", kind, "7", "cpu", 13), "named as torch.FloatStorage of 13 elements"),
        (("storage", kind, "7", "cpu", 12, ("8", 10, 6)), "a view of 6 elements at 10"),
        (("module", kind, "7", "cpu", 12), "the persistent id"),
        (("storage", "FloatStorage", "1", "cpu", 1), "a storage of type 'FloatStorage'"),
        (("storage", kind, 5, "cpu", 1), "a storage key 5"),
        (("storage", kind, "1", "cpu", -1), "a storage of -1 elements"),
    ]:
        with pytest.raises(safe_pickle._Refusal, match=message):
            storages(pid)


@pytest.mark.parametrize("legacy", [False, True])
def test_hostile_state_dicts_are_refused_without_running(tmp_path, legacy):
    sentinel = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    class Eval:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    for name, value in [("system", Hostile()), ("eval", Eval())]:
        path = write_torch_file(tmp_path / f"{name}.pth", {"w": np.zeros(2), "x": value}, legacy)
        with pytest.raises(
            UserError, match=rf"{path}: refused to load '(posix|nt|builtins|__builtin__)\."
        ):
            torch_files.load_state_dict(path)
    assert not sentinel.exists()
    # A tensor rebuilt from anything but a storage, and hooks that are not empty.
    bad = write_torch_file(tmp_path / "bad.pth", {"x": {"nested": 1}}, legacy)
    with pytest.raises(UserError, match=r"bad.pth: state dict entry 'x' is a dict"):
        torch_files.load_state_dict(bad)


def test_bombs_in_state_dicts_are_refused(tmp_path):
    for name, (data, message) in bomb_util.bombs(b"w").items():
        path = bomb_util.write_zip(tmp_path / f"{name}.pth", data)
        with pytest.raises(UserError, match=f"{name}.pth: .*{message}"):
            torch_files.load_state_dict(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pickletools on damaged text
@pytest.mark.parametrize("legacy", [False, True])
def test_every_truncation_and_byte_flip_is_a_user_error_naming_the_file(tmp_path, legacy):
    good = write_torch_file(tmp_path / "good.pth", sample_tensors(), legacy).read_bytes()
    path = tmp_path / "damaged.pth"
    for cut in range(0, len(good), 1 if legacy else 7):  # a zip's directory is at its end
        path.write_bytes(good[:cut])
        with pytest.raises(UserError, match=rf"^{path}: "):
            torch_files.load_state_dict(path)
    rng = np.random.RandomState(1)
    loaded = 0
    for position in range(len(good)):  # a zip's headers: compression, version, encryption...
        damaged = bytearray(good)
        damaged[position] ^= 1 << int(rng.randint(8))
        path.write_bytes(bytes(damaged))
        try:
            torch_files.load_state_dict(path)
            loaded += 1
        except UserError as error:
            assert str(error).startswith(f"{path}: "), error
    assert loaded < len(good) // 2  # most flips are noticed (the rest change a value)


def test_damaged_structure_is_named(tmp_path):
    tensors = {"w": np.arange(4, dtype=np.float32)}
    path = write_torch_file(tmp_path / "w.pth", tensors)
    with zipfile.ZipFile(path) as archive:
        records = {n: archive.read(n) for n in archive.namelist()}

    def rewrite(name, **changes):
        target = tmp_path / name
        with zipfile.ZipFile(target, "w") as archive:
            for record, data in {**records, **changes}.items():
                if data is not None:
                    archive.writestr(record, data)
        return target

    with pytest.raises(UserError, match=r"no record w/data/0 for storage '0'"):
        torch_files.load_state_dict(rewrite("a.pth", **{"w/data/0": None}))
    with pytest.raises(UserError, match=r"record w/data/0 has 12 bytes; .* needs 16"):
        torch_files.load_state_dict(rewrite("b.pth", **{"w/data/0": b"\0" * 12}))
    with pytest.raises(UserError, match=r"byteorder is b'big'; only little-endian"):
        torch_files.load_state_dict(rewrite("c.pth", **{"w/byteorder": b"big"}))
    with pytest.raises(UserError, match=r"d.pth: expected one data.pkl"):
        torch_files.load_state_dict(rewrite("d.pth", **{"w/data.pkl": None}))
    for name, data in [
        ("empty.pth", b""),
        ("text.pth", b"hello"),
        ("pickle.pth", pickle.dumps({})),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError, match=rf"{name}: not a PyTorch checkpoint"):
            torch_files.load_state_dict(tmp_path / name)
    with pytest.raises(UserError, match=r"missing.pth: file not found"):
        torch_files.load_state_dict(tmp_path / "missing.pth")

    legacy = write_torch_file(tmp_path / "legacy.pth", tensors, legacy=True).read_bytes()
    size = struct.pack("<q", 4)
    at = legacy.rindex(size)
    (tmp_path / "count.pth").write_bytes(legacy[:at] + struct.pack("<q", 5) + legacy[at + 8 :])
    with pytest.raises(UserError, match=r"count.pth: storage '\d+' at byte \d+ has 5 elements"):
        torch_files.load_state_dict(tmp_path / "count.pth")
    (tmp_path / "long.pth").write_bytes(legacy + b"\0" * 3)  # trailing bytes are ignored
    assert list(torch_files.load_state_dict(tmp_path / "long.pth")) == ["w"]
    big = pickle.dumps({"protocol_version": 1001, "little_endian": False}, protocol=2)
    fmt = safe_pickle.TORCH_CHECKPOINT
    start = safe_pickle.prescan(legacy, "x", fmt, safe_pickle.prescan(legacy, "x", fmt))
    end = safe_pickle.prescan(legacy, "x", fmt, start)  # the system-info pickle
    (tmp_path / "big.pth").write_bytes(legacy[:start] + big + legacy[end:])
    with pytest.raises(UserError, match=r"big.pth: system info .* only little-endian"):
        torch_files.load_state_dict(tmp_path / "big.pth")


def test_metrical_frames_still_refuse_tensors(tmp_path):
    path = write_torch_file(tmp_path / "frame.frame", {"w": np.zeros(2, np.float32)})
    with pytest.raises(UserError, match="frame.frame: refused to load 'collections.OrderedDict'"):
        torch_files.read_torch_zip(path)
    plain = tmp_path / "plain.frame"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("x/data.pkl", pickle.dumps({"a": np.arange(3)}, protocol=2))
    np.testing.assert_array_equal(torch_files.read_torch_zip(plain)["a"], np.arange(3))


@pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")
@pytest.mark.parametrize("legacy", [False, True])
def test_files_written_by_torch(tmp_path, legacy):
    import torch

    torch.manual_seed(0)
    base = torch.randn(4, 6)
    state = {
        "plain": torch.randn(3, 2, 5),
        "transposed": base.t(),  # non-contiguous, shares base's storage with "row"
        "row": base[2, 1:5],
        "half": torch.randn(5).half(),
        "long": torch.arange(6).reshape(2, 3),
        "flag": torch.tensor([True, False, True]),
        "parameter": torch.nn.Parameter(torch.randn(2, 2)),
        "scalar": torch.tensor(3.5, dtype=torch.float64),
    }
    module = torch.nn.Conv2d(3, 4, 3)
    path = tmp_path / "torch.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    loaded = torch_files.load_state_dict(path)
    assert list(loaded) == list(state)
    for key, tensor in state.items():
        np.testing.assert_array_equal(loaded[key], tensor.detach().numpy(), err_msg=key)
    torch.save(module.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    loaded = torch_files.load_state_dict(path)
    np.testing.assert_array_equal(loaded["weight"], module.weight.detach().numpy())


def test_tensors_of_torch_before_0_4_load(tmp_path):
    """torch < 0.4 pickled tensors as `torch._utils._rebuild_tensor(storage, offset, size,
    stride)` (no requires_grad, no hooks)."""
    import io

    import lpips_util

    class OldTensor:
        def __init__(self, storage, shape, stride):
            self.storage, self.shape, self.stride = storage, shape, stride

    class OldWriter(lpips_util._Writer):
        def reducer_override(self, obj):
            if isinstance(obj, OldTensor):
                rebuild = lpips_util.Global("torch._utils", "_rebuild_tensor")
                return rebuild, (obj.storage, 1, obj.shape, obj.stride)
            return super().reducer_override(obj)

    storage = lpips_util._Storage("0", np.arange(7, dtype=np.float32))
    buffer = io.BytesIO()
    OldWriter(buffer, legacy=False).dump({"t": OldTensor(storage, (3, 2), (1, 3))})
    path = tmp_path / "old.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("old/data.pkl", buffer.getvalue())
        archive.writestr("old/data/0", storage.array.tobytes())
    np.testing.assert_array_equal(torch_files.load_state_dict(path)["t"], [[1, 4], [2, 5], [3, 6]])


def test_tensors_larger_than_their_storage_are_refused():
    """Stride 0 would let a few bytes of pickle ask for a terabyte-sized copy."""
    storage = safe_pickle.TorchStorage("0", np.dtype("<f4"), 1, "cpu")
    with pytest.raises(safe_pickle._Refusal, match=r"more elements than its storage \(1\)"):
        safe_pickle._tensor(storage, 0, (2**20, 2**20), (0, 0))
    assert safe_pickle._tensor(storage, 0, (1, 1), (0, 0)).size == (1, 1)  # one element fits


def test_compressed_records_are_refused(tmp_path):
    """torch.save stores records uncompressed; a deflated one could inflate a small file."""
    stored = write_torch_file(tmp_path / "w.pth", {"x": np.ones(64, np.float32)}, False)
    with zipfile.ZipFile(stored) as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    for squeezed in [n for n in records if n.endswith("data.pkl")] + [
        n for n in records if "/data/" in n
    ]:
        path = tmp_path / "deflated.pth"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in records.items():
                method = zipfile.ZIP_DEFLATED if name == squeezed else zipfile.ZIP_STORED
                archive.writestr(name, data, compress_type=method)
        with pytest.raises(UserError, match=f"deflated.pth: record {squeezed} is compressed"):
            torch_files.load_state_dict(path)
    np.testing.assert_array_equal(torch_files.load_state_dict(stored)["x"], np.ones(64))
