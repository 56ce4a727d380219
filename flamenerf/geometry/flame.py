# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME head model in pure-functional JAX.

FLAME (Li et al. 2017) is a linear-blend-skinned head mesh with identity ("shape") and
expression blendshapes, pose correctives and five joints: root, neck, jaw, left eye, right eye
(parents -1, 0, 1, 1, 1). This module loads a model file (the official `generic_model.pkl`,
or an `.npz` with the same keys, see `docs/capture-format.md`) and evaluates it:

    model = load_model("generic_model.pkl")
    out = forward(model, FlameParams(expression=expr, jaw_pose=[0.2, 0, 0]))
    out.vertices  # (..., V, 3)

Conventions follow the reference implementations (smplx's `FLAME`, FLAME_PyTorch): poses are
axis-angle vectors; pose-corrective features are the row-major entries of (R_j - I) of the four
non-root joints; joints are regressed from the vertices after the shape and expression offsets;
the global rotation pivots about the root joint; translation is added last.

Official pickles wrap arrays in chumpy objects and `J_regressor` in a scipy sparse matrix. They
are read by `flamenerf.io.safe_pickle`, whose FLAME allow-list holds only the numpy, scipy.sparse,
chumpy and set names such a file needs (chumpy itself is not needed); anything else is refused
before it runs, and so are pickle bombs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from flax import struct

from flamenerf.io import paths, safe_pickle

NUM_JOINTS = 5
JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
PARENTS = (-1, 0, 1, 1, 1)
NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)
# Identity/expression split of the official files' `shapedirs` columns.
OFFICIAL_NUM_SHAPE = 300
OFFICIAL_NUM_EXPRESSION = 100

# Sizes of each pose vector of FlameParams.
POSE_SIZES = {
    "global_pose": 3,
    "neck_pose": 3,
    "jaw_pose": 3,
    "eye_pose": 6,
    "translation": 3,
}


# --------------------------------------------------------------------------------------------
# The model pytree.


@struct.dataclass
class FlameModel:
    """A FLAME model as a pytree: arrays are leaves, sizes are static metadata.

    Attributes:
      v_template: (V, 3) template vertices.
      shapedirs: (V, 3, S) identity blendshapes.
      exprdirs: (V, 3, E) expression blendshapes.
      posedirs: (V, 3, 36) pose-corrective blendshapes.
      j_regressor: (5, V) dense joint regressor.
      weights: (V, 5) skinning weights.
      faces: (F, 3) int32 triangles.
      lmk_faces_idx: (L,) int32 face of each landmark, or None.
      lmk_bary_coords: (L, 3) barycentric coordinates of each landmark, or None.
    """

    v_template: jax.Array
    shapedirs: jax.Array
    exprdirs: jax.Array
    posedirs: jax.Array
    j_regressor: jax.Array
    weights: jax.Array
    faces: jax.Array
    lmk_faces_idx: jax.Array | None = None
    lmk_bary_coords: jax.Array | None = None

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_shape(self) -> int:
        return self.shapedirs.shape[-1]

    @property
    def num_expression(self) -> int:
        return self.exprdirs.shape[-1]

    @property
    def has_landmarks(self) -> bool:
        return self.lmk_faces_idx is not None

    def digest(self) -> str:
        """SHA-256 (hex) of every array of the model, their names, shapes and dtypes: what
        caches derived from a capture key the model by (a file moved or renamed keeps it)."""
        digest = hashlib.sha256()
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                digest.update(f"{field.name}|None".encode())
                continue
            array = np.ascontiguousarray(np.asarray(value))
            digest.update(f"{field.name}|{array.shape}|{array.dtype.str}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()


class FlameParams(NamedTuple):
    """FLAME parameters; every field is optional (None = zeros) and may carry batch dims.

    Attributes:
      shape: (..., <=S) identity coefficients, zero-padded to the model's S.
      expression: (..., <=E) expression coefficients, zero-padded to the model's E.
      global_pose: (..., 3) axis-angle rotation of the root joint.
      neck_pose: (..., 3) axis-angle rotation of the neck joint.
      jaw_pose: (..., 3) axis-angle rotation of the jaw joint.
      eye_pose: (..., 6) axis-angle rotations of the left eye, then the right eye.
      translation: (..., 3) translation added last.
    """

    shape: Any = None
    expression: Any = None
    global_pose: Any = None
    neck_pose: Any = None
    jaw_pose: Any = None
    eye_pose: Any = None
    translation: Any = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "FLAME parameters") -> FlameParams:
        """Reads the spec's `flame/ID.json` dictionary, checking every field strictly.

        Args:
          values: mapping with optional keys `shape`, `expression`, `global_pose`,
            `neck_pose`, `jaw_pose`, `eye_pose`, `translation`: flat lists (or 1-D numeric
            arrays) of finite numbers. A missing key means zeros.
          source: the file name used in error messages.

        Raises:
          ValueError: naming `source` and the field, for an unknown key, a value that is not
            a flat list of numbers (strings, bools and null are refused, never converted), a
            number outside float32's finite range, or a pose vector of the wrong length.
        """

        def found(value: Any) -> str:
            if value is None:
                return "null"
            if isinstance(value, (bool, np.bool_)):
                return f"{str(bool(value)).lower()} (a bool)"
            if isinstance(value, str):
                text = repr(value)
                return f"the string {text if len(text) <= 40 else text[:37] + '...'}"
            kind = {dict: "an object ", list: "a list ", tuple: "a list "}.get(type(value), "")
            text = repr(value)
            return kind + (text if len(text) <= 60 else text[:57] + "...")

        if not isinstance(values, Mapping):
            raise ValueError(
                f"{source}: found {found(values)}, expected a JSON object of FLAME parameters"
            )
        unknown = sorted(str(key) for key in values if key not in cls._fields)
        if unknown:
            raise ValueError(
                f"{source}: unknown field(s) {unknown}; expected some of {list(cls._fields)}"
            )
        limit = float(np.finfo(np.float32).max)
        fields = {}
        for name in cls._fields:
            if name not in values:
                continue
            value = values[name]
            size = f"{POSE_SIZES[name]} " if name in POSE_SIZES else ""
            if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
                items = value.tolist()
            elif isinstance(value, (list, tuple)):
                items = list(value)
            else:
                raise ValueError(
                    f"{source}: field '{name}': found {found(value)}, expected a list of "
                    f"{size}numbers (leave the field out for zeros)"
                )
            for index, item in enumerate(items):
                number = isinstance(item, (int, float, np.integer, np.floating))
                if isinstance(item, (bool, np.bool_)) or not number:
                    raise ValueError(
                        f"{source}: field '{name}' item {index}: found {found(item)}, "
                        "expected a number"
                    )
                if not abs(item) <= limit:  # NaN, infinities, beyond float32
                    raise ValueError(
                        f"{source}: field '{name}' has non-finite values (item {index}: "
                        f"{item!r}); expected finite numbers (|x| <= 3.4e38, float32)"
                    )
            if name in POSE_SIZES and len(items) != POSE_SIZES[name]:
                raise ValueError(
                    f"{source}: field '{name}' has {len(items)} numbers; "
                    f"expected {POSE_SIZES[name]}"
                )
            fields[name] = np.asarray(items, dtype=np.float32).reshape(-1)
        return cls(**fields)

    def to_dict(self) -> dict[str, list[float]]:
        """The spec's `flame/ID.json` dictionary of this (unbatched) parameter set."""
        return {
            name: np.asarray(value, dtype=np.float64).tolist()
            for name, value in self._asdict().items()
            if value is not None
        }


class FlameOutput(NamedTuple):
    """Posed FLAME mesh.

    Attributes:
      vertices: (..., V, 3) posed vertices.
      joints: (..., 5, 3) posed joints (root, neck, jaw, left eye, right eye), translated.
      landmarks: (..., L, 3) landmarks, or None when the model has no embedding.
    """

    vertices: jax.Array
    joints: jax.Array
    landmarks: jax.Array | None


# --------------------------------------------------------------------------------------------
# Forward.


def rodrigues(rotvec: jax.Array) -> jax.Array:
    """Rotation matrices from axis-angle vectors, with finite gradients at zero.

    Args:
      rotvec: (..., 3) axis-angle vectors (radians).

    Returns:
      (..., 3, 3) rotation matrices R = I + sin(t)/t K + (1 - cos(t))/t^2 K^2, K = [rotvec]_x.
    """
    theta2 = jnp.sum(rotvec * rotvec, axis=-1)[..., None, None]
    small = theta2 < 1e-8
    safe_theta2 = jnp.where(small, 1.0, theta2)
    safe_theta = jnp.sqrt(safe_theta2)
    # Taylor expansions of sin(t)/t and (1 - cos(t))/t^2 near zero.
    a = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(safe_theta) / safe_theta)
    b = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(safe_theta)) / safe_theta2)
    x, y, z = rotvec[..., 0], rotvec[..., 1], rotvec[..., 2]
    zero = jnp.zeros_like(x)
    k = jnp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1)
    k = k.reshape(rotvec.shape[:-1] + (3, 3))
    eye = jnp.eye(3, dtype=rotvec.dtype)
    return eye + a * k + b * (k @ k)


def _as_vector(value: Any, size: int, name: str, batch_shape: tuple[int, ...]) -> jax.Array:
    """A parameter vector (..., n<=size) zero-padded to (*batch_shape, size).

    Concrete values are checked and padded in numpy (one transfer instead of a handful of
    dispatched operations per field: stacking a capture's frames is host work)."""
    if value is None:
        return jnp.zeros(batch_shape + (size,), jnp.float32)
    traced = isinstance(value, jax.core.Tracer)
    xp = jnp if traced else np
    array = xp.asarray(value, np.float32)
    if array.ndim == 0:
        raise ValueError(f"FlameParams.{name}: expected a vector (..., {size}), found a scalar")
    n = array.shape[-1]
    if n > size:
        raise ValueError(
            f"FlameParams.{name}: has {n} coefficients (shape {tuple(array.shape)}); "
            f"the model takes at most {size}"
        )
    if not traced and not np.isfinite(array).all():
        raise ValueError(f"FlameParams.{name}: has non-finite values")
    array = xp.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, size - n)])
    return jnp.asarray(xp.broadcast_to(array, batch_shape + (size,)))


def _batch_shape(params: FlameParams) -> tuple[int, ...]:
    shapes = [np.shape(v)[:-1] for v in params if v is not None]
    try:
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    except ValueError:
        raise ValueError(
            f"FlameParams: batch dimensions do not broadcast: "
            f"{ {k: np.shape(v) for k, v in params._asdict().items() if v is not None} }"
        ) from None


def padded(model: FlameModel, params: FlameParams) -> FlameParams:
    """Params with every field present, zero-padded, broadcast to one batch shape.

    Raises:
      ValueError: a field with too many coefficients, a pose of the wrong length,
        non-finite values (concrete inputs), or batch shapes that do not broadcast.
    """
    batch = _batch_shape(params)
    sizes = dict(POSE_SIZES, shape=model.num_shape, expression=model.num_expression)
    out = {}
    for name in FlameParams._fields:
        value = getattr(params, name)
        if name in POSE_SIZES and value is not None and np.shape(value)[-1:] != (sizes[name],):
            raise ValueError(
                f"FlameParams.{name}: expected shape (..., {sizes[name]}), found {np.shape(value)}"
            )
        out[name] = _as_vector(value, sizes[name], name, batch)
    return FlameParams(**out)


def forward(model: FlameModel, params: FlameParams) -> FlameOutput:
    """Poses the FLAME mesh: blendshapes, joint regression, pose correctives, LBS.

    Args:
      model: the FLAME model.
      params: parameters with any common leading batch shape (...).

    Returns:
      FlameOutput with vertices (..., V, 3), joints (..., 5, 3), landmarks (..., L, 3) or None.
    """
    p = padded(model, params)
    # Shape and expression blendshapes.
    v_shaped = (
        model.v_template
        + jnp.einsum("vcs,...s->...vc", model.shapedirs, p.shape)
        + jnp.einsum("vce,...e->...vc", model.exprdirs, p.expression)
    )
    joints = jnp.einsum("jv,...vc->...jc", model.j_regressor, v_shaped)  # (..., 5, 3)

    # Rotations of root, neck, jaw, left eye, right eye.
    pose = jnp.stack(
        [p.global_pose, p.neck_pose, p.jaw_pose, p.eye_pose[..., :3], p.eye_pose[..., 3:]],
        axis=-2,
    )
    rotations = rodrigues(pose)  # (..., 5, 3, 3)
    pose_feature = (rotations[..., 1:, :, :] - jnp.eye(3)).reshape(
        rotations.shape[:-3] + (NUM_POSE_FEATURES,)
    )
    v_posed = v_shaped + jnp.einsum("vcp,...p->...vc", model.posedirs, pose_feature)

    # World transforms along the kinematic tree; each joint rotates about its own position.
    world_rot = [rotations[..., 0, :, :]]
    world_pos = [joints[..., 0, :]]
    for j in range(1, NUM_JOINTS):
        parent = PARENTS[j]
        offset = joints[..., j, :] - joints[..., parent, :]
        world_rot.append(world_rot[parent] @ rotations[..., j, :, :])
        world_pos.append(
            world_pos[parent] + jnp.einsum("...ab,...b->...a", world_rot[parent], offset)
        )
    world_rot = jnp.stack(world_rot, axis=-3)  # (..., 5, 3, 3)
    world_pos = jnp.stack(world_pos, axis=-2)  # (..., 5, 3)
    # Skinning transform of joint j: x -> R_j (x - J_j) + G_j.
    skin_trans = world_pos - jnp.einsum("...jab,...jb->...ja", world_rot, joints)
    blend_rot = jnp.einsum("vj,...jab->...vab", model.weights, world_rot)
    blend_trans = jnp.einsum("vj,...ja->...va", model.weights, skin_trans)
    vertices = jnp.einsum("...vab,...vb->...va", blend_rot, v_posed) + blend_trans

    translation = p.translation[..., None, :]
    vertices = vertices + translation
    posed_joints = world_pos + translation
    landmarks = None
    if model.has_landmarks:
        landmarks = barycentric_points(
            vertices, model.faces, model.lmk_faces_idx, model.lmk_bary_coords
        )
    return FlameOutput(vertices=vertices, joints=posed_joints, landmarks=landmarks)


def barycentric_points(
    vertices: jax.Array, faces: jax.Array, face_idx: jax.Array, bary: jax.Array
) -> jax.Array:
    """Points on a mesh given by faces and barycentric coordinates.

    Args:
      vertices: (..., V, 3); faces: (F, 3); face_idx: (L,); bary: (L, 3).

    Returns:
      (..., L, 3) points sum_k bary[l, k] * vertices[faces[face_idx[l], k]].
    """
    corners = vertices[..., faces[face_idx], :]  # (..., L, 3, 3)
    return jnp.einsum("...lkc,lk->...lc", corners, bary)


# --------------------------------------------------------------------------------------------
# Loading.


# Keys of a FLAME pickle (and of a landmark embedding) that the loader reads: their values
# must be arrays. Other keys (`J`, `bs_style`, `bs_type`, ...) are ignored.
_MODEL_KEYS = frozenset(
    {
        "v_template",
        "shapedirs",
        "posedirs",
        "J_regressor",
        "kintree_table",
        "weights",
        "f",
        "num_shape",
        "num_expression",
        "lmk_faces_idx",
        "lmk_bary_coords",
        "lmk_face_idx",
        "lmk_b_coords",
    }
)
_ARRAY_LIKE = (np.ndarray, np.generic, int, float, bool, str, bytes, type(None))


def load_pickle(path: str | Path) -> dict[str, Any]:
    """Loads a FLAME-style pickle (Python 2 or 3) safely into numpy arrays.

    The file is read by `flamenerf.io.safe_pickle` with its FLAME allow-list: numpy arrays and
    scalars of plain dtypes, chumpy arrays (`chumpy.ch.Ch`, whose state holds the array `x`
    beside a set, a dict, None and bools), scipy sparse matrices and sets of plain values.
    Anything else the pickle names is refused before it runs, and pickle bombs (huge declared
    lengths, memo indices, nesting or opcode counts) before anything is allocated. Chumpy and
    sparse values become numpy arrays. The model keys (`v_template`, ..., `lmk_b_coords`) must
    hold arrays or numbers, never Python lists or dicts (a few shared lists can stand for 2**40
    elements); other keys keep only numbers and strings and drop containers unread.

    Raises:
      ValueError: naming the file: not a pickled dict, a forbidden global or call, a pickle
        bomb, a malformed chumpy or sparse value, or a container under a model key.
    """
    path = paths.as_path(path)
    if paths.is_remote(path):  # a URL: read whole (local files are memory-mapped)
        data = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(data)):
            raise ValueError(f"{path}: a zip archive (torch.save?), not a FLAME pickle")
        content = safe_pickle.loads(data, str(path), safe_pickle.FLAME_MODEL)
    else:
        if zipfile.is_zipfile(path):
            raise ValueError(f"{path}: a zip archive (torch.save?), not a FLAME pickle")
        content = safe_pickle.load_file(path, safe_pickle.FLAME_MODEL)  # PickleRefused: ValueError
    if type(content) is not dict:
        raise ValueError(f"{path}: expected a pickled dict, found {type(content).__name__}")
    arrays: dict[str, Any] = {}
    for key, value in content.items():  # keys are plain values (str, bytes, numbers, None)
        name = key if isinstance(key, str) else repr(key)
        where = f"{path}: key '{name[:80]}'"
        if isinstance(value, safe_pickle.StandIn):
            value = value.to_numpy(where)
        if isinstance(value, _ARRAY_LIKE):
            arrays[name] = value
        elif name in _MODEL_KEYS:
            raise ValueError(
                f"{where} holds a Python {type(value).__name__}; expected a numpy array "
                "(or a chumpy array or scipy sparse matrix)"
            )
    return arrays


def _npz_error(path: Path, error: Exception) -> ValueError:
    if isinstance(error, ValueError) and "allow_pickle" in str(error):
        return ValueError(f"{path}: cannot read without pickles ({error})")
    return ValueError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})")


def _load_npz(path: paths.AnyPath) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, never unpickling; any reading failure is a ValueError (a
    corrupted zip can raise EOFError, RuntimeError, NotImplementedError, zlib.error, ...)."""
    with path.open("rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive of named arrays")
    if not magic.startswith(b"PK\x03\x04"):
        found = "an empty file" if not magic else f"it starts with {magic!r}"
        raise ValueError(f"{path}: not a readable .npz file ({found}; expected a zip archive)")
    source = io.BytesIO(path.read_bytes()) if paths.is_remote(path) else path
    try:
        npz = np.load(source, allow_pickle=False)
    except Exception as error:
        raise _npz_error(path, error) from None
    try:
        with npz:
            return {k: npz[k] for k in npz.files}
    except Exception as error:
        raise _npz_error(path, error) from None


def _array(raw: Mapping[str, Any], key: str, source: Path, ndim: int) -> np.ndarray:
    if key not in raw:
        raise ValueError(f"{source}: missing key '{key}'")
    value = raw[key]
    if scipy.sparse.issparse(value):
        value = value.toarray()
    try:
        array = np.asarray(value)
    except Exception:
        raise ValueError(f"{source}: key '{key}' is not an array") from None
    if array.ndim != ndim or array.dtype.kind not in "biuf":
        raise ValueError(
            f"{source}: key '{key}' must be a {ndim}-D numeric array, "
            f"found shape {array.shape} dtype {array.dtype}"
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{source}: key '{key}' has non-finite values")
    return array


def _expect_shape(array: np.ndarray, expected: tuple[int, ...], key: str, source: Path) -> None:
    if array.shape != expected:
        raise ValueError(f"{source}: key '{key}' has shape {array.shape}; expected {expected}")


_SPLIT_KEYS = ("num_shape", "num_expression")


def _count(raw: Mapping[str, Any], key: str, source: Path) -> int:
    """A scalar integer key (num_shape or num_expression) of a model file."""
    if key not in raw:
        raise ValueError(
            f"{source}: key '{key}' is missing (num_shape and num_expression go together)"
        )
    value = np.asarray(raw[key])
    if value.shape != () or value.dtype.kind not in "iu":
        raise ValueError(
            f"{source}: key '{key}' must be a scalar integer, found {value.dtype} of shape "
            f"{value.shape}"
        )
    return int(value)


def _split(raw: Mapping[str, Any], columns: int, source: Path) -> tuple[int, int]:
    """Identity/expression split of `shapedirs` columns."""
    if "num_shape" in raw or "num_expression" in raw:
        num_shape, num_expression = (_count(raw, key, source) for key in _SPLIT_KEYS)
        if num_shape < 0 or num_expression < 0 or num_shape + num_expression != columns:
            raise ValueError(
                f"{source}: num_shape ({num_shape}) + num_expression ({num_expression}) must "
                f"equal the {columns} columns of 'shapedirs'"
            )
        return num_shape, num_expression
    expected = OFFICIAL_NUM_SHAPE + OFFICIAL_NUM_EXPRESSION
    if columns != expected:
        raise ValueError(
            f"{source}: key 'shapedirs' has {columns} columns; without 'num_shape' and "
            f"'num_expression' keys a FLAME file must have {expected} (300 shape + 100 expression)"
        )
    return OFFICIAL_NUM_SHAPE, OFFICIAL_NUM_EXPRESSION


def model_from_arrays(raw: Mapping[str, Any], source: str | Path = "FLAME model") -> FlameModel:
    """Validates the spec's FLAME arrays and builds a FlameModel.

    Args:
      raw: mapping with keys v_template, shapedirs, posedirs, J_regressor (dense or sparse),
        kintree_table, weights, f; optional num_shape/num_expression, lmk_faces_idx,
        lmk_bary_coords. Other keys are ignored.
      source: file name for error messages.

    Raises:
      ValueError: naming the key, the shape found and the shape expected.
    """
    source = paths.as_path(source) if paths.is_remote(source) else Path(source)
    v_template = _array(raw, "v_template", source, 2)
    num_vertices = v_template.shape[0]
    _expect_shape(v_template, (num_vertices, 3), "v_template", source)
    shapedirs = _array(raw, "shapedirs", source, 3)
    _expect_shape(shapedirs, (num_vertices, 3, shapedirs.shape[2]), "shapedirs", source)
    num_shape, _ = _split(raw, shapedirs.shape[2], source)
    posedirs = _array(raw, "posedirs", source, 3)
    _expect_shape(posedirs, (num_vertices, 3, NUM_POSE_FEATURES), "posedirs", source)
    j_regressor = _array(raw, "J_regressor", source, 2)
    _expect_shape(j_regressor, (NUM_JOINTS, num_vertices), "J_regressor", source)
    kintree = _array(raw, "kintree_table", source, 2)
    _expect_shape(kintree, (2, NUM_JOINTS), "kintree_table", source)
    # kintree_table[0, 0] is a sentinel; the remaining parents must be FLAME's tree.
    if [int(p) for p in kintree[0, 1:]] != list(PARENTS[1:]):
        raise ValueError(
            f"{source}: key 'kintree_table' has parents {kintree[0, 1:].tolist()} for joints "
            f"1-4; expected {list(PARENTS[1:])} (root, neck, jaw, left eye, right eye)"
        )
    weights = _array(raw, "weights", source, 2)
    _expect_shape(weights, (num_vertices, NUM_JOINTS), "weights", source)
    faces = _array(raw, "f", source, 2)
    _expect_shape(faces, (faces.shape[0], 3), "f", source)
    if faces.dtype.kind == "f" or faces.min(initial=0) < 0 or faces.max(initial=0) >= num_vertices:
        raise ValueError(
            f"{source}: key 'f' must hold integer vertex indices in [0, {num_vertices})"
        )
    landmarks: dict[str, np.ndarray] = {}
    if "lmk_faces_idx" in raw or "lmk_bary_coords" in raw:
        landmarks = _landmark_arrays(
            raw, source, "lmk_faces_idx", "lmk_bary_coords", faces.shape[0]
        )
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return FlameModel(
        v_template=f32(v_template),
        shapedirs=f32(shapedirs[:, :, :num_shape]),
        exprdirs=f32(shapedirs[:, :, num_shape:]),
        posedirs=f32(posedirs),
        j_regressor=f32(j_regressor),
        weights=f32(weights),
        faces=jnp.asarray(faces, jnp.int32),
        lmk_faces_idx=landmarks.get("faces"),
        lmk_bary_coords=landmarks.get("bary"),
    )


def _landmark_arrays(
    raw: Mapping[str, Any], source: Path, face_key: str, bary_key: str, num_faces: int
) -> dict[str, jax.Array]:
    face_idx = _array(raw, face_key, source, 1)
    bary = _array(raw, bary_key, source, 2)
    _expect_shape(bary, (face_idx.shape[0], 3), bary_key, source)
    if (
        face_idx.dtype.kind == "f"
        or face_idx.min(initial=0) < 0
        or (face_idx.max(initial=0) >= num_faces)
    ):
        raise ValueError(f"{source}: key '{face_key}' must hold face indices in [0, {num_faces})")
    return {"faces": jnp.asarray(face_idx, jnp.int32), "bary": jnp.asarray(bary, jnp.float32)}


def _read(path: paths.AnyPath) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: FLAME model file not found")
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix == ".pkl":
        return load_pickle(path)
    raise ValueError(f"{path}: expected a FLAME model file ending in .pkl or .npz")


def load_model(path: str | Path, landmark_embedding: str | Path | None = None) -> FlameModel:
    """Loads a FLAME model from an official `.pkl` or a spec `.npz` file.

    Args:
      path: the model file (a local path or a URL, `flamenerf.io.paths.as_path`).
      landmark_embedding: optional `flame_static_embedding.pkl` (keys `lmk_face_idx`,
        `lmk_b_coords`) or `.npz` (keys `lmk_faces_idx`, `lmk_bary_coords`); overrides an
        embedding stored in the model file.

    Raises:
      FileNotFoundError: a file is missing.
      ValueError: a malformed file, naming the key and the shapes found and expected.
    """
    path = paths.as_path(path)
    model = model_from_arrays(_read(path), path)
    if landmark_embedding is not None:
        model = with_landmark_embedding(model, landmark_embedding)
    return model


def with_landmark_embedding(model: FlameModel, path: str | Path) -> FlameModel:
    """The model with the landmark embedding read from `path` (.pkl or .npz)."""
    path = paths.as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: landmark embedding file not found")
    raw = _read(path)
    keys = (
        ("lmk_face_idx", "lmk_b_coords")
        if "lmk_face_idx" in raw
        else ("lmk_faces_idx", "lmk_bary_coords")
    )
    arrays = _landmark_arrays(raw, path, *keys, num_faces=model.faces.shape[0])
    return model.replace(lmk_faces_idx=arrays["faces"], lmk_bary_coords=arrays["bary"])


def stack_params(params: Sequence[FlameParams], model: FlameModel) -> FlameParams:
    """Stacks unbatched parameter sets into one batched FlameParams (padded to the model)."""
    full = [padded(model, p) for p in params]
    return FlameParams(*[jnp.stack(fields) for fields in zip(*full, strict=True)])
