# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Capture reading and validation on captures written by hand from the spec."""

import json
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest
from capture_util import tiny_flame_arrays, tree_digest, write_capture, write_json
from fuzz_util import png_bytes
from PIL import Image

from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import validate
from flamenerf.geometry.scene import MODEL_UNITS_PER_METRE


@pytest.fixture
def capture_dir(tmp_path):
    return write_capture(tmp_path / "cap", masks=True)


def test_hand_written_capture_loads(capture_dir):
    before = tree_digest(capture_dir)
    cap = capture_lib.load_capture(capture_dir)
    assert cap.train_ids == ["t00", "t01", "t02"] and cap.val_ids == ["v00"]
    assert cap.frames["v00"].warp_id == 2
    # scene.json's normalisation, (position - center) * scale, is kept as `file_scene`; the
    # cameras are in the model frame (centred on the head, MODEL_UNITS_PER_METRE per metre).
    world = np.array([0.02, 0.0, 0.8]) / 2.0 + [0.0, 0.0, 0.1]
    np.testing.assert_allclose(cap.file_scene.normalize(world), [0.02, 0.0, 0.8])
    np.testing.assert_allclose(cap.cameras["t01"].position, cap.scene.normalize(world))
    image = cap.image("t01")
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert image[0, 3, 0] == 61 and image[2, 0, 1] == 60 and image[0, 0, 2] == 7
    # Condition vector: expression zero-padded to num_expression (3), then the jaw pose.
    np.testing.assert_allclose(cap.condition("t01"), [0.1, -0.2, 0.0, 0.05, 0.0, 0.0])
    np.testing.assert_allclose(cap.condition("t01", jaw=False), [0.1, -0.2, 0.0])
    assert cap.mask("t00").sum() == 4 * 4
    assert tree_digest(capture_dir) == before  # never modified


def test_vertices_are_normalised_flame_vertices(capture_dir):
    cap = capture_lib.load_capture(capture_dir)
    raw = tiny_flame_arrays()
    # Frame t00: shape [0.5], expression [0, -0.2] (columns 2, 3 of 6); jaw 0.
    expected = raw["v_template"] + raw["shapedirs"] @ np.array([0.5, 0.0, 0.0, -0.2, 0.0, 0.0])
    np.testing.assert_allclose(cap.vertices("t00"), cap.scene.normalize(expected), atol=1e-6)


def test_model_frame_is_centred_on_the_head_in_metres(capture_dir):
    cap = capture_lib.load_capture(capture_dir)
    assert cap.scene.units_per_metre == pytest.approx(MODEL_UNITS_PER_METRE)
    assert cap.file_scene.scale == 2.0 and cap.file_scene.units_per_metre == 2.0
    vertices = np.stack([cap.vertices(i) for i in cap.ids])
    centres = (vertices.min(axis=1) + vertices.max(axis=1)) / 2
    np.testing.assert_allclose(centres.mean(axis=0), 0.0, atol=1e-6)
    # near/far keep their world distances: file units / file scale * model scale.
    ratio = cap.scene.scale / cap.file_scene.scale
    assert cap.scene.near == pytest.approx(cap.file_scene.near * ratio)
    assert cap.scene.far == pytest.approx(cap.file_scene.far * ratio)


@pytest.mark.parametrize("center, scale", [([5.0, -3.0, 2.0], 0.3), ([0.0, 0.0, 0.0], 40.0)])
def test_another_normalisation_gives_the_same_model_frame(tmp_path, center, scale):
    """Only scene.json differs (as another tool would write it): everything flamenerf works
    with is the same."""
    a = write_capture(tmp_path / "a", masks=True)
    b = write_capture(tmp_path / "b", masks=True)
    scene = json.loads((b / "scene.json").read_text())
    old_center, old_scale = np.array(scene["center"]), scene["scale"]
    scene["center"], scene["scale"] = center, scale
    for key in ("near", "far"):
        scene[key] = scene[key] / old_scale * scale
    if scene.get("bbox") is not None:
        box = np.array(scene["bbox"]) / old_scale + old_center
        scene["bbox"] = ((box - center) * scale).tolist()
    write_json(b / "scene.json", scene)
    cap_a, cap_b = capture_lib.load_capture(a), capture_lib.load_capture(b)
    assert cap_b.file_scene.scale == scale
    for i in cap_a.ids:
        np.testing.assert_allclose(cap_a.vertices(i), cap_b.vertices(i), atol=1e-5)
        np.testing.assert_allclose(cap_a.cameras[i].position, cap_b.cameras[i].position, atol=1e-5)
    assert cap_a.scene.near == pytest.approx(cap_b.scene.near)
    assert cap_a.scene.far == pytest.approx(cap_b.scene.far)


def test_to_world_placement(tmp_path):
    root = write_capture(tmp_path / "cap")
    scene = json.loads((root / "scene.json").read_text())
    rotation = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # 90 degrees about z
    scene["flame"]["to_world"] = {"scale": 2.0, "rotation": rotation, "translation": [1, 2, 3]}
    write_json(root / "scene.json", scene)
    cap = capture_lib.load_capture(root)
    x = np.array([[0.1, 0.0, 0.0]])
    # 2 * R x + t = (0, 0.2, 0) + (1, 2, 3); then normalised: (p - (0, 0, 0.1)) * 2.
    np.testing.assert_allclose(cap.file_scene.flame_to_scene(x), [[2.0, 4.4, 5.8]], atol=1e-12)
    # The model frame: 3.5 units per FLAME metre, whatever to_world's scale.
    assert cap.scene.units_per_metre == pytest.approx(MODEL_UNITS_PER_METRE)


def test_scale_box_averages_missing_images(tmp_path):
    on_disk = capture_lib.load_capture(write_capture(tmp_path / "a", scaled=(2,)), scale=2)
    in_memory = capture_lib.load_capture(write_capture(tmp_path / "b"), scale=2)
    assert in_memory.image_size("t00") == (4, 3)
    assert in_memory.cameras["t00"].focal_length == 5.0
    np.testing.assert_array_equal(in_memory.image("t01"), on_disk.image("t01"))


def test_rasterised_mask_when_no_mask_folder(capture_dir, tmp_path):
    root = write_capture(tmp_path / "nomask", width=32, height=24)
    cap = capture_lib.load_capture(root)
    mask = cap.mask("t00")
    assert mask.shape == (24, 32) and mask.dtype == bool
    # The octahedron (radius 0.1 m at 0.5 m, f = 10 px at 8 px wide... here f = 10 with 32 px)
    # projects around the image centre; its centre pixel is inside, corners are outside.
    assert mask[12, 16] and not mask[0, 0] and not mask[-1, -1]


def corrupt(root, kind):
    if kind == "missing camera":
        (root / "camera" / "t01.json").unlink()
    elif kind == "id not in metadata":
        meta = json.loads((root / "metadata.json").read_text())
        del meta["v00"]
        write_json(root / "metadata.json", meta)
    elif kind == "count":
        data = json.loads((root / "dataset.json").read_text())
        data["count"] = 7
        write_json(root / "dataset.json", data)
    elif kind == "nan flame":
        (root / "flame" / "t02.json").write_text('{"expression": [NaN]}')
    elif kind == "too many expressions":
        write_json(root / "flame" / "t02.json", {"expression": [0.1] * 4})
    elif kind == "wrong image size":
        Image.fromarray(np.zeros((5, 8, 3), np.uint8)).save(root / "rgb" / "1x" / "t00.png")
    elif kind == "16-bit image":
        Image.fromarray(np.zeros((6, 8), np.uint16)).save(root / "rgb" / "1x" / "t00.png")
    elif kind == "palette image":
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).convert("P").save(
            root / "rgb" / "1x" / "t00.png"
        )
    elif kind == "missing model":
        (root / "flame_model.npz").unlink()
    elif kind == "bad camera":
        cam = json.loads((root / "camera" / "t00.json").read_text())
        cam["focal_length"] = -1
        write_json(root / "camera" / "t00.json", cam)
    elif kind == "duplicate warp":
        meta = json.loads((root / "metadata.json").read_text())
        meta["t01"]["warp_id"] = 0
        write_json(root / "metadata.json", meta)
    elif kind == "mask size":
        Image.fromarray(np.zeros((6, 9), np.uint8)).save(root / "mask" / "1x" / "t01.png")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing camera", r"camera/t01.json: file not found"),
        ("id not in metadata", r"metadata.json: frame 'v00' has no entry"),
        ("count", r"dataset.json: field 'count': found 7, expected 4 \(len\(ids\)\)"),
        ("nan flame", r"flame/t02.json: field 'expression' has non-finite values"),
        ("too many expressions", r"flame/t02.json: field 'expression' has 4 coefficients"),
        (
            "wrong image size",
            r"rgb/1x/t00.png: image is 8x5 pixels; expected 8x6 "
            r"\(.*camera/t00.json's field 'image_size'\)",
        ),
        ("16-bit image", r"rgb/1x/t00.png: image has bit depth 16 and colour type gray"),
        ("palette image", r"rgb/1x/t00.png: image has bit depth 8 and colour type palette"),
        ("missing model", r"scene.json: field 'flame.model' names .*flame_model.npz"),
        ("bad camera", r"camera/t00.json.*focal_length"),
        (
            "duplicate warp",
            r"metadata.json: frame 't01' field 'warp_id': found 0, also the code of "
            r"training frame 't00'",
        ),
        (
            "mask size",
            r"mask/1x/t01.png: mask is 9x6 pixels; expected 8x6 "
            r"\(.*camera/t01.json's field 'image_size'\)",
        ),
    ],
)
def test_broken_captures_name_file_and_field(capture_dir, kind, message):
    corrupt(capture_dir, kind)
    with pytest.raises(capture_lib.CaptureError, match=message):
        capture_lib.load_capture(capture_dir)


def test_every_problem_is_reported(capture_dir):
    corrupt(capture_dir, "missing camera")
    corrupt(capture_dir, "nan flame")
    corrupt(capture_dir, "wrong image size")
    with pytest.raises(capture_lib.CaptureError) as info:
        capture_lib.load_capture(capture_dir)
    assert len(info.value.problems) == 3


def test_validate_cli(capture_dir, capsys):
    assert validate.main([str(capture_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "OK, 3 train + 1 val frames, 8x6 at 1x" in out[0]
    corrupt(capture_dir, "missing camera")
    corrupt(capture_dir, "nan flame")
    assert validate.main([str(capture_dir)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_validate_cli_subprocess_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "flamenerf.datasets.validate", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"{tmp_path / 'nothing'}: capture folder not found"


# ------------------------------------------------------------------------------------------
# Validation decodes every image training reads and types JSON strictly.


def edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    write_json(path, value)


def break_capture(root, kind):
    rgb = root / "rgb" / "1x" / "t01.png"
    if kind == "truncated image":
        rgb.write_bytes(rgb.read_bytes()[: len(rgb.read_bytes()) // 2])
    elif kind == "16-bit RGB image":  # PIL opens these as mode 'RGB' without a word
        rgb.write_bytes(png_bytes(np.full((6, 8, 3), 1000), 16, 2))
    elif kind == "truncated mask":
        mask = root / "mask" / "1x" / "t02.png"
        mask.write_bytes(mask.read_bytes()[:-20])
    elif kind == "undecodable pixels":  # complete chunks, valid CRCs, IDAT not zlib data
        data = bytearray(png_bytes(np.zeros((6, 8, 3)), 8, 2))
        start = data.index(b"IDAT")
        length = int.from_bytes(data[start - 4 : start], "big")
        data[start + 4 : start + 4 + length] = bytes(range(length))
        crc = zlib.crc32(bytes(data[start : start + 4 + length])).to_bytes(4, "big")
        data[start + 4 + length : start + 8 + length] = crc
        rgb.write_bytes(bytes(data))
    elif kind == "string in expression":
        write_json(root / "flame" / "t02.json", {"expression": [0.1, "0.25", 0.0]})
    elif kind == "bool in jaw_pose":
        write_json(root / "flame" / "t02.json", {"jaw_pose": [True, 0.0, 0.0]})
    elif kind == "string in center":
        edit_json(root / "scene.json", lambda v: v.__setitem__("center", [0.0, "0", 0.1]))
    elif kind == "bool num_expression":
        edit_json(root / "scene.json", lambda v: v["flame"].__setitem__("num_expression", True))
    elif kind == "string in rotation":
        edit_json(
            root / "scene.json",
            lambda v: v["flame"]["to_world"]["rotation"][2].__setitem__(2, "1"),
        )
    elif kind == "bool focal length":
        edit_json(root / "camera" / "t00.json", lambda v: v.__setitem__("focal_length", True))
    elif kind == "string warp_id":
        edit_json(root / "metadata.json", lambda v: v["t01"].__setitem__("warp_id", "1"))
    elif kind == "string count":
        edit_json(root / "dataset.json", lambda v: v.__setitem__("count", "4"))
    elif kind == "key twice":
        text = (root / "camera" / "t00.json").read_text()
        (root / "camera" / "t00.json").write_text('{"focal_length": 3.0, ' + text[1:])


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated image", r"rgb/1x/t01.png: image is a damaged PNG \(truncated"),
        ("16-bit RGB image", r"rgb/1x/t01.png: image has bit depth 16 and colour type RGB"),
        ("truncated mask", r"mask/1x/t02.png: mask is a damaged PNG \(truncated"),
        ("undecodable pixels", r"rgb/1x/t01.png: image cannot be decoded"),
        (
            "string in expression",
            r"flame/t02.json: field 'expression' item 1: found the string '0.25', "
            r"expected a number",
        ),
        ("bool in jaw_pose", r"flame/t02.json: field 'jaw_pose' item 0: found true \(a bool\)"),
        ("string in center", r"scene.json: field 'center': found .*item \[1\] is the string"),
        (
            "bool num_expression",
            r"scene.json: field 'flame.num_expression': found true \(a bool\), expected an "
            r"integer",
        ),
        ("string in rotation", r"field 'flame.to_world.rotation': .*item \[2\]\[2\] is the str"),
        ("bool focal length", r"camera/t00.json: field 'focal_length': found true \(a bool\)"),
        ("string warp_id", r"metadata.json: frame 't01' field 'warp_id': found the string"),
        ("string count", r"dataset.json: field 'count': found the string \"4\""),
        ("key twice", r"camera/t00.json: found key 'focal_length' twice in one object"),
    ],
)
def test_validate_refuses_what_training_cannot_read(capture_dir, kind, message, capsys):
    break_capture(capture_dir, kind)
    before = tree_digest(capture_dir)
    assert validate.main([str(capture_dir)]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert tree_digest(capture_dir) == before


def test_images_at_the_requested_scale_are_decoded(tmp_path):
    root = write_capture(tmp_path / "cap", scaled=(2,))
    small = root / "rgb" / "2x" / "t01.png"
    small.write_bytes(png_bytes(np.full((3, 4, 3), 1000), 16, 2))
    capture_lib.load_capture(root)  # the 1x images are fine
    with pytest.raises(capture_lib.CaptureError, match="rgb/2x/t01.png: image has bit depth 16"):
        capture_lib.load_capture(root, scale=2)
    small.write_bytes(png_bytes(np.zeros((3, 4, 3)), 8, 2)[:-30])
    with pytest.raises(capture_lib.CaptureError, match="rgb/2x/t01.png: image is a damaged PNG"):
        capture_lib.load_capture(root, scale=2)


def test_rgba_images_and_gray_masks_are_accepted(capture_dir):
    pixels = np.dstack([np.zeros((6, 8, 3), np.uint8), np.full((6, 8, 1), 9, np.uint8)])
    Image.fromarray(pixels, "RGBA").save(capture_dir / "rgb" / "1x" / "t00.png")
    cap = capture_lib.load_capture(capture_dir)
    assert cap.image("t00").shape == (6, 8, 3)


# ------------------------------------------------------------------------------------------
# Messages name the culprit.


@pytest.mark.parametrize(
    "bad_id, shown",
    [
        ("t0/1", "an id containing '/': 't0/1'"),
        ("..\\t01", "an id containing '\\': '..\\\\t01'"),
        ("..", "the id '..'"),
        (".", "the id '.'"),
        ("", "an empty id"),
        ("/etc/passwd", "an id containing '/': '/etc/passwd'"),
        ("t0\x001", "an id containing NUL or a control character: 't0\\x001'"),
    ],
)
def test_unsafe_ids_are_named(tmp_path, bad_id, shown):
    root = write_capture(tmp_path / "cap")
    rename = lambda ids: [bad_id if i == "t01" else i for i in ids]
    edit_json(root / "dataset.json", lambda v: v.update(ids=rename(v["ids"])))
    with pytest.raises(capture_lib.CaptureError) as info:
        capture_lib.load_capture(root)
    assert info.value.problems == [
        f"{root / 'dataset.json'}: field 'ids' item 1: found {shown}; expected a frame id: a "
        "non-empty file name without '/', '\\', NUL or control characters, not '.' or '..', "
        "at most 200 bytes"
    ]


def test_duplicate_ids_are_named(tmp_path):
    root = write_capture(tmp_path / "cap")
    edit_json(root / "dataset.json", lambda v: v["ids"].append("t01"))
    with pytest.raises(capture_lib.CaptureError) as info:
        capture_lib.load_capture(root)
    assert info.value.problems == [
        f"{root / 'dataset.json'}: field 'ids' has duplicate ids: 't01' (2 times); expected "
        "each id once"
    ]


def test_size_mismatch_blames_the_image_and_names_the_camera(capture_dir):
    edit_json(capture_dir / "camera" / "t00.json", lambda v: v.update(image_size=[9, 6]))
    with pytest.raises(capture_lib.CaptureError) as info:
        capture_lib.load_capture(capture_dir)
    camera = f"{capture_dir / 'camera' / 't00.json'}'s field 'image_size'"
    assert info.value.problems == [
        f"{capture_dir / 'rgb' / '1x' / 't00.png'}: image is 8x6 pixels; expected 9x6 ({camera})",
        f"{capture_dir / 'mask' / '1x' / 't00.png'}: mask is 8x6 pixels; expected 9x6 ({camera})",
    ]


def test_files_resolving_outside_the_capture_are_refused(tmp_path):
    root = write_capture(tmp_path / "cap", masks=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for rel in ("rgb/1x/t00.png", "camera/t01.json"):
        (root / rel).rename(elsewhere / rel.replace("/", "_"))
        (root / rel).symlink_to(elsewhere / rel.replace("/", "_"))
    with pytest.raises(capture_lib.CaptureError) as info:
        capture_lib.load_capture(root)
    assert [line.split(":")[0] for line in info.value.problems] == [
        str(root / "rgb" / "1x" / "t00.png"),
        str(root / "camera" / "t01.json"),
    ]
    assert all("outside the capture folder" in line for line in info.value.problems)


def test_links_inside_the_capture_and_an_outside_flame_model_are_fine(tmp_path):
    root = write_capture(tmp_path / "cap")
    (root / "frames").mkdir()
    (root / "rgb" / "1x" / "t00.png").rename(root / "frames" / "t00.png")
    (root / "rgb" / "1x" / "t00.png").symlink_to("../../frames/t00.png")
    (root / "flame_model.npz").rename(tmp_path / "model.npz")
    (root / "flame_model.npz").symlink_to(tmp_path / "model.npz")
    assert capture_lib.load_capture(root).image("t00").shape == (6, 8, 3)
    (root / "flame_model.npz").unlink()
    edit_json(root / "scene.json", lambda v: v["flame"].update(model=str(tmp_path / "model.npz")))
    capture_lib.load_capture(root)
