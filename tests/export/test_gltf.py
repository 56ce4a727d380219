# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""avatar.glb: round trip, the binary layout parsed by hand (struct, not pygltflib) against the
contract, and a light fuzz of the reader (every bad file is a UserError naming it)."""

import json
import struct

import numpy as np
import pytest
from export_util import tiny_asset

from flamenerf.errors import UserError
from flamenerf.export import gltf, rig

COMPONENT = {5126: ("<f4", 4), 5121: ("<u1", 1), 5123: ("<u2", 2), 5125: ("<u4", 4)}
WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@pytest.fixture(scope="module")
def asset():
    return tiny_asset()


@pytest.fixture(scope="module")
def glb(asset):
    return gltf.write_glb(asset)


def parse(data):
    """(JSON dict, BIN bytes) of a GLB, by the GLB spec with struct."""
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    text = data[20 : 20 + json_length]
    assert text.rstrip(b" ") == text.rstrip()  # padded with spaces
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert bin_type == 0x004E4942 and bin_length % 4 == 0
    start = 28 + json_length
    assert start + bin_length == len(data)
    return json.loads(text), data[start : start + bin_length]


def read_accessor(doc, blob, index):
    """An accessor's values (count, width), dense or sparse, by the glTF spec."""
    acc = doc["accessors"][index]
    dtype, size = COMPONENT[acc["componentType"]]
    width = WIDTH[acc["type"]]
    count = acc["count"]
    if "bufferView" in acc:
        view = doc["bufferViews"][acc["bufferView"]]
        assert view["byteOffset"] % 4 == 0
        stride = view.get("byteStride", size * width)
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        rows = [np.frombuffer(blob, dtype, width, start + k * stride) for k in range(count)]
        values = np.array(rows, np.float64)
    else:
        values = np.zeros((count, width))
    if "sparse" in acc:
        sparse = acc["sparse"]
        index_view = doc["bufferViews"][sparse["indices"]["bufferView"]]
        index_type, _ = COMPONENT[sparse["indices"]["componentType"]]
        rows = np.frombuffer(blob, index_type, sparse["count"], index_view["byteOffset"])
        value_view = doc["bufferViews"][sparse["values"]["bufferView"]]
        values[rows] = np.frombuffer(
            blob, dtype, sparse["count"] * width, value_view["byteOffset"]
        ).reshape(-1, width)
    if acc.get("normalized"):
        values = values / np.iinfo(dtype).max
    return values


def test_round_trip(asset, glb):
    back = gltf.read_glb(glb)
    for name in ("positions", "faces"):
        np.testing.assert_array_equal(getattr(back.room, name), getattr(asset.room, name))
        np.testing.assert_array_equal(getattr(back.head, name), getattr(asset.head, name))
    np.testing.assert_allclose(back.room.colours, asset.room.colours, atol=1 / 65535)
    np.testing.assert_allclose(back.head.colours, asset.head.colours, atol=1 / 65535)
    np.testing.assert_array_equal(back.head.joints, asset.head.joints)
    np.testing.assert_array_equal(back.head.weights, asset.head.weights)
    np.testing.assert_array_equal(back.head.targets, asset.head.targets)
    np.testing.assert_allclose(back.inverse_bind, asset.inverse_bind)
    for name in ("neck_translation", "neck_rotation", "jaw_translation"):
        np.testing.assert_allclose(getattr(back.skeleton, name), getattr(asset.skeleton, name))
    assert back.info["expression_names"] == ["expression_00", "expression_01"]
    assert back.info["version"] == 1
    assert back.info["default_camera"] == asset.info["default_camera"]
    assert [a.name for a in back.animations] == ["drive"]
    for name in ("times", "expression", "neck", "jaw"):
        np.testing.assert_array_equal(
            getattr(back.animations[0], name), getattr(asset.animations[0], name)
        )


def test_layout_by_hand(asset, glb):
    doc, blob = parse(glb)
    assert doc["asset"]["version"] == "2.0"
    assert doc["extensionsUsed"] == ["KHR_materials_unlit"]
    assert len(doc["buffers"]) == 1 and doc["buffers"][0]["byteLength"] <= len(blob)
    (material,) = doc["materials"]
    assert material["name"] == "unlit" and material["doubleSided"] is True
    assert material["extensions"] == {"KHR_materials_unlit": {}}
    assert material["pbrMetallicRoughness"]["baseColorFactor"] == [1, 1, 1, 1]
    (scene,) = doc["scenes"]
    names = [n["name"] for n in doc["nodes"]]
    assert scene["name"] == "avatar"
    assert sorted(names[i] for i in scene["nodes"]) == ["head", "room", "root"]
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert names.index("neck") in nodes["root"]["children"]
    assert names.index("jaw") in nodes["neck"]["children"]
    for name in ("room", "head", "root"):
        assert not {"translation", "rotation", "scale", "matrix"} & set(nodes[name])
    np.testing.assert_allclose(nodes["neck"]["translation"], asset.skeleton.neck_translation)
    np.testing.assert_allclose(nodes["neck"]["rotation"], asset.skeleton.neck_rotation)
    np.testing.assert_allclose(nodes["jaw"]["translation"], asset.skeleton.jaw_translation)
    assert "rotation" not in nodes["jaw"]
    (skin,) = doc["skins"]
    assert skin["name"] == "flame" and [names[j] for j in skin["joints"]] == ["root", "neck", "jaw"]
    assert nodes["head"]["skin"] == 0
    inverse = read_accessor(doc, blob, skin["inverseBindMatrices"]).reshape(3, 4, 4)
    rest = [np.eye(4)]  # the rest world matrices, from the node transforms by hand
    for name in ("neck", "jaw"):
        local = np.eye(4)
        if "rotation" in nodes[name]:
            from export_util import quaternion_matrix

            local[:3, :3] = quaternion_matrix(nodes[name]["rotation"])
        local[:3, 3] = nodes[name]["translation"]
        rest.append(rest[-1] @ local)
    np.testing.assert_allclose(
        inverse.transpose(0, 2, 1) @ np.array(rest), np.tile(np.eye(4), (3, 1, 1)), atol=1e-6
    )
    for mesh_name, source in (("room", asset.room), ("head", asset.head)):
        mesh = doc["meshes"][nodes[mesh_name]["mesh"]]
        assert mesh["name"] == mesh_name
        (primitive,) = mesh["primitives"]
        attributes = primitive["attributes"]
        assert primitive["material"] == 0 and primitive.get("mode", 4) == 4
        position_accessor = doc["accessors"][attributes["POSITION"]]
        assert position_accessor["componentType"] == 5126 and position_accessor["type"] == "VEC3"
        positions = read_accessor(doc, blob, attributes["POSITION"])
        np.testing.assert_array_equal(positions, source.positions)
        np.testing.assert_allclose(position_accessor["min"], positions.min(axis=0), rtol=1e-6)
        np.testing.assert_allclose(position_accessor["max"], positions.max(axis=0), rtol=1e-6)
        colour = doc["accessors"][attributes["COLOR_0"]]
        assert colour["type"] == "VEC3" and colour["componentType"] in (5126, 5123)
        assert colour["componentType"] == 5126 or colour["normalized"] is True
        np.testing.assert_allclose(
            read_accessor(doc, blob, attributes["COLOR_0"]), source.colours, atol=1 / 65535
        )
        indices = doc["accessors"][primitive["indices"]]
        assert indices["componentType"] == 5125 and indices["type"] == "SCALAR"
        np.testing.assert_array_equal(
            read_accessor(doc, blob, primitive["indices"]).reshape(-1, 3), source.faces
        )
    head = doc["meshes"][nodes["head"]["mesh"]]
    attributes = head["primitives"][0]["attributes"]
    assert doc["accessors"][attributes["JOINTS_0"]]["componentType"] in (5121, 5123)
    weights = read_accessor(doc, blob, attributes["WEIGHTS_0"])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert head["weights"] == [0.0, 0.0]
    assert head["extras"]["targetNames"] == ["expression_00", "expression_01"]
    targets = head["primitives"][0]["targets"]
    assert [set(t) for t in targets] == [{"POSITION"}, {"POSITION"}]
    for e, target in enumerate(targets):
        values = read_accessor(doc, blob, target["POSITION"])
        np.testing.assert_array_equal(values, asset.head.targets[e])
        accessor = doc["accessors"][target["POSITION"]]
        np.testing.assert_allclose(accessor["min"], values.min(axis=0))
        np.testing.assert_allclose(accessor["max"], values.max(axis=0))
    extras = doc["asset"]["extras"]["flamenerf"]
    assert extras["version"] == 1 and extras["expression_names"] == [
        "expression_00",
        "expression_01",
    ]
    for key in (
        "expression_ranges",
        "jaw_range",
        "yaw_range",
        "pitch_range",
        "default_camera",
        "near",
        "far",
    ):
        assert key in extras
    (animation,) = doc["animations"]
    assert animation["name"] == "drive"
    by_target = {
        (names[c["target"]["node"]], c["target"]["path"]): animation["samplers"][c["sampler"]]
        for c in animation["channels"]
    }
    assert set(by_target) == {("head", "weights"), ("neck", "rotation"), ("jaw", "rotation")}
    for sampler in by_target.values():
        assert sampler["interpolation"] == "LINEAR"
        times = doc["accessors"][sampler["input"]]
        assert times["min"] == [0.0] and times["max"] == [1.0]
    weights_out = read_accessor(doc, blob, by_target[("head", "weights")]["output"]).reshape(3, 2)
    np.testing.assert_array_equal(weights_out, asset.animations[0].expression)


def rebuild(doc, blob):
    """A GLB of a JSON dict and BIN bytes, by hand."""
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text
    body += struct.pack("<II", len(blob), 0x004E4942) + blob
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def test_rebuild_by_hand_reads_back(glb):
    doc, blob = parse(glb)
    assert len(gltf.read_glb(rebuild(doc, blob)).head.positions) == 5


def _edit(glb, change):
    doc, blob = parse(glb)
    change(doc)
    return rebuild(doc, blob)


def _set(path, value):
    def change(doc):
        item = doc
        for key in path[:-1]:
            item = item[key]
        item[path[-1]] = value

    return change


def _position_index(doc):
    return doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]


BAD = {
    "magic": lambda g: b"gLTF" + g[4:],
    "version": lambda g: g[:4] + struct.pack("<I", 1) + g[8:],
    "length": lambda g: g[:8] + struct.pack("<I", len(g) + 4) + g[12:],
    "truncated header": lambda g: g[:10],
    "json type": lambda g: g[:16] + b"XXXX" + g[20:],
    "missing accessor": lambda g: _edit(
        g, _set(["meshes", 0, "primitives", 0, "attributes", "POSITION"], 999)
    ),
    "no bin": lambda g: _edit_bin(g),
    "accessor type": lambda g: _edit(
        g, lambda d: d["accessors"][_position_index(d)].update(type="VEC2")
    ),
    "accessor count": lambda g: _edit(
        g, lambda d: d["accessors"][_position_index(d)].update(count=10**6)
    ),
    "string count": lambda g: _edit(
        g, lambda d: d["accessors"][_position_index(d)].update(count="4")
    ),
    "view out of range": lambda g: _edit(g, lambda d: d["bufferViews"][0].update(byteOffset=10**7)),
    "no skin": lambda g: _edit(g, _set(["skins"], [])),
    "no scene": lambda g: _edit(g, _set(["scenes"], [{"name": "other", "nodes": []}])),
    "no extension": lambda g: _edit(g, _set(["extensionsUsed"], [])),
    "no extras": lambda g: _edit(
        g, lambda d: [d["asset"].pop("extras"), d["scenes"][0].pop("extras")]
    ),
    "weights": lambda g: _edit(
        g,
        lambda d: d["meshes"][1]["primitives"][0]["attributes"].update(
            WEIGHTS_0=d["meshes"][1]["primitives"][0]["attributes"]["POSITION"]
        ),
    ),
    "index out of range": lambda g: _edit(
        g,
        lambda d: d["meshes"][0]["primitives"][0].update(
            indices=d["meshes"][1]["primitives"][0]["indices"]
        ),
    ),
    "json not object": lambda g: rebuild([1, 2], parse(g)[1]),
    "node name": lambda g: _edit(g, lambda d: d["nodes"][3].update(name="head_bone")),
    "target names": lambda g: _edit(
        g, lambda d: d["meshes"][1]["extras"].update(targetNames=["a", "b"])
    ),
}


def _edit_bin(glb):
    doc, _ = parse(glb)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_are_user_errors_naming_the_file(glb, name):
    with pytest.raises(UserError) as error:
        gltf.read_glb(BAD[name](glb), source="x/avatar.glb")
    assert str(error.value).startswith("x/avatar.glb")


def test_fuzz_truncations_and_flips_never_escape(glb):
    rng = np.random.default_rng(0)
    cases = [glb[:n] for n in rng.integers(0, len(glb), 40)]
    for _ in range(60):
        flipped = bytearray(glb)
        for position in rng.integers(0, len(glb), 3):
            flipped[position] ^= int(rng.integers(1, 256))
        cases.append(bytes(flipped))
    for data in cases:
        try:
            gltf.read_glb(data)
        except UserError:
            pass


def test_weights_are_normalised_in_float32():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 1, (1000, 4)) * (rng.uniform(0, 1, (1000, 4)) > 0.3)
    raw[:, 0] += 1e-3
    weights = gltf.normalised_weights(raw)
    assert weights.dtype == np.float32 and np.all(weights >= 0)
    assert np.abs(weights.sum(axis=1, dtype=np.float32) - 1).max() <= 2e-7
    np.testing.assert_allclose(weights, raw / raw.sum(axis=1, keepdims=True), atol=1e-6)


def test_empty_meshes_are_nodes_without_a_mesh():
    asset = tiny_asset(animations=False)
    asset.room = gltf.Mesh.empty()
    back = gltf.read_glb(gltf.write_glb(asset))
    assert len(back.room.faces) == 0 and len(back.head.faces) == 6
    doc, _ = parse(gltf.write_glb(asset))
    assert "mesh" not in next(n for n in doc["nodes"] if n["name"] == "room")


def test_skeleton_inverse_bind_inverts_the_rest_pose():
    asset = tiny_asset()
    np.testing.assert_allclose(
        asset.inverse_bind @ asset.skeleton.rest_world(), np.tile(np.eye(4), (3, 1, 1)), atol=1e-6
    )
    assert rig.JOINT_NAMES == ("root", "neck", "jaw")


def _with_channel(glb, node_name, path, values, interpolation="LINEAR", times=None):
    """The glb with one more channel on its animation (values (K, width); times (K,), the
    animation's own when None), its accessors appended to the binary chunk."""
    doc, blob = parse(glb)
    blob = bytearray(blob)

    def accessor(array, kind):
        array = np.asarray(array, "<f4")
        offset = len(blob)
        blob.extend(array.tobytes())
        doc["bufferViews"].append({"buffer": 0, "byteOffset": offset, "byteLength": array.nbytes})
        entry = {"bufferView": len(doc["bufferViews"]) - 1, "componentType": 5126}
        doc["accessors"].append(dict(entry, count=len(array), type=kind))
        if kind == "SCALAR":
            doc["accessors"][-1].update(min=[float(array.min())], max=[float(array.max())])
        return len(doc["accessors"]) - 1

    animation = doc["animations"][0]
    source = animation["samplers"][0]["input"] if times is None else accessor(times, "SCALAR")
    kind = {3: "VEC3", 4: "VEC4"}[np.shape(values)[1]]
    animation["samplers"].append(
        {"input": source, "output": accessor(values, kind), "interpolation": interpolation}
    )
    node = next(k for k, n in enumerate(doc["nodes"]) if n["name"] == node_name)
    target = {"node": node, "path": path}
    animation["channels"].append({"sampler": len(animation["samplers"]) - 1, "target": target})
    doc["buffers"][0]["byteLength"] = len(blob) + (-len(blob) % 4)
    return rebuild(doc, bytes(blob))


def test_other_writers_channels_at_rest_are_read(glb, asset):
    """What Blender writes besides the contract's tracks: every joint's translation, rotation
    and scale holding their rest values (STEP, on their own time line), morph-target normals,
    the avatar's extras in the scene only. Read, ignored; the asset is the same."""
    skel = asset.skeleton
    extra = glb
    for node, path, value in [
        ("root", "translation", [0.0, 0.0, 0.0]),
        ("root", "rotation", [0.0, 0.0, 0.0, 1.0]),
        ("root", "scale", [1.0, 1.0, 1.0]),
        ("neck", "scale", [1.0, 1.0, 1.0]),
        ("jaw", "translation", skel.jaw_translation),
    ]:
        extra = _with_channel(extra, node, path, [value, value], "STEP", times=[0.0, 2.0])
    extra = _with_channel(extra, "neck", "rotation", -np.tile(skel.neck_rotation, (3, 1)))
    doc, blob = parse(extra)
    doc["asset"].pop("extras")  # Blender keeps the avatar's extras in the scene's
    head = next(m for m in doc["meshes"] if m["name"] == "head")["primitives"][0]
    for target in head["targets"]:
        target["NORMAL"] = target["POSITION"]  # morph normals, ignored
    back = gltf.read_glb(rebuild(doc, blob))
    assert back.info["expression_ranges"] == asset.info["expression_ranges"]
    want = asset.animations[0]
    got = back.animations[0]
    np.testing.assert_array_equal(got.times, want.times)
    np.testing.assert_array_equal(got.expression, want.expression)
    np.testing.assert_array_equal(got.jaw, want.jaw)
    # The appended neck rotation (the rest, as -q) replaced the animation's own.
    np.testing.assert_allclose(np.abs(got.neck @ skel.neck_rotation), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "node, path, values, interpolation, message",
    [
        ("root", "translation", [[0, 0, 0], [0, 0.1, 0], [0, 0, 0]], "LINEAR", "rest"),
        ("jaw", "scale", [[1, 1, 1], [2, 2, 2], [1, 1, 1]], "LINEAR", "rest"),
        ("neck", "translation", [[0, 0, 0], [0, 0.1, 0], [0, 0, 0]], "STEP", "interpolation"),
        ("neck", "translation", [[0, 0, 0], [0, 0.1, 0], [0, 0, 0]], "CUBICSPLINE", "LINEAR"),
        ("room", "translation", [[0, 0, 0]] * 3, "LINEAR", "target"),
    ],
)
def test_moving_channels_outside_the_contract_are_refused(
    glb, node, path, values, interpolation, message
):
    with pytest.raises(UserError, match=message) as error:
        gltf.read_glb(_with_channel(glb, node, path, values, interpolation), "x/avatar.glb")
    assert str(error.value).startswith("x/avatar.glb")


def test_moving_tracks_share_one_time_line(glb):
    moved = [[0.0, 0.0, 0.0], [0.0, 0.1, 0.0]]
    with pytest.raises(UserError, match="time line"):
        gltf.read_glb(_with_channel(glb, "neck", "translation", moved, times=[0.0, 0.25]))
