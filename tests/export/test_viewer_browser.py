# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The viewer page (index.html) in a real browser against the Python preview of the same asset.

Headless Chromium (Debian's `chromium`, WebGL through SwiftShader; tests/browser_util.py) opens
the page written by `flamenerf.export.page.write_page` from file://, sets the camera and the
sliders through the page's test API (`window.flamenerf`), reads the canvas, and compares it with
`flamenerf.export.preview.render` of the same asset at the same camera, parameters and
supersampling (the page's k x k samples per pixel, `info().supersample`): PSNR >= 30 dB. A
changed expression (jaw, head pose) changes the image inside the head's screen region only.
Two assets: the project's writer (`gltf.write_glb`) and the independent test writer
(tests/glb_util.py, read back with `gltf.read_glb` for the preview). Skipped, with one message,
only when Chromium is not installed; one browser for the module.
"""

import dataclasses

import numpy as np
import pytest
from browser_util import ViewerPage, chromium, missing_reason, psnr
from glb_util import as_export_asset, camera_arrays, glb_bytes, tiny_avatar
from scipy import ndimage

from flamenerf.export import gltf, page, preview, rig

MIN_PSNR = 30.0  # dB, browser vs Python render of the same asset (issue 18)
OUTSIDE_MAX = 1 / 255  # mean |change| outside the head's screen region
POSED = rig.Pose(np.array([2.0, -1.5, 1.0]), jaw=0.3, yaw=0.35, pitch=-0.2)


@pytest.fixture(scope="module")
def browser():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def tiny():
    return tiny_avatar()


@pytest.fixture(scope="module", params=["write_glb", "independent"])
def viewer(request, browser, tiny, tmp_path_factory):
    """(page, asset for the preview, glb bytes) for one writer."""
    if request.param == "write_glb":
        asset = as_export_asset(tiny)
        glb = gltf.write_glb(asset)
    else:
        glb = glb_bytes(tiny)
        asset = gltf.read_glb(glb, "tests/glb_util.py")
    path = tmp_path_factory.mktemp(f"viewer_{request.param}") / "index.html"
    page.write_page(glb, path, title=f"tiny avatar ({request.param})")
    view = ViewerPage(browser, path)
    yield view, asset, glb
    view.close()


def _orbit_camera(tiny) -> np.ndarray:
    """The default camera turned 0.5 rad about the world's vertical through the head."""
    world_from_camera, _ = camera_arrays(tiny)
    centre = tiny.head_positions.mean(0)
    turn = np.eye(4)
    turn[:3, :3] = _rotation_y(0.5)
    move = np.eye(4)
    move[:3, 3] = centre
    back = np.eye(4)
    back[:3, 3] = -centre
    return move @ turn @ back @ world_from_camera


def _rotation_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _browser(view, world_from_camera, projection, size, params, supersample=None):
    view.set_camera(world_from_camera, projection, (size, size), supersample)
    applied = view.set_params(params.expression, params.jaw, params.yaw, params.pitch)
    assert np.allclose(applied["expression"], params.expression)
    assert np.allclose([applied["jaw"], applied["yaw"], applied["pitch"]], params[1:])
    return view.canvas()


def _supersample(view) -> int:
    """The page's samples per pixel along each axis now (what the preview must use)."""
    return int(view.page.evaluate("() => window.flamenerf.info().supersample"))


def _head_region(asset, world_from_camera, projection, size, poses, dilate=2):
    """bool (size, size): the union of the head's silhouettes at the poses, dilated (pixels)."""
    mask_asset = dataclasses.replace(
        asset,
        room=dataclasses.replace(asset.room, colours=np.zeros_like(asset.room.colours)),
        head=dataclasses.replace(asset.head, colours=np.ones_like(asset.head.colours)),
    )
    union = np.zeros((size, size), bool)
    for params in poses:
        image = preview.render(mask_asset, world_from_camera, projection, size, size, params)
        union |= image[..., 0] > 0.5
    return ndimage.binary_dilation(union, iterations=dilate)


def test_the_page_loads_from_file_without_network_or_errors(viewer):
    view, asset, _ = viewer
    assert view.remote_requests() == []
    assert view.csp_violations() == []
    assert view.errors == []
    assert not [m for m in view.console if m.startswith("error")], view.console
    info = view.page.evaluate("() => window.flamenerf.info()")
    assert info["triangles"] == asset.triangles and info["vertices"] == asset.vertices
    assert info["drawCalls"] == 2 and info["renderer"]
    print(f"WebGL renderer: {info['renderer']}")


def test_the_controls_are_the_contracts(viewer, tiny):
    view, asset, _ = viewer
    extras = tiny.extras
    sliders = view.page.evaluate(
        "() => [...document.querySelectorAll('input[type=range]')]"
        ".map(e => [e.id, Number(e.min), Number(e.max), Number(e.value)])"
    )
    expected = [
        ("jaw", *extras["jaw_range"]),
        ("yaw", *extras["yaw_range"]),
        ("pitch", *extras["pitch_range"]),
    ] + [(f"expression-{i:02d}", *r) for i, r in enumerate(extras["expression_ranges"])]
    assert sorted((i, lo, hi) for i, lo, hi, _ in sliders) == sorted(expected)
    for element in ("canvas#view", "button#play", "button#reset"):
        assert view.page.locator(element).count() == 1, element
    options = view.page.evaluate(
        "() => [...document.getElementById('animation').options].map(o => o.value)"
    )
    assert options == [a.name for a in asset.animations] == ["tiny_wave"]
    # Values outside a slider's range are clamped, and setParams says so.
    applied = view.set_params([9.0], jaw=-1.0)
    assert applied["expression"][0] == 3.0 and applied["jaw"] == 0.0


@pytest.mark.parametrize("size", [512, 64])
@pytest.mark.parametrize("camera", ["default", "orbit"])
@pytest.mark.parametrize("params", [rig.Pose.neutral(3), POSED], ids=["neutral", "posed"])
def test_the_browser_renders_what_the_python_preview_renders(viewer, tiny, size, camera, params):
    view, asset, _ = viewer
    world_from_camera, projection = camera_arrays(tiny)
    if camera == "orbit":
        world_from_camera = _orbit_camera(tiny)
    seen = _browser(view, world_from_camera, projection, size, params, "auto")
    samples = _supersample(view)
    assert samples == 4  # the page's default up to 512 px: 4 x 4 samples per pixel
    expected = preview.render(asset, world_from_camera, projection, size, size, params, samples)
    assert seen.shape == expected.shape == (size, size, 3)
    value = psnr(seen, expected)
    print(f"PSNR browser vs preview, {camera} camera, {size} px: {value:.1f} dB")
    assert value >= MIN_PSNR


@pytest.mark.parametrize("samples", [1, 2, 3])
def test_the_browsers_supersampling_is_the_previews(viewer, tiny, samples):
    """k x k samples per pixel, each sRGB-encoded, averaged: the page and the preview agree
    for every k, and the edges of k > 1 are anti-aliased (values between the two sides')."""
    view, asset, _ = viewer
    world_from_camera, projection = camera_arrays(tiny)
    size = 64
    seen = _browser(view, world_from_camera, projection, size, POSED, samples)
    assert _supersample(view) == samples
    expected = preview.render(asset, world_from_camera, projection, size, size, POSED, samples)
    value = psnr(seen, expected)
    print(f"PSNR browser vs preview, {samples} x {samples} samples: {value:.1f} dB")
    assert value >= MIN_PSNR
    single = preview.render(asset, world_from_camera, projection, size, size, POSED)
    if samples > 1:
        assert psnr(seen, single) < value  # the single sample's image is further away
    view.set_camera(world_from_camera, projection, (size, size), "auto")
    assert _supersample(view) == 4


def test_a_bad_supersample_is_refused(viewer, tiny):
    view, _, _ = viewer
    world_from_camera, projection = camera_arrays(tiny)
    for bad in (0, 5, 2.5):
        with pytest.raises(Exception, match="supersample is"):
            view.set_camera(world_from_camera, projection, (64, 64), bad)
    view.set_camera(world_from_camera, projection, (64, 64), "auto")


@pytest.mark.parametrize(
    "change",
    [
        rig.Pose(np.array([2.0, -1.5, 1.0])),
        rig.Pose(np.zeros(3), jaw=0.4),
        rig.Pose(np.zeros(3), yaw=0.3, pitch=0.2),
    ],
    ids=["expression", "jaw", "head_pose"],
)
def test_a_change_of_expression_changes_the_head_only(viewer, tiny, change):
    view, asset, _ = viewer
    world_from_camera, projection = camera_arrays(tiny)
    size = 512
    neutral = _browser(view, world_from_camera, projection, size, rig.Pose.neutral(3))
    changed = _browser(view, world_from_camera, projection, size, change)
    region = _head_region(asset, world_from_camera, projection, size, [rig.Pose.neutral(3), change])
    difference = np.abs(changed - neutral).mean(-1)
    assert 0.02 < region.mean() < 0.8  # the head is on screen, and not all of it
    outside, inside = difference[~region].mean(), difference[region].mean()
    print(f"mean |change| outside the head {outside * 255:.3f}/255, inside {inside * 255:.1f}/255")
    assert outside <= OUTSIDE_MAX
    assert inside > max(2 / 255, 10 * outside)  # the jaw moves least: about 3/255 here


def test_playback_of_the_assets_animation(viewer, tiny):
    view, asset, _ = viewer
    world_from_camera, projection = camera_arrays(tiny)
    neutral = _browser(view, world_from_camera, projection, 64, rig.Pose.neutral(3))
    view.page.select_option("#animation", "tiny_wave")
    view.page.click("#play")  # the clip: expression_00 0 -> 2 -> 0, neck and jaw, over 1 s
    view.page.wait_for_function(
        "() => Number(document.getElementById('expression-00').value) > 0.5", timeout=10_000
    )
    assert view.page.inner_text("#play") == "pause"
    view.page.click("#play")  # pause: the pose and the sliders stop
    held = view.page.evaluate("() => window.flamenerf.setParams({})")  # what the sliders show
    view.page.wait_for_timeout(200)
    assert view.page.evaluate("() => window.flamenerf.setParams({})") == held
    # The sliders show the animation's pose (the contract's maths inverted): the paused frame
    # is the preview of those values.
    pose = rig.Pose(np.array(held["expression"]), held["jaw"], held["yaw"], held["pitch"])
    paused = view.canvas()
    samples = _supersample(view)
    expected = preview.render(asset, world_from_camera, projection, 64, 64, pose, samples)
    assert psnr(paused, expected) >= MIN_PSNR
    # A slider moved by the user (setParams) ends the playback and takes over.
    _browser(view, world_from_camera, projection, 64, rig.Pose.neutral(3))
    assert view.page.inner_text("#play") == "play"
    assert psnr(view.canvas(), neutral) >= 60


def _head_centre(view, expression=(2.0, -1.5, 1.0)) -> np.ndarray:
    """(x, y) pixel centroid of where an expression change alters the canvas: the head."""
    neutral = view.canvas()
    view.set_params(expression)
    changed = view.canvas()
    view.set_params(np.zeros(len(expression)))
    ys, xs = np.nonzero(np.abs(changed - neutral).max(-1) > 0.05)
    assert len(xs) > 100, "the head is not on screen"
    return np.array([xs.mean(), ys.mean()])


def test_the_orbit_controls_turn_about_the_head_and_reset_restores_the_camera(viewer, tiny):
    view, asset, _ = viewer
    view.page.click("#reset")
    start = view.canvas()  # the default camera, at the page's own size
    world_from_camera, projection = camera_arrays(tiny)
    height, width = start.shape[:2]
    samples = _supersample(view)
    assert samples == 4  # the page's own size: 512 px along the longer side
    expected = preview.render(
        asset, world_from_camera, projection, width, height, rig.Pose.neutral(3), samples
    )
    assert psnr(start, expected) >= MIN_PSNR  # the page starts at the asset's default camera
    centre = _head_centre(view)
    box = view.page.locator("#view").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    view.page.mouse.move(x, y)
    view.page.mouse.down()
    view.page.mouse.move(x + 60, y + 10, steps=4)
    view.page.mouse.up()
    assert psnr(view.canvas(), start) < 25  # the camera orbited ...
    # ... about the head (not the world's origin, 1.5 m away): the head stays where it was.
    assert np.linalg.norm(_head_centre(view) - centre) < 0.1 * width
    view.set_params([1.0, 0.0, 0.0], jaw=0.2)
    view.page.click("#reset")
    assert view.page.evaluate("() => window.flamenerf.setParams({})") == {
        "expression": [0, 0, 0],
        "jaw": 0,
        "yaw": 0,
        "pitch": 0,
    }
    assert psnr(view.canvas(), start) >= 60


def test_the_neck_rest_rotation_is_applied_first(viewer, tiny):
    """neck = rest * R_y(yaw) * R_x(pitch), not R_y * R_x * rest (the rest rotation of the test
    asset is not the identity): the preview's pose equals an independent numpy pose, and the
    browser's image is the contract's order's, far from the other order's."""
    view, asset, _ = viewer
    world_from_camera, projection = camera_arrays(tiny)
    params = rig.Pose(np.array([0.5, 0.0, -0.5]), jaw=0.25, yaw=0.6, pitch=0.5)
    contract = tiny.posed(params.expression, params.jaw, params.yaw, params.pitch)
    np.testing.assert_allclose(preview.pose(asset, params)[1], contract, atol=1e-5)
    wrong = tiny.posed(params.expression, params.jaw, params.yaw, params.pitch, order="world")
    assert np.abs(wrong - contract).max() > 0.01  # metres (the head: 0.09 m radius)
    seen = _browser(view, world_from_camera, projection, 64, params, 1)  # sharp edges
    samples = _supersample(view)
    expected = preview.render(asset, world_from_camera, projection, 64, 64, params, samples)
    # The other order, rendered by placing its posed vertices at rest (a neutral pose is the
    # identity skinning).
    wrong_asset = dataclasses.replace(
        asset,
        head=dataclasses.replace(
            asset.head,
            positions=wrong.astype(np.float32),
            targets=np.zeros_like(asset.head.targets),
        ),
    )
    other = preview.render(
        wrong_asset, world_from_camera, projection, 64, 64, rig.Pose.neutral(3), samples
    )
    assert psnr(seen, expected) >= MIN_PSNR > psnr(seen, other) + 5
    view.set_camera(world_from_camera, projection, (64, 64), "auto")


def test_an_exported_experiment_opens_and_matches_the_preview(browser, tmp_path_factory):
    """DIR/index.html of `pipeline.export` (test_eval's tiny trained experiment, one driving
    animation): the page the exporter wrote loads, plays, and draws what the preview draws."""
    from export_util import tiny_export

    out = tiny_export(tmp_path_factory)
    asset = gltf.read_glb((out / "avatar.glb").read_bytes(), str(out / "avatar.glb"))
    view = ViewerPage(browser, out / "index.html")
    try:
        assert view.remote_requests() == [] and view.errors == []
        camera = asset.info["default_camera"]
        world_from_camera = np.asarray(camera["world_from_camera"], np.float64).reshape(4, 4).T
        projection = np.asarray(camera["projection"], np.float64).reshape(4, 4).T
        for width, height in [(camera["width"], camera["height"]), (512, 384)]:
            view.page.evaluate(
                "c => window.flamenerf.setCamera(c)",
                {
                    "world_from_camera": camera["world_from_camera"],
                    "projection": camera["projection"],
                    "width": width,
                    "height": height,
                },
            )
            seen = view.canvas()
            neutral = rig.Pose.neutral(asset.num_expression)
            samples = _supersample(view)
            expected = preview.render(
                asset, world_from_camera, projection, width, height, neutral, samples
            )
            value = psnr(seen, expected)
            print(f"PSNR browser vs preview, tiny export, {width}x{height}: {value:.1f} dB")
            assert value >= MIN_PSNR
        view.page.click("#play")
        view.page.wait_for_timeout(300)
        assert view.errors == [] and not [m for m in view.console if m.startswith("error")]
    finally:
        view.close()
