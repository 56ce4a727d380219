# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.io.safe_pickle: official-style FLAME pickles load; hostile pickles, pickle
bombs and corrupted model files are refused with a ValueError naming the file."""

import functools
import io
import json
import mmap
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flame_util import (
    FakeCsc,
    brute_force,
    make_raw,
    official_content,
    official_pickle_bytes,
    random_params,
)

from flamenerf.geometry import flame
from flamenerf.io import safe_pickle

FILE = "generic_model.pkl"
P2, P4 = b"\x80\x02", b"\x80\x04"


def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


def text(value):
    """BINUNICODE of a str."""
    data = value.encode()
    return b"X" + u32(len(data)) + data


def laughs(levels):
    """Protocol-2 opcodes leaving l_levels on the stack, l_0 = [], l_k = [l_k-1, l_k-1]:
    a few bytes per level for 2**levels leaves ("billion laughs")."""
    ops = b"]r" + u32(0)
    for k in range(1, levels + 1):
        ops += b"0](j" + u32(k - 1) + b"j" + u32(k - 1) + b"er" + u32(k)
    return ops


def in_flame_dict(key, value_ops):
    """A pickled dict {key: value} with the value given as opcodes."""
    return P2 + b"}(" + text(key) + value_ops + b"u."


def padded_pickle(path, size, tail):
    """A `size`-byte protocol-2 pickle: one BINSTRING of zeros (array data), then `tail`.
    Written sparse: the zeros take no disk blocks and no memory."""
    with open(path, "wb") as f:
        f.write(P2 + b"T" + struct.pack("<i", size - 7 - len(tail)))
        f.seek(size - len(tail))
        f.write(tail)


# --------------------------------------------------------------------------------------------
# Official-style files load.


def test_official_pickle_keeps_the_chumpy_state_and_matches_brute_force(tmp_path):
    raw = make_raw(np.random.default_rng(11), num_vertices=10, official=True)
    path = tmp_path / FILE
    path.write_bytes(official_pickle_bytes(raw))
    content = safe_pickle.load_file(path, safe_pickle.FLAME_MODEL)
    ch = content["v_template"]
    assert isinstance(ch, safe_pickle.ChumpyArray)
    assert ch.state.keys() == {
        "x",
        "_dirty_vars",
        "_itr",
        "_depends_on_deps",
        "_make_dense",
        "_make_sparse",
    }
    assert ch.state["_dirty_vars"] == {"x"} and ch.state["_itr"] is None
    assert ch.state["_depends_on_deps"] == {} and ch.state["_make_sparse"] is False
    np.testing.assert_array_equal(ch.to_numpy("v"), raw["v_template"])
    np.testing.assert_array_equal(content["J_regressor"].to_numpy("J"), raw["J_regressor"])
    assert content["bs_style"] == "lbs"

    model = flame.load_model(path)
    p = random_params(np.random.default_rng(12), 300, 100)
    expected_v, expected_j = brute_force(raw, p, num_shape=300)
    out = flame.forward(model, flame.FlameParams(**p))
    np.testing.assert_allclose(out.vertices, expected_v, atol=1e-5)
    np.testing.assert_allclose(out.joints, expected_j, atol=1e-5)


@pytest.mark.parametrize("protocol, py2", [(2, True), (0, False), (1, False), (2, False)])
def test_python2_and_python3_protocols_give_the_npz_model(tmp_path, protocol, py2):
    raw = make_raw(np.random.default_rng(13), num_vertices=8, official=True)
    pkl, npz = tmp_path / FILE, tmp_path / "model.npz"
    pkl.write_bytes(official_pickle_bytes(raw, protocol=protocol, py2=py2))
    np.savez(npz, **raw)
    if protocol < 2:
        assert b"copy_reg\n_reconstructor" in pkl.read_bytes()
    for a, b in zip(
        jax.tree.leaves(flame.load_model(pkl)), jax.tree.leaves(flame.load_model(npz)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_numpy_pickles_load(tmp_path, protocol):
    value = {
        "lmk_face_idx": np.arange(5, dtype=np.int64),
        "lmk_b_coords": np.full((5, 3), 1 / 3, np.float32),
        "scalars": [np.float32(2.5), np.int64(-3), np.bool_(True), 7, "name", b"raw", None],
        "big_endian": np.arange(3, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "set": {1, "a"},
    }
    data = pickle.dumps(value, protocol=protocol)
    loaded, expected = safe_pickle.loads(data, "x.pkl", safe_pickle.FLAME_MODEL), pickle.loads(data)
    safe_pickle.check_tree(loaded, "x.pkl", safe_pickle.FLAME_MODEL)
    assert loaded["scalars"] == expected["scalars"] and loaded["set"] == expected["set"]
    assert [type(v) for v in loaded["scalars"]] == [type(v) for v in expected["scalars"]]
    for key in ("lmk_face_idx", "lmk_b_coords", "big_endian", "fortran"):
        np.testing.assert_array_equal(loaded[key], expected[key])
        assert loaded[key].dtype == expected[key].dtype
    assert loaded["fortran"].flags.f_contiguous


def test_prescan_counts_few_opcodes_and_copies_no_long_argument(tmp_path):
    raw = make_raw(np.random.default_rng(14), num_vertices=10, official=True)
    data = official_pickle_bytes(raw)
    assert len(list(pickletools.genops(data))) < safe_pickle.MAX_OPCODES / 100
    safe_pickle.prescan(data, FILE, safe_pickle.FLAME_MODEL)
    # A 100 MB string is stepped over, not read (the bound test measures the memory).
    path = tmp_path / "big.pkl"
    padded_pickle(path, 100 << 20, b"0N.")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = time.perf_counter()
        safe_pickle.prescan(data, "big.pkl", safe_pickle.FLAME_MODEL)
        assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------------------------
# Hostile pickles are refused without running.


class Reduces:
    """Pickles as func(*args)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Storage:
    pass


class PersistentPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return "storage-0" if isinstance(obj, Storage) else None


def hostile_pickles(marker):
    """name -> (pickle bytes, message pattern after 'FILE: ')."""
    touch = f"touch {marker}"
    m = str(marker).encode()
    raw = make_raw(np.random.default_rng(15), num_vertices=6, official=True)
    nested = official_content(raw)
    nested["shapedirs"]._depends_on_deps = {"x": Reduces(os.system, touch)}
    buffer = io.BytesIO()
    PersistentPickler(buffer, protocol=2).dump({"v_template": Storage()})
    flags = b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb"  # dtype state, flags 63
    forged = (
        P2
        + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        + b"(K\x01K\x01\x85cnumpy\ndtype\nU\x02f8\x89\x88\x87R"
        + flags
        + b"\x89T\x08\x00\x00\x00AAAAAAAAtb."
    )
    return {
        "os_system": (pickle.dumps(Reduces(os.system, touch), protocol=2), "refused to load"),
        "posix_system_protocol0": (
            b"cposix\nsystem\n(S'" + b"touch " + m + b"'\ntR.",
            r"refused to load 'posix.system'",
        ),
        "eval": (
            pickle.dumps(Reduces(eval, f"__import__('os').system('{touch}')"), protocol=2),
            r"refused to load '__builtin__.eval'",
        ),
        "exec_protocol4": (
            pickle.dumps(Reduces(exec, f"__import__('os').system('{touch}')"), protocol=4),
            r"refused to load 'builtins.exec'",
        ),
        "subprocess_popen": (
            pickle.dumps(Reduces(subprocess.Popen, ["touch", str(marker)]), protocol=2),
            r"refused to load '(subprocess|commands).Popen'",  # pickle's Python 2 name
        ),
        "getattr_chain": (
            b"c__builtin__\ngetattr\n(c__builtin__\n__import__\n(S'os'\ntRS'system'\ntR"
            + b"(S'touch "
            + m
            + b"'\ntR.",
            r"refused to load '__builtin__.getattr'",
        ),
        "inst_system": (b"(S'touch " + m + b"'\niposix\nsystem\n.", "refused to load"),
        "reconstructor_base_set": (
            b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nset\nNtR.",
            r"refused to unpickle copy_reg._reconstructor",
        ),
        "reconstructor_ndarray": (
            b"ccopy_reg\n_reconstructor\n(cnumpy\nndarray\nc__builtin__\nobject\nNtR.",
            r"refused to unpickle copy_reg._reconstructor",
        ),
        "reconstructor_state": (
            b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nobject\nS'x'\ntR.",
            r"refused to unpickle copy_reg._reconstructor with state",
        ),
        "ndarray_called_with_huge_shape": (
            b"cnumpy\nndarray\n((I1099511627776\ntS'f8'\ntR.",
            r"refused to unpickle calling numpy.ndarray",
        ),
        "reconstruct_huge_shape": (
            b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I1099511627776\ntS'b'\ntR.",
            r"refused to unpickle numpy _reconstruct",
        ),
        "object_array": (
            pickle.dumps({"v_template": np.array([Reduces(os.system, touch)])}, protocol=2),
            r"refused to unpickle numpy.dtype\('O8'\)",
        ),
        "object_array_protocol4": (
            pickle.dumps(np.array([1, Reduces(os.system, touch)], dtype=object), protocol=4),
            r"refused to unpickle numpy.dtype\('O8'\)",
        ),
        "structured_dtype": (
            pickle.dumps(np.zeros(2, dtype=[("a", "f8")]), protocol=2),
            r"refused to unpickle numpy.dtype\('V8'\)",
        ),
        "forged_dtype_flags": (forged, r"refused to unpickle numpy dtype <f8 with state"),
        "object_scalar": (
            b"cnumpy.core.multiarray\nscalar\n(cnumpy\ndtype\n(S'O8'\nI0\nI1\ntRS'AAAAAAAA'\ntR.",
            r"refused to unpickle numpy.dtype\('O8'\)",
        ),
        "codecs_rot13": (
            b"c_codecs\nencode\n(S'payload'\nS'rot13'\ntR.",
            r"refused to unpickle _codecs.encode\('payload', 'rot13'\)",
        ),
        "codecs_zlib": (
            P2 + b"c_codecs\nencode\nC\x03abc" + text("zlib_codec") + b"\x86R.",
            r"refused to unpickle _codecs.encode",
        ),
        "set_of_tuples": (
            P2 + b"c__builtin__\nset\n]K\x01\x85a\x85R.",
            r"refused to unpickle a set holds a tuple",
        ),
        "newobj_of_a_wrapper": (P2 + b"cnumpy\ndtype\n)\x81.", r"refused to unpickle creating"),
        "build_on_a_dict": (P2 + b"}}b.", r"refused to unpickle setting the state of a dict"),
        "append_to_a_dict": (P2 + b"}Na.", r"refused to unpickle adding items to a dict"),
        "nested_in_a_flame_dict": (
            official_pickle_bytes(raw, content=nested),
            r"refused to load '(posix|nt).system'",
        ),
        "persistent_id": (buffer.getvalue(), "refused a persistent id"),
    }


HOSTILE = sorted(hostile_pickles(Path("/nonexistent/x")))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_pickles_are_refused_without_running(tmp_path, name):
    marker = tmp_path / "pwned"
    data, message = hostile_pickles(marker)[name]
    path = tmp_path / FILE
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"{FILE}: {message}"):
        flame.load_model(path)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# Memory and time bombs are refused before anything is allocated.


@functools.cache
def bomb_pickles():
    """name -> (pickle bytes, message pattern after 'FILE: '); `padded` is written sparse."""
    csc = FakeCsc.__new__(FakeCsc)
    csc._shape, csc.maxprint = (10**6, 10**6), 50
    csc.indices, csc.indptr, csc.data = np.zeros(0, np.int32), np.zeros(2, np.int32), np.zeros(0)
    # t_k = (t_k-1, t_k-1) as a dict key: hashing t_60 would take 2**60 steps.
    tuple_keys = [P2 + b"})r" + u32(0)]
    for k in range(1, 61):
        tuple_keys.append(b"0j" + u32(k - 1) + b"j" + u32(k - 1) + b"\x86r" + u32(k))
    # l_k+1 = [l_k], 30,000 deep with a constant stack depth.
    nested = [P2 + b"]r" + u32(0)] + [b"0]j" + u32(k) + b"ar" + u32(k + 1) for k in range(30_000)]
    chumpy = b"cchumpy.ch\nCh\n)\x81}(" + text("x") + laughs(40) + b"ub"
    return {
        "binbytes8": (P4 + b"\x8e" + u64(1 << 40) + b"abc.", "expected 1099511627776 bytes"),
        "binunicode8": (P4 + b"\x8d" + u64(1 << 40) + b"abc.", "expected 1099511627776 bytes"),
        "bytearray8": (b"\x80\x05\x96" + u64(1 << 40) + b"abc.", "expected 1099511627776 bytes"),
        "binstring": (P2 + b"T" + struct.pack("<i", 2**31 - 1) + b"abc.", "expected 2147483647"),
        "binbytes": (b"\x80\x03B" + u32(2**32 - 1) + b"abc.", "expected 4294967295 bytes"),
        "frame": (P4 + b"\x95" + u64(1 << 40) + b"N.", "a frame of 1099511627776 bytes"),
        "long_binput": (P2 + b"Nr" + u32(2**31) + b".", "memo index 2147483648 after only 3"),
        "long_binget": (P2 + b"j" + u32(2**31) + b".", "memo index 2147483648 that was never"),
        "put_text": (b"Np99999999999\n.", "memo index 99999999999 after only 2"),
        "marks": (P2 + b"(" * 100_000 + b".", "more than 64 nested MARKs"),
        "nested_lists": (P2 + b"]" * 100_000 + b"a" * 99_999 + b".", "more than 10000 items"),
        "nested_via_memo": (b"".join(nested) + b".", "more than 100000 opcodes"),
        "opcode_count": (P2 + b"N0" * 1_000_000 + b"N.", "more than 100000 opcodes"),
        "long4": (P2 + b"\x8b" + u32(1 << 20) + b"\x01" * (1 << 20) + b".", "integer of more"),
        "long_line": (b"c" + b"a" * (1 << 20) + b"\nb\n.", "text argument longer than 65536"),
        "long_string_line": (b"S'" + b"a" * (1 << 20) + b"'\n.", "expected a pickled dict"),
        "billion_laughs": (
            in_flame_dict("v_template", laughs(40)),
            "'v_template' holds a Python list",
        ),
        "billion_laughs_in_chumpy": (in_flame_dict("v_template", chumpy), "'x' is a list"),
        "billion_laughs_dict_key": (b"".join(tuple_keys) + b"Ns.", "a dict key holds a tuple"),
        "sparse_dense_size": (
            official_pickle_bytes(None, content={"J_regressor": csc}),
            "sparse matrix of shape \\(1000000, 1000000\\) has more than 4194304 entries",
        ),
        "padded": (None, "memo index 2147483648 that was never stored"),
    }


PADDED_SIZE = 100 << 20  # the bomb comes after a real FLAME model's worth of array data
BOMB_NAMES = sorted(bomb_pickles())


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    for name, (data, _) in bomb_pickles().items():
        if data is not None:
            (folder / f"{name}.pkl").write_bytes(data)
    padded_pickle(folder / "padded.pkl", PADDED_SIZE, b"0j" + u32(2**31) + b".")
    return folder


@pytest.mark.parametrize("name", BOMB_NAMES)
def test_bombs_are_refused(bombs, name):
    with pytest.raises(ValueError, match=f"{name}.pkl: .*{bomb_pickles()[name][1]}"):
        flame.load_model(bombs / f"{name}.pkl")


CHILD = r"""
import json, re, resource, sys, time
from pathlib import Path
from flamenerf.geometry import flame

def peaks():
    # ru_maxrss (KiB) keeps a floor inherited at exec from the parent (pytest), so it can hide
    # growth below that floor; VmHWM is this process's own peak, and can be reset.
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = open("/proc/self/status").read()
    return ru, int(re.search(r"VmHWM:\s+(\d+)", status).group(1))

def reset_peak():  # the peak becomes the current size, so each load is measured alone
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

def growth(before):
    return [after - b for after, b in zip(peaks(), before)]

results, first = {}, peaks()
for path in sorted(Path(sys.argv[1]).glob("*.pkl")):
    reset_peak()
    before, start = peaks(), time.perf_counter()
    try:
        flame.load_model(path)
        error = None
    except ValueError as e:
        error = str(e)
    results[path.name] = [error, time.perf_counter() - start, growth(before)]
total = growth(first)
reset_peak()
before = peaks()
control = b"x" * (120 << 20)  # the measurement does see 120 MB
print(json.dumps({"results": results, "total": total, "control": growth(before)}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_bombs_are_refused_fast_and_small_in_a_fresh_process(bombs):
    """Each bomb is refused within 1 s with < 100 MB of peak memory growth, measured inside a
    fresh interpreter by getrusage's ru_maxrss and by /proc's VmHWM (reset before each load)."""
    repo = Path(flame.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(bombs)],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    limit_kib = 100 * 1024
    assert report["control"][1] > limit_kib  # VmHWM sees a 120 MB allocation
    assert sorted(report["results"]) == sorted(f"{n}.pkl" for n in BOMB_NAMES)
    for name, (error, seconds, kib) in report["results"].items():
        assert error is not None and error.startswith(f"{bombs / name}: "), (name, error)
        assert seconds < 1.0, (name, seconds)
        assert max(kib) < limit_kib, (name, kib)
    assert max(report["total"]) < limit_kib


# --------------------------------------------------------------------------------------------
# Result checks.


def test_check_tree_bounds_shared_and_deep_values():
    fmt = safe_pickle.TORCH_FRAME
    safe_pickle.check_tree({"a": [np.zeros(3), 1, "x", (None, 2.0)]}, "f", fmt)
    shared = [1]
    for _ in range(30):  # 2**31 leaves, 31 levels
        shared = [shared, shared]
    with pytest.raises(ValueError, match="f: refused: more than 100000 values"):
        safe_pickle.check_tree({"flame": shared}, "f", fmt)
    deep = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="f: refused: values nested more than 32"):
        safe_pickle.check_tree(deep, "f", fmt)
    with pytest.raises(ValueError, match="f: refused: holds a ChumpyArray"):
        safe_pickle.check_tree([safe_pickle.ChumpyArray()], "f", fmt)


def test_stand_ins_validate_their_state(tmp_path):
    path = tmp_path / FILE
    for cls, message in [
        (b"chumpy.ch\nCh", "without its array"),
        (b"scipy.sparse\ncsc_matrix", "missing"),
    ]:
        path.write_bytes(P2 + b"}(" + text("v_template") + b"c" + cls + b"\n)\x81u.")  # no BUILD
        with pytest.raises(ValueError, match=f"{FILE}: key 'v_template': .*{message}"):
            flame.load_model(path)
    ch = safe_pickle.ChumpyArray()
    ch.__setstate__({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="k: the chumpy array 'x' is a list"):
        ch.to_numpy("k")
    csc = safe_pickle.SparseMatrix()
    state = {
        "_shape": (3, 2),
        "data": np.ones(2),
        "indices": np.array([0, 5]),  # row 5 of 3
        "indptr": np.array([0, 1, 2]),
    }
    csc.__setstate__(state)
    with pytest.raises(ValueError, match="k: malformed sparse matrix state"):
        csc.to_numpy("k")
    csc.__setstate__(dict(state, indices=np.array([0, 2])))
    np.testing.assert_array_equal(csc.to_numpy("k"), [[1, 0], [0, 0], [0, 1]])


# --------------------------------------------------------------------------------------------
# Corrupted model files: a deterministic mutation set (usable by a fuzzer).

REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f", "kintree_table")


def _npz_bytes(raw):
    buffer = io.BytesIO()
    np.savez(buffer, **raw)
    return buffer.getvalue()


def flame_file_mutations(seed=0):
    """Deterministic corruptions of a valid official-style FLAME pickle and a spec .npz.

    Returns:
      A list of (name, file name, bytes): truncations (including the empty file), flipped
      opcode or header bytes, a wrong shape per key, NaN in arrays and missing keys. Every one
      must make `flame.load_model` raise ValueError whose message names the file.
    """
    raw = make_raw(np.random.default_rng(seed), num_vertices=6, official=True)
    pkl, npz = official_pickle_bytes(raw), _npz_bytes(raw)
    out = []
    for cut in sorted({0, 1, 2, 3, 20, len(pkl) // 8, len(pkl) // 4, len(pkl) // 2, len(pkl) - 1}):
        out.append((f"pkl_truncated_{cut}", "model.pkl", pkl[:cut]))
    for cut in (0, 10, len(npz) // 2, len(npz) - 1):
        out.append((f"npz_truncated_{cut}", "model.npz", npz[:cut]))
    positions = [pos for _, _, pos in pickletools.genops(pkl)]
    for pos in positions[1 :: len(positions) // 10][:10]:
        flipped = bytearray(pkl)
        flipped[pos] ^= 0xFF
        out.append((f"pkl_flipped_{pos}", "model.pkl", bytes(flipped)))
    # Zip signatures, a member name (local header, then central directory), array bytes (CRC).
    central = npz.rindex(b"PK\x01\x02")
    for pos in (0, 31, 200, len(npz) // 2, central, central + 47, len(npz) - 22):
        flipped = bytearray(npz)
        flipped[pos] ^= 0xFF
        out.append((f"npz_flipped_{pos}", "model.npz", bytes(flipped)))

    def with_value(key, value):  # the official content with one array replaced
        content = official_content(raw)
        content[key] = official_content({key: value})[key] if key != "J" else value
        return official_pickle_bytes(raw, content)

    for key in REQUIRED:
        bad = raw[key][..., :-1]
        out.append((f"pkl_shape_{key}", "model.pkl", with_value(key, bad)))
        out.append((f"npz_shape_{key}", "model.npz", _npz_bytes(dict(raw, **{key: bad}))))
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        bad = raw[key].copy()
        bad.reshape(-1)[-1] = np.nan
        out.append((f"pkl_nan_{key}", "model.pkl", with_value(key, bad)))
        if key in ("v_template", "weights"):
            out.append((f"npz_nan_{key}", "model.npz", _npz_bytes(dict(raw, **{key: bad}))))
    for key in REQUIRED:
        content = official_content(raw)
        del content[key]
        out.append((f"pkl_missing_{key}", "model.pkl", official_pickle_bytes(raw, content)))
    return out


MUTATIONS = flame_file_mutations()


def test_mutations_are_deterministic_and_about_fifty():
    assert 45 <= len(MUTATIONS) <= 70
    assert [(n, f, d) for n, f, d in flame_file_mutations()] == MUTATIONS


@pytest.mark.parametrize("name, filename, data", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_corrupted_model_files_raise_value_error_naming_the_file(tmp_path, name, filename, data):
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        flame.load_model(path)
    assert str(path) in str(info.value), (name, str(info.value))


def test_protocol5_frombuffer_refuses_forged_sizes_and_dtypes():
    good = pickle.dumps(np.arange(4.0), protocol=5)
    # Claim a larger shape than the bytes hold: refused, not read past the buffer.
    forged = good.replace(b"K\x04\x85", b"K\x40\x85")
    assert forged != good
    with pytest.raises(ValueError, match="_frombuffer"):
        safe_pickle.loads(forged, "x.pkl", safe_pickle.FLAME_MODEL)
    objects = pickle.dumps(np.array([1, None], dtype=object), protocol=5)
    with pytest.raises(ValueError, match="x.pkl"):
        safe_pickle.loads(objects, "x.pkl", safe_pickle.FLAME_MODEL)
