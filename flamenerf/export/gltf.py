# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The avatar asset (`Asset`) and its glTF 2.0 binary form (`write_glb`, `read_glb`).

The layout is the avatar contract's (docs/export.md): scene "avatar" with the nodes "room"
(static mesh), "head" (skinned, morphed mesh, skin "flame") and the joints "root" > "neck" >
"jaw"; one unlit material (KHR_materials_unlit, double-sided, vertex colours COLOR_0 stored
linear); `asset.extras.flamenerf` with the slider ranges and the default camera (a copy in
the scene's extras, which Blender's importer keeps as the scene's custom property and its
exporter writes back: a file re-exported from Blender still reads); one glTF animation per
driving sequence. One buffer, one buffer view per accessor (4-byte aligned), written with
pygltflib. A mesh without triangles is written as its node without a mesh.

`read_glb` reads the GLB container by hand (magic, version, lengths, chunks), then the JSON
with pygltflib, and checks everything the asset needs: names, types, component types, counts,
bounds of buffer views and indices, finite values, skin weights summing to 1. It reads what
other writers keeping the layout add (Blender: normals, morph-target normals, every joint's
translation, rotation and scale channels holding their rest values, STEP for constant tracks)
and ignores it. Every problem is a `flamenerf.errors.UserError` naming the file and the field
(a JSON path such as `accessors[3].count`), what was found and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import struct
import warnings
from typing import Any

import numpy as np
import pygltflib

from flamenerf.errors import UserError
from flamenerf.export import rig

GLB_MAGIC = b"glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
UNLIT = "KHR_materials_unlit"
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
_DTYPES = {
    FLOAT: np.float32,
    UNSIGNED_BYTE: np.uint8,
    UNSIGNED_SHORT: np.uint16,
    UNSIGNED_INT: np.uint32,
}
_WIDTHS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
WEIGHT_TOLERANCE = 2e-6  # |sum of a vertex's skin weights - 1| allowed when reading
FORMAT_VERSION = 1  # asset.extras.flamenerf.version


# --------------------------------------------------------------------------------------------
# The asset.


@dataclasses.dataclass
class Mesh:
    """A vertex-coloured triangle mesh in the world frame.

    Attributes:
      positions: float32 (V, 3).
      colours: float32 (V, 3) LINEAR colours in [0, 1].
      faces: uint32 (F, 3) vertex indices.
    """

    positions: np.ndarray
    colours: np.ndarray
    faces: np.ndarray

    @classmethod
    def empty(cls) -> Mesh:
        return cls(
            np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32)
        )


@dataclasses.dataclass
class SkinnedMesh(Mesh):
    """The head: a mesh with skin weights over (root, neck, jaw) and expression morph targets.

    Attributes:
      joints: uint8 (V, 4) joint indices (0 root, 1 neck, 2 jaw).
      weights: float32 (V, 4) their weights, rows summing to 1.
      targets: float32 (E, V, 3) displacement per unit expression coefficient.
    """

    joints: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.uint8))
    weights: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))
    targets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))

    @classmethod
    def empty(cls, num_expression: int = 0) -> SkinnedMesh:
        return cls(
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.uint32),
            np.zeros((0, 4), np.uint8),
            np.zeros((0, 4), np.float32),
            np.zeros((num_expression, 0, 3), np.float32),
        )


@dataclasses.dataclass
class Animation:
    """A driving sequence sampled at key frames (LINEAR interpolation between them).

    Attributes:
      name: the animation's name (the driving folder's name).
      times: float32 (K,) seconds, increasing.
      expression: float32 (K, E) morph weights.
      neck: float32 (K, 4) the neck's local rotation (quaternion x, y, z, w).
      jaw: float32 (K, 4) the jaw's local rotation.
      neck_translation: float32 (K, 3) the neck's local translation (the world: the root is
        the identity); None: the neck stays at its rest translation (no channel).
    """

    name: str
    times: np.ndarray
    expression: np.ndarray
    neck: np.ndarray
    jaw: np.ndarray
    neck_translation: np.ndarray | None = None


@dataclasses.dataclass
class Asset:
    """Everything avatar.glb holds.

    Attributes:
      room: the static mesh; head: the rigged one.
      skeleton: the joints' rest transforms; inverse_bind: float32 (3, 4, 4) as stored.
      info: asset.extras.flamenerf (names, slider ranges, default camera, near, far).
      animations: the driving sequences.
    """

    room: Mesh
    head: SkinnedMesh
    skeleton: rig.Skeleton
    inverse_bind: np.ndarray
    info: dict[str, Any]
    animations: list[Animation] = dataclasses.field(default_factory=list)

    @property
    def num_expression(self) -> int:
        return int(self.head.targets.shape[0])

    @property
    def triangles(self) -> int:
        return len(self.room.faces) + len(self.head.faces)

    @property
    def vertices(self) -> int:
        return len(self.room.positions) + len(self.head.positions)


def expression_names(count: int) -> list[str]:
    """["expression_00", "expression_01", ...]: the morph targets' names."""
    return [f"expression_{e:02d}" for e in range(count)]


# --------------------------------------------------------------------------------------------
# Writing.


class _Builder:
    """Appends accessors (one buffer view each, 4-byte aligned) to one binary buffer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[pygltflib.BufferView] = []
        self.accessors: list[pygltflib.Accessor] = []

    def view(self, data: np.ndarray, target: int | None = None, stride: int | None = None) -> int:
        """A buffer view of an array's bytes; its index."""
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        raw = np.ascontiguousarray(data).tobytes()
        self.views.append(
            pygltflib.BufferView(
                buffer=0,
                byteOffset=len(self.blob),
                byteLength=len(raw),
                byteStride=stride,
                target=target,
            )
        )
        self.blob.extend(raw)
        return len(self.views) - 1

    def _accessor(self, accessor: pygltflib.Accessor, values: np.ndarray, bounds: bool) -> int:
        flat = np.asarray(values).reshape(len(values), -1)
        if bounds:
            accessor.min = [float(v) for v in flat.min(axis=0)]
            accessor.max = [float(v) for v in flat.max(axis=0)]
        else:
            accessor.min, accessor.max = None, None
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def add(
        self,
        array: np.ndarray,
        kind: str,
        component: int,
        target: int | None = None,
        bounds: bool = False,
    ) -> int:
        """A tightly packed accessor; its index."""
        data = np.ascontiguousarray(array, dtype=_DTYPES[component])
        accessor = pygltflib.Accessor(
            bufferView=self.view(data, target), componentType=component, count=len(data), type=kind
        )
        return self._accessor(accessor, data, bounds)

    def add_colours(self, colours: np.ndarray) -> int:
        """COLOR_0 as normalised unsigned shorts, VEC3 padded to 8 bytes (byteStride 8: vertex
        attributes must start on 4-byte boundaries)."""
        quantised = np.round(np.clip(colours, 0.0, 1.0) * 65535.0).astype(np.uint16)
        padded = np.zeros((len(quantised), 4), np.uint16)
        padded[:, :3] = quantised
        accessor = pygltflib.Accessor(
            bufferView=self.view(padded, ARRAY_BUFFER, stride=8),
            componentType=UNSIGNED_SHORT,
            normalized=True,
            count=len(padded),
            type="VEC3",
        )
        return self._accessor(accessor, quantised, False)

    def add_sparse(self, array: np.ndarray) -> int:
        """A float VEC3 accessor of mostly zero rows: zeros, overridden by a sparse part holding
        the non-zero rows (none: no sparse part); min and max over every row."""
        data = np.ascontiguousarray(array, dtype=np.float32).reshape(-1, 3)
        rows = np.flatnonzero(np.any(data != 0, axis=1)).astype(np.uint32)
        accessor = pygltflib.Accessor(componentType=FLOAT, count=len(data), type="VEC3")
        accessor.bufferView = accessor.byteOffset = None  # zeros (byteOffset needs a view)
        if rows.size:
            accessor.sparse = pygltflib.Sparse(
                count=int(rows.size),
                indices=pygltflib.AccessorSparseIndices(
                    bufferView=self.view(rows), componentType=UNSIGNED_INT
                ),
                values=pygltflib.AccessorSparseValues(bufferView=self.view(data[rows])),
            )
        return self._accessor(accessor, data, True)


def _primitive(builder: _Builder, mesh: Mesh, skinned: bool) -> pygltflib.Primitive:
    attributes = pygltflib.Attributes(
        POSITION=builder.add(mesh.positions, "VEC3", FLOAT, ARRAY_BUFFER, bounds=True),
        COLOR_0=builder.add_colours(mesh.colours),
    )
    targets = []
    if skinned:
        attributes.JOINTS_0 = builder.add(mesh.joints, "VEC4", UNSIGNED_BYTE, ARRAY_BUFFER)
        attributes.WEIGHTS_0 = builder.add(mesh.weights, "VEC4", FLOAT, ARRAY_BUFFER)
        for target in mesh.targets:
            targets.append({"POSITION": builder.add_sparse(target)})
    indices = builder.add(mesh.faces.reshape(-1), "SCALAR", UNSIGNED_INT, ELEMENT_ARRAY_BUFFER)
    primitive = pygltflib.Primitive(attributes=attributes, indices=indices, material=0, mode=4)
    if targets:
        primitive.targets = targets
    return primitive


def normalised_weights(weights: np.ndarray) -> np.ndarray:
    """float32 (V, 4) skin weights, non-negative, whose float32 rows sum to 1 within 1 ulp-ish:
    the largest weight of each row takes the rounding remainder."""
    w = np.clip(np.asarray(weights, np.float64), 0.0, None)
    w = w / w.sum(axis=1, keepdims=True)
    out = w.astype(np.float32)
    rows = np.arange(len(out))
    largest = np.argmax(out, axis=1)
    rest = out.sum(axis=1, dtype=np.float32) - out[rows, largest]
    out[rows, largest] = np.float32(1.0) - rest
    return out


def write_glb(asset: Asset) -> bytes:
    """The asset as glTF 2.0 binary (the layout of the module docstring)."""
    builder = _Builder()
    names = expression_names(asset.num_expression)
    meshes, nodes = [], []
    for name, mesh, skinned in (("room", asset.room, False), ("head", asset.head, True)):
        node = pygltflib.Node(name=name)
        if len(mesh.faces):
            gltf_mesh = pygltflib.Mesh(name=name, primitives=[_primitive(builder, mesh, skinned)])
            if skinned and asset.num_expression:
                gltf_mesh.weights = [0.0] * asset.num_expression
                gltf_mesh.extras = {"targetNames": names}
            meshes.append(gltf_mesh)
            node.mesh = len(meshes) - 1
            if skinned:
                node.skin = 0
        nodes.append(node)
    skel = asset.skeleton
    nodes += [
        pygltflib.Node(name="root", children=[3]),
        pygltflib.Node(
            name="neck",
            translation=[float(v) for v in skel.neck_translation],
            rotation=[float(v) for v in skel.neck_rotation],
            children=[4],
        ),
        pygltflib.Node(name="jaw", translation=[float(v) for v in skel.jaw_translation]),
    ]
    inverse_bind = np.asarray(asset.inverse_bind, np.float32).transpose(0, 2, 1)  # column-major
    skins = [
        pygltflib.Skin(
            name="flame",
            joints=[2, 3, 4],
            skeleton=2,
            inverseBindMatrices=builder.add(inverse_bind.reshape(3, 16), "MAT4", FLOAT),
        )
    ]
    animations = []
    for animation in asset.animations:
        times = builder.add(animation.times, "SCALAR", FLOAT, bounds=True)
        samplers, channels = [], []
        outputs = []
        if asset.num_expression and len(asset.head.faces):  # weights need a morphed mesh
            outputs.append((1, "weights", animation.expression.reshape(-1), "SCALAR"))
        if animation.neck_translation is not None:
            outputs.append((3, "translation", animation.neck_translation, "VEC3"))
        outputs += [(3, "rotation", animation.neck, "VEC4"), (4, "rotation", animation.jaw, "VEC4")]
        for node, path, values, kind in outputs:
            samplers.append(
                pygltflib.AnimationSampler(
                    input=times, output=builder.add(values, kind, FLOAT), interpolation="LINEAR"
                )
            )
            channels.append(
                pygltflib.AnimationChannel(
                    sampler=len(samplers) - 1,
                    target=pygltflib.AnimationChannelTarget(node=node, path=path),
                )
            )
        animations.append(
            pygltflib.Animation(name=animation.name, samplers=samplers, channels=channels)
        )
    material = pygltflib.Material(
        name="unlit",
        doubleSided=True,
        extensions={UNLIT: {}},
        pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0
        ),
    )
    builder.blob.extend(b"\0" * (-len(builder.blob) % 4))
    info = dict(asset.info, version=FORMAT_VERSION, expression_names=names)
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(
            version="2.0", generator="flamenerf export", extras={"flamenerf": _plain(info)}
        ),
        extensionsUsed=[UNLIT],
        scene=0,
        scenes=[
            pygltflib.Scene(name="avatar", nodes=[0, 1, 2], extras={"flamenerf": _plain(info)})
        ],
        nodes=nodes,
        meshes=meshes,
        skins=skins,
        materials=[material],
        accessors=builder.accessors,
        bufferViews=builder.views,
        buffers=[pygltflib.Buffer(byteLength=len(builder.blob))],
        animations=animations,
    )
    gltf.set_binary_blob(bytes(builder.blob))
    chunks = gltf.save_to_bytes()
    return b"".join(chunks) if isinstance(chunks, list) else bytes(chunks)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy arrays and scalars become lists and Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# Reading.


def _fail(source: str, field: str, found: Any, expected: str) -> UserError:
    text = repr(found)
    if len(text) > 80:
        text = text[:77] + "..."
    return UserError(f"{source}: field '{field}': found {text}, expected {expected}")


def _container(data: bytes, source: str) -> tuple[dict[str, Any], bytes]:
    """The GLB's JSON (parsed) and BIN chunk, the container checked by hand."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UserError(f"{source}: found {type(data).__name__}, expected the bytes of a .glb file")
    data = bytes(data)
    if len(data) < 12:
        raise UserError(
            f"{source}: found {len(data)} bytes, expected a 12-byte GLB header and chunks"
        )
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != GLB_MAGIC:
        raise _fail(source, "header.magic", magic, "b'glTF' (a binary glTF file)")
    if version != GLB_VERSION:
        raise _fail(source, "header.version", version, "2 (glTF 2.0)")
    if length != len(data):
        raise _fail(source, "header.length", length, f"the file's size, {len(data)} bytes")
    chunks, offset = [], 12
    while offset < len(data):
        if offset + 8 > len(data):
            raise _fail(
                source, f"chunks[{len(chunks)}]", len(data) - offset, "an 8-byte chunk header"
            )
        size, kind = struct.unpack_from("<II", data, offset)
        if size % 4 or offset + 8 + size > len(data):
            raise _fail(
                source,
                f"chunks[{len(chunks)}].chunkLength",
                size,
                f"a multiple of 4 within the {len(data) - offset - 8} bytes left",
            )
        chunks.append((kind, data[offset + 8 : offset + 8 + size]))
        offset += 8 + size
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise _fail(source, "chunks[0].chunkType", chunks[0][0] if chunks else None, "JSON")
    if len(chunks) < 2 or chunks[1][0] != CHUNK_BIN:
        raise _fail(source, "chunks[1].chunkType", chunks[1][0] if len(chunks) > 1 else None, "BIN")
    try:
        raw = json.loads(chunks[0][1].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(source, "chunks[0] (JSON)", str(error), "UTF-8 JSON") from None
    if not isinstance(raw, dict):
        raise _fail(source, "chunks[0] (JSON)", type(raw).__name__, "a JSON object")
    return raw, chunks[1][1]


class _Reader:
    """Reads and checks accessors of one GLB."""

    def __init__(self, gltf: pygltflib.GLTF2, blob: bytes, source: str):
        self.gltf, self.blob, self.source = gltf, blob, source

    def fail(self, field: str, found: Any, expected: str) -> UserError:
        return _fail(self.source, field, found, expected)

    def item(self, name: str, items: list | None, index: Any) -> Any:
        items = items or []
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(items):
            raise self.fail(name, index, f"an index into the {len(items)} {name.split('[')[0]}")
        return items[index]

    def _view_values(
        self, view_index: Any, offset: Any, dtype: np.dtype, width: int, count: int, where: str
    ) -> np.ndarray:
        """`count` elements of `width` components read from a buffer view: (count, width)."""
        view = self.item(f"{where}.bufferView (bufferViews)", self.gltf.bufferViews, view_index)
        vwhere = f"bufferViews[{view_index}]"
        if view.buffer != 0:
            raise self.fail(f"{vwhere}.buffer", view.buffer, "0 (the GLB's binary chunk)")
        for name in ("byteOffset", "byteLength"):
            value = getattr(view, name)
            if name == "byteOffset" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self.fail(f"{vwhere}.{name}", value, "a non-negative integer")
        if offset is not None and (not isinstance(offset, int) or offset < 0):
            raise self.fail(f"{where}.byteOffset", offset, "a non-negative integer")
        element = dtype.itemsize * width
        stride = view.byteStride or element
        if not isinstance(stride, int) or stride < element:
            raise self.fail(f"{vwhere}.byteStride", view.byteStride, f"an integer >= {element}")
        start = (view.byteOffset or 0) + (offset or 0)
        view_end = (view.byteOffset or 0) + view.byteLength
        needed = start + stride * (count - 1) + element
        if view_end > len(self.blob) or needed > view_end:
            raise self.fail(
                f"{vwhere}.byteLength",
                view.byteLength,
                f"room for {count} elements of {element} bytes within the "
                f"{len(self.blob)}-byte binary chunk",
            )
        raw = np.frombuffer(self.blob, np.uint8, count=needed - start, offset=start)
        rows = np.lib.stride_tricks.as_strided(raw, (count, element), (stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(count, width)

    def accessor(
        self,
        index: Any,
        field: str,
        kinds: tuple[str, ...],
        components: tuple[int, ...],
        count: int | None = None,
    ) -> np.ndarray:
        """The accessor's values (dense or sparse), float64 or integer (count, width)."""
        acc = self.item(f"{field} (accessors)", self.gltf.accessors, index)
        where = f"accessors[{index}]"
        if acc.type not in kinds:
            raise self.fail(f"{where}.type", acc.type, " or ".join(kinds) + f" (for {field})")
        if acc.componentType not in components:
            raise self.fail(
                f"{where}.componentType", acc.componentType, " or ".join(map(str, components))
            )
        number = isinstance(acc.count, int) and not isinstance(acc.count, bool)
        if not number or acc.count < 1 or (count is not None and acc.count != count):
            expected = str(count) if count is not None else ">= 1"
            raise self.fail(f"{where}.count", acc.count, expected)
        dtype = np.dtype(_DTYPES[acc.componentType]).newbyteorder("<")
        width = _WIDTHS[acc.type]
        if acc.bufferView is None:
            values = np.zeros((acc.count, width), dtype)
        else:
            values = self._view_values(
                acc.bufferView, acc.byteOffset, dtype, width, acc.count, where
            )
        if acc.sparse is not None:
            values = self._sparse(acc, values, dtype, width, where)
        if acc.componentType == FLOAT:
            if not np.all(np.isfinite(values)):
                raise self.fail(where, "non-finite values", "finite numbers")
            if acc.normalized:
                raise self.fail(f"{where}.normalized", True, "false for float components")
            return values.astype(np.float64)
        if acc.normalized:
            return values.astype(np.float64) / np.iinfo(dtype).max
        return values

    def _sparse(
        self, acc: Any, values: np.ndarray, dtype: np.dtype, width: int, where: str
    ) -> np.ndarray:
        sparse = acc.sparse
        count = _get(sparse, "count")
        if not isinstance(count, int) or not 1 <= count <= acc.count:
            raise self.fail(f"{where}.sparse.count", count, f"1 to {acc.count}")
        indices, sparse_values = _get(sparse, "indices"), _get(sparse, "values")
        component = _get(indices, "componentType")
        if component not in (UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT):
            raise self.fail(
                f"{where}.sparse.indices.componentType", component, "5121, 5123 or 5125"
            )
        rows = self._view_values(
            _get(indices, "bufferView"),
            _get(indices, "byteOffset"),
            np.dtype(_DTYPES[component]).newbyteorder("<"),
            1,
            count,
            f"{where}.sparse.indices",
        )[:, 0].astype(np.int64)
        if np.any(np.diff(rows) <= 0) or rows[-1] >= acc.count:
            raise self.fail(
                f"{where}.sparse.indices",
                "unsorted or out-of-range indices",
                f"strictly increasing indices below {acc.count}",
            )
        out = values.copy()
        out[rows] = self._view_values(
            _get(sparse_values, "bufferView"),
            _get(sparse_values, "byteOffset"),
            dtype,
            width,
            count,
            f"{where}.sparse.values",
        )
        return out


def _get(item: Any, name: str) -> Any:
    """A field of a JSON object that pygltflib left as a dict or made an object."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _node(gltf: pygltflib.GLTF2, name: str, source: str) -> tuple[int, pygltflib.Node]:
    for index, node in enumerate(gltf.nodes or []):
        if node.name == name:
            return index, node
    raise _fail(source, "nodes", [n.name for n in gltf.nodes or []], f"a node named '{name}'")


def _vector(value: Any, size: int, field: str, source: str, default: list[float]) -> np.ndarray:
    value = default if value is None else value
    ok = isinstance(value, list) and len(value) == size
    ok = ok and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise _fail(source, field, value, f"{size} finite numbers")
    return np.asarray(value, np.float64)


def _mesh(reader: _Reader, node: pygltflib.Node, name: str, skinned: bool) -> Mesh:
    source = reader.source
    if node.mesh is None:
        return SkinnedMesh.empty() if skinned else Mesh.empty()
    mesh = reader.item(f"nodes['{name}'].mesh (meshes)", reader.gltf.meshes, node.mesh)
    where = f"meshes[{node.mesh}]"
    if mesh.name != name:
        raise _fail(source, f"{where}.name", mesh.name, f"'{name}'")
    if len(mesh.primitives or []) != 1:
        raise _fail(source, f"{where}.primitives", len(mesh.primitives or []), "1 primitive")
    primitive = mesh.primitives[0]
    if primitive.mode not in (None, 4):
        raise _fail(source, f"{where}.primitives[0].mode", primitive.mode, "4 (triangles)")
    raw_attributes = primitive.attributes
    attributes = pygltflib.Attributes(
        **{
            name: (
                raw_attributes.get(name)
                if isinstance(raw_attributes, dict)
                else getattr(raw_attributes, name, None)
            )
            for name in ("POSITION", "COLOR_0", "JOINTS_0", "WEIGHTS_0")
        }
    )
    field = lambda a: f"{where}.primitives[0].attributes.{a}"
    positions = reader.accessor(attributes.POSITION, field("POSITION"), ("VEC3",), (FLOAT,))
    count = len(positions)
    colours = reader.accessor(
        attributes.COLOR_0,
        field("COLOR_0"),
        ("VEC3",),
        (FLOAT, UNSIGNED_SHORT, UNSIGNED_BYTE),
        count,
    )
    if np.any(colours < 0) or np.any(colours > 1):
        raise _fail(source, field("COLOR_0"), "values outside [0, 1]", "colours in [0, 1]")
    faces = reader.accessor(
        primitive.indices,
        f"{where}.primitives[0].indices",
        ("SCALAR",),
        (UNSIGNED_INT, UNSIGNED_SHORT),
    )
    if len(faces) % 3 or faces.max() >= count:
        raise _fail(
            source,
            f"{where}.primitives[0].indices",
            f"{len(faces)} indices up to {int(faces.max())}",
            f"a multiple of 3 indices below the {count} vertices",
        )
    faces = faces.reshape(-1, 3).astype(np.uint32)
    if not skinned:
        return Mesh(positions.astype(np.float32), colours.astype(np.float32), faces)
    joints = reader.accessor(
        attributes.JOINTS_0, field("JOINTS_0"), ("VEC4",), (UNSIGNED_BYTE, UNSIGNED_SHORT), count
    )
    if joints.max() >= len(rig.JOINT_NAMES):
        raise _fail(source, field("JOINTS_0"), int(joints.max()), "joint indices 0, 1 or 2")
    weights = reader.accessor(attributes.WEIGHTS_0, field("WEIGHTS_0"), ("VEC4",), (FLOAT,), count)
    error = np.abs(weights.sum(axis=1) - 1.0).max()
    if np.any(weights < 0) or error > WEIGHT_TOLERANCE:
        raise _fail(
            source,
            field("WEIGHTS_0"),
            f"rows summing to 1 +- {error:.2g}",
            "non-negative rows summing to 1",
        )
    targets = []
    for k, target in enumerate(primitive.targets or []):
        if not isinstance(target, dict) or "POSITION" not in target:
            raise _fail(
                source, f"{where}.primitives[0].targets[{k}]", target, "{'POSITION': accessor}"
            )
        targets.append(
            reader.accessor(
                target["POSITION"],
                f"{where}.primitives[0].targets[{k}].POSITION",
                ("VEC3",),
                (FLOAT,),
                count,
            )
        )
    names = (mesh.extras or {}).get("targetNames")
    if names != expression_names(len(targets)):
        raise _fail(
            source, f"{where}.extras.targetNames", names, f"{expression_names(len(targets))}"
        )
    return SkinnedMesh(
        positions.astype(np.float32),
        colours.astype(np.float32),
        faces,
        joints.astype(np.uint8),
        weights.astype(np.float32),
        np.asarray(targets, np.float32).reshape(len(targets), count, 3),
    )


# An animation's channels the asset carries (node, path), with their accessor types.
_TRACKS = {
    ("head", "weights"): "SCALAR",
    ("neck", "translation"): "VEC3",
    ("neck", "rotation"): "VEC4",
    ("jaw", "rotation"): "VEC4",
}
_PATHS = {"translation": "VEC3", "rotation": "VEC4", "scale": "VEC3"}
REST_TOLERANCE = 1e-5  # a joint channel outside the contract must stay this close to the rest


def _animations(
    reader: _Reader, num_expression: int, nodes: dict[str, int], rest: dict[tuple[str, str], Any]
) -> list[Animation]:
    """The animations: the contract's tracks (`_TRACKS`) on one time line. Other channels of
    the joints (root, neck, jaw), which other writers add (Blender writes every bone's
    translation, rotation and scale), are accepted when they hold the joint's rest value
    (`rest`: (joint, path) -> value) at every key, and ignored; a track that stays constant
    may be on any time line and use STEP interpolation."""
    names = {index: name for name, index in nodes.items()}
    out = []
    for a, animation in enumerate(reader.gltf.animations or []):
        where = f"animations[{a}]"
        tracks: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for c, channel in enumerate(animation.channels or []):
            sampler = reader.item(
                f"{where}.channels[{c}].sampler (samplers)", animation.samplers, channel.sampler
            )
            swhere = f"{where}.samplers[{channel.sampler}]"
            target = channel.target
            key = (names.get(target.node), target.path)
            joint = key[0] in rig.JOINT_NAMES and key[1] in _PATHS
            if key not in _TRACKS and not joint:
                raise _fail(
                    reader.source,
                    f"{where}.channels[{c}].target",
                    {"node": target.node, "path": target.path},
                    "the head's weights or a joint's translation, rotation or scale",
                )
            t = reader.accessor(sampler.input, f"{swhere}.input", ("SCALAR",), (FLOAT,))[:, 0]
            if np.any(np.diff(t) <= 0):
                raise _fail(reader.source, f"{swhere}.input", "unsorted times", "increasing times")
            width = num_expression if key == ("head", "weights") else 1
            kind = _TRACKS.get(key, _PATHS.get(key[1]))
            values = reader.accessor(
                sampler.output, f"{swhere}.output", (kind,), (FLOAT,), len(t) * width
            ).reshape(len(t), -1)
            constant = bool(np.all(np.abs(values - values[:1]) <= REST_TOLERANCE))
            if sampler.interpolation not in (None, "LINEAR") and not (
                sampler.interpolation == "STEP" and constant
            ):
                raise _fail(
                    reader.source,
                    f"{swhere}.interpolation",
                    sampler.interpolation,
                    "LINEAR (or STEP for a constant track)",
                )
            if key in _TRACKS:
                tracks[key] = (t, values)
                continue
            at_rest = np.asarray(rest[key], np.float64)
            if key[1] == "rotation":  # q and -q are the same rotation
                held = np.abs(values @ at_rest) >= 1.0 - REST_TOLERANCE
            else:
                held = np.all(np.abs(values - at_rest) <= REST_TOLERANCE, axis=1)
            if not np.all(held):
                raise _fail(
                    reader.source,
                    f"{swhere}.output",
                    f"the {key[0]}'s {key[1]} moving away from its rest",
                    f"the rest value {at_rest.round(6).tolist()} (the avatar animates the "
                    "head's weights, the neck's translation and rotation, the jaw's rotation)",
                )
        moving = [t for t, v in tracks.values() if np.any(np.abs(v - v[:1]) > REST_TOLERANCE)]
        lines = moving or [t for t, _ in tracks.values()]
        if not lines:
            raise _fail(reader.source, f"{where}.channels", "no tracks", "the avatar's tracks")
        times = max(lines, key=len)
        if any(not np.array_equal(t, times) for t in moving):
            raise _fail(reader.source, f"{where}.samplers", "other key times", "one time line")
        track = functools.partial(_track, tracks, times)
        out.append(
            Animation(
                name=str(animation.name),
                times=times.astype(np.float32),
                expression=track(("head", "weights"), np.zeros(num_expression)),
                neck=track(("neck", "rotation"), rest[("neck", "rotation")]),
                jaw=track(("jaw", "rotation"), rest[("jaw", "rotation")]),
                neck_translation=None
                if ("neck", "translation") not in tracks
                else track(("neck", "translation"), rest[("neck", "translation")]),
            )
        )
    return out


def _track(
    tracks: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    times: np.ndarray,
    key: tuple[str, str],
    default: Any,
) -> np.ndarray:
    """float32 (K, width): a track's values on the time line `times` (K,); a constant track on
    another time line repeated; `default` (width,) at every key when the track is missing."""
    k = len(times)
    if key not in tracks:
        return np.tile(np.asarray(default, np.float64), (k, 1)).astype(np.float32)
    t, values = tracks[key]
    if not np.array_equal(t, times):
        values = np.repeat(values[:1], k, axis=0)
    return values.reshape(k, -1).astype(np.float32)


# Integer fields of the objects the reader uses (pygltflib would coerce "4" to 4 silently).
_INTEGER_FIELDS = {
    "accessors": ("bufferView", "byteOffset", "componentType", "count"),
    "bufferViews": ("buffer", "byteOffset", "byteLength", "byteStride", "target"),
    "nodes": ("mesh", "skin"),
    "skins": ("inverseBindMatrices", "skeleton"),
}


def _check_integers(raw: dict[str, Any], source: str) -> None:
    for array, names in _INTEGER_FIELDS.items():
        items = raw.get(array, [])
        if not isinstance(items, list):
            raise _fail(source, array, type(items).__name__, "a JSON array")
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                raise _fail(source, f"{array}[{k}]", item, "a JSON object")
            for name in names:
                value = item.get(name)
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise _fail(source, f"{array}[{k}].{name}", value, "an integer")


def read_glb(data: bytes, source: str = "avatar.glb") -> Asset:
    """Reads and checks an avatar.glb written by `write_glb` (or a tool that kept its layout).

    Args:
      data: the file's bytes; source: the file's name for messages.

    Raises:
      UserError: naming `source` and the field, for a broken container, JSON the asset does not
        match, out-of-range indices, non-finite values or skin weights not summing to 1.
    """
    raw, blob = _container(data, source)
    _check_integers(raw, source)
    try:
        with warnings.catch_warnings():  # dataclasses_json warns about fields it coerces
            warnings.simplefilter("ignore")
            gltf = pygltflib.GLTF2.from_dict(raw)
    except Exception as error:  # pygltflib's dataclass conversion of malformed JSON
        raise _fail(source, "JSON", f"{type(error).__name__}: {error}", "glTF 2.0 JSON") from None
    try:
        return _read(gltf, blob, source)
    except UserError:
        raise
    except (AttributeError, TypeError, KeyError, ValueError, IndexError) as error:
        # A field of an unexpected JSON type that no check above named.
        raise _fail(
            source, "JSON", f"{type(error).__name__}: {error}", "the avatar layout"
        ) from None


def _read(gltf: pygltflib.GLTF2, blob: bytes, source: str) -> Asset:
    if getattr(gltf.asset, "version", None) != "2.0":
        raise _fail(source, "asset.version", getattr(gltf.asset, "version", None), "'2.0'")
    if len(gltf.buffers or []) != 1 or gltf.buffers[0].uri is not None:
        raise _fail(source, "buffers", len(gltf.buffers or []), "1 buffer (the GLB's binary chunk)")
    if not isinstance(gltf.buffers[0].byteLength, int) or gltf.buffers[0].byteLength > len(blob):
        raise _fail(
            source, "buffers[0].byteLength", gltf.buffers[0].byteLength, f"at most {len(blob)}"
        )
    scene = next((s for s in gltf.scenes or [] if s.name == "avatar"), None)
    if scene is None:
        raise _fail(source, "scenes", [s.name for s in gltf.scenes or []], "a scene named 'avatar'")
    if UNLIT not in (gltf.extensionsUsed or []):
        raise _fail(source, "extensionsUsed", gltf.extensionsUsed, f"to list {UNLIT}")
    info = (gltf.asset.extras or {}).get("flamenerf")
    if info is None and isinstance(scene.extras, dict):  # where Blender keeps it (docstring)
        info = scene.extras.get("flamenerf")
    if not isinstance(info, dict) or info.get("version") != FORMAT_VERSION:
        raise _fail(
            source,
            "asset.extras.flamenerf.version",
            None if not isinstance(info, dict) else info.get("version"),
            str(FORMAT_VERSION),
        )
    reader = _Reader(gltf, blob, source)
    nodes = {name: _node(gltf, name, source) for name in ("room", "head", "root", "neck", "jaw")}
    room = _mesh(reader, nodes["room"][1], "room", skinned=False)
    head = _mesh(reader, nodes["head"][1], "head", skinned=True)
    names = info.get("expression_names")
    if not isinstance(names, list):
        raise _fail(source, "asset.extras.flamenerf.expression_names", names, "a list of names")
    if not len(head.faces):
        head = SkinnedMesh.empty(len(names))
    if len(head.faces) and names != expression_names(len(head.targets)):
        raise _fail(
            source,
            "asset.extras.flamenerf.expression_names",
            names,
            f"{len(head.targets)} names expression_00, ...",
        )
    neck, jaw = nodes["neck"][1], nodes["jaw"][1]
    if nodes["jaw"][0] not in (neck.children or []) or nodes["neck"][0] not in (
        nodes["root"][1].children or []
    ):
        raise _fail(source, "nodes", "another hierarchy", "root > neck > jaw")
    skeleton = rig.Skeleton(
        neck_translation=_vector(
            neck.translation, 3, "nodes['neck'].translation", source, [0.0] * 3
        ),
        neck_rotation=_vector(
            neck.rotation, 4, "nodes['neck'].rotation", source, [0.0, 0.0, 0.0, 1.0]
        ),
        jaw_translation=_vector(jaw.translation, 3, "nodes['jaw'].translation", source, [0.0] * 3),
    )
    skins = gltf.skins or []
    if len(skins) != 1 or skins[0].name != "flame":
        raise _fail(source, "skins", [s.name for s in skins], "one skin named 'flame'")
    joints = [nodes[n][0] for n in rig.JOINT_NAMES]
    if skins[0].joints != joints:
        raise _fail(source, "skins[0].joints", skins[0].joints, f"{joints} (root, neck, jaw)")
    inverse_bind = reader.accessor(
        skins[0].inverseBindMatrices, "skins[0].inverseBindMatrices", ("MAT4",), (FLOAT,), 3
    )
    inverse_bind = inverse_bind.reshape(3, 4, 4).transpose(0, 2, 1)
    if len(head.faces) and nodes["head"][1].skin != 0:
        raise _fail(source, "nodes['head'].skin", nodes["head"][1].skin, "0 (the skin 'flame')")
    num_expression = len(head.targets) if len(head.faces) else len(names or [])
    rest = {(name, path): [0.0] * 3 for name in rig.JOINT_NAMES for path in ("translation",)}
    rest.update({(name, "rotation"): [0.0, 0.0, 0.0, 1.0] for name in rig.JOINT_NAMES})
    rest.update({(name, "scale"): [1.0] * 3 for name in rig.JOINT_NAMES})
    rest[("neck", "translation")] = skeleton.neck_translation
    rest[("neck", "rotation")] = skeleton.neck_rotation
    rest[("jaw", "translation")] = skeleton.jaw_translation
    animations = _animations(reader, num_expression, {n: i for n, (i, _) in nodes.items()}, rest)
    return Asset(room, head, skeleton, inverse_bind.astype(np.float32), info, animations)
