# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""LPIPS in JAX against the reference `lpips` package, an independent numpy implementation and
golden values; its weight files; its place in the metrics registry.

The reference test needs torch, torchvision and lpips (not in the `test` extra: PyPI's Linux
torch wheel brings 5.6 GB of CUDA libraries; see the README). Without them it is skipped, and
the same formula is checked against `numpy_lpips` below (float64, written from the paper's
formula and the reference's layer list) and against golden values the reference computed once
on the same random weights and images (tests/golden/lpips.json, written by
tests/golden/lpips_reference.py).
"""

import importlib.util
import json
import os
import pickle
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from lpips_util import FILES, image_pair, random_backbone, random_heads, write_weights
from numpy.lib.stride_tricks import sliding_window_view

from flamenerf.errors import UserError
from flamenerf.evaluation import lpips, metrics

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "lpips.json"
HAVE_REFERENCE = all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "lpips"))


@pytest.fixture(scope="session")
def weight_folder(tmp_path_factory):
    """Random weights of both variants (seed 0), AlexNet as zip archives, VGG-16 in the
    legacy layout (as the real files are)."""
    folder = tmp_path_factory.mktemp("lpips_weights")
    write_weights(folder, "alex", seed=0)
    write_weights(folder, "vgg", seed=0, legacy=True)
    return folder


@pytest.fixture(scope="session")
def loaded(weight_folder):
    return {net: lpips.load_weights(weight_folder, net) for net in ("alex", "vgg")}


@pytest.fixture(scope="session")
def jit_lpips():
    return jax.jit(lpips.lpips)


# ------------------------------------------------------------------------------------------
# An independent implementation: numpy, float64, from the formula.


def _np_conv(x, kernel, bias, stride, padding):
    """x (N, H, W, C); kernel (O, C, k, k) -> (N, H', W', O), as torch's Conv2d."""
    k = kernel.shape[-1]
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    windows = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.tensordot(windows, kernel, axes=([3, 4, 5], [1, 2, 3])) + bias


def _np_pool(x, window):
    return sliding_window_view(x, (window, window), axis=(1, 2))[:, ::2, ::2].max(axis=(-2, -1))


# (features index, stride, padding) per conv and the pooling window before it (0: none);
# ("tap",) after each tapped ReLU. Written from torchvision's alexnet()/vgg16() definitions.
NUMPY_LAYERS = {
    "alex": [(0, 4, 2, 0), "tap", (3, 1, 2, 3), "tap", (6, 1, 1, 3), "tap", (8, 1, 1, 0)]
    + ["tap", (10, 1, 1, 0), "tap"],
    "vgg": [(0, 1, 1, 0), (2, 1, 1, 0), "tap", (5, 1, 1, 2), (7, 1, 1, 0), "tap"]
    + [(10, 1, 1, 2), (12, 1, 1, 0), (14, 1, 1, 0), "tap", (17, 1, 1, 2), (19, 1, 1, 0)]
    + [(21, 1, 1, 0), "tap", (24, 1, 1, 2), (26, 1, 1, 0), (28, 1, 1, 0), "tap"],
}


def numpy_lpips(net, backbone, heads, pred, target):
    """LPIPS of (N, H, W, 3) pairs in [0, 1], float64: (N,)."""

    def taps(images):
        x = (2.0 * images.astype(np.float64) - 1.0 - np.array([-0.030, -0.088, -0.188])) / (
            np.array([0.458, 0.448, 0.450])
        )
        out = []
        for layer in NUMPY_LAYERS[net]:
            if layer == "tap":
                out.append(x)
                continue
            index, stride, padding, pool = layer
            if pool:
                x = _np_pool(x, pool)
            w = backbone[f"features.{index}.weight"].astype(np.float64)
            b = backbone[f"features.{index}.bias"].astype(np.float64)
            x = np.maximum(_np_conv(x, w, b, stride, padding), 0.0)
        return out

    total = np.zeros(pred.shape[0])
    for layer, (a, b) in enumerate(zip(taps(pred), taps(target), strict=True)):
        a = a / (np.sqrt((a**2).sum(-1, keepdims=True)) + 1e-10)
        b = b / (np.sqrt((b**2).sum(-1, keepdims=True)) + 1e-10)
        head = heads[f"lin{layer}.model.1.weight"].reshape(-1).astype(np.float64)
        total += (((a - b) ** 2) @ head).mean(axis=(1, 2))
    return total


@pytest.mark.parametrize(
    "net, shape", [("alex", (2, 64, 64, 3)), ("alex", (1, 31, 45, 3)), ("vgg", (2, 32, 32, 3))]
)
def test_matches_the_numpy_implementation(loaded, jit_lpips, net, shape):
    pred, target = image_pair(shape, seed=sum(shape))
    expected = numpy_lpips(net, random_backbone(net, 0), random_heads(net, 2), pred, target)
    got = np.asarray(jit_lpips(loaded[net], pred, target))
    assert got.shape == shape[:1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.all(expected > 0.05)  # a real difference, not two tiny numbers


def test_matches_golden_values_of_the_reference(loaded, jit_lpips):
    """The reference `lpips` package's values on these weights and images, recorded once by
    `python tests/golden/lpips_reference.py` (with torch, torchvision and lpips installed)."""
    golden = json.loads(GOLDEN.read_text())
    assert golden["weights_seed"] == 0 and golden["lpips_version"] == "0.1.4"
    for case in golden["cases"]:
        pred, target = image_pair(tuple(case["shape"]), case["seed"])
        got = np.asarray(jit_lpips(loaded[case["net"]], pred, target))
        np.testing.assert_allclose(got, case["lpips"], rtol=0, atol=1e-5, err_msg=str(case))


def test_identical_images_batches_and_layers(loaded, jit_lpips):
    weights = loaded["alex"]
    pred, target = image_pair((2, 3, 40, 36, 3), seed=4)
    batched = np.asarray(jit_lpips(weights, pred, target))
    assert batched.shape == (2, 3)
    single = np.asarray(jit_lpips(weights, pred[1, 2], target[1, 2]))
    assert single.shape == () and single == pytest.approx(batched[1, 2], abs=1e-6)
    assert np.asarray(jit_lpips(weights, target, target)) == pytest.approx(0.0, abs=1e-7)
    terms = np.asarray(jax.jit(lpips.layer_distances)(weights, pred, target))
    assert terms.shape == (2, 3, 5) and np.all(terms >= 0)
    np.testing.assert_allclose(terms.sum(-1), batched, atol=1e-6)
    # Symmetric in its two images.
    np.testing.assert_allclose(np.asarray(jit_lpips(weights, target, pred)), batched, atol=1e-6)


def test_feature_shapes_and_the_smallest_images(loaded):
    assert lpips.feature_shapes("alex", 64, 64) == [(15, 15), (7, 7), (3, 3), (3, 3), (3, 3)]
    assert lpips.feature_shapes("vgg", 32, 20) == [(32, 20), (16, 10), (8, 5), (4, 2), (2, 1)]
    assert lpips.min_side("alex") == 31 and lpips.min_side("vgg") == 16
    assert lpips.ALEXNET.channels == (64, 192, 384, 256, 256)
    assert lpips.VGG16.channels == (64, 128, 256, 512, 512)
    small = np.zeros((30, 40, 3), np.float32)
    with pytest.raises(ValueError, match=r"expected H and W >= 31 for the alex network"):
        lpips.lpips(loaded["alex"], small, small)
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., H, W, 3\)"):
        lpips.lpips(loaded["alex"], np.zeros((32, 32, 1)), np.zeros((32, 32, 1)))
    metric = lpips.frame_metric(loaded["alex"])
    assert np.isnan(metric(small, small, np.ones((30, 40), bool)))


# ------------------------------------------------------------------------------------------
# Against the reference package (PyTorch), with identical random weights written by torch.


@pytest.mark.skipif(not HAVE_REFERENCE, reason="needs torch, torchvision and lpips")
@pytest.mark.parametrize(
    "net, legacy, shapes",
    [
        ("alex", False, [(2, 64, 64, 3), (1, 31, 45, 3)]),
        ("alex", True, [(1, 50, 33, 3)]),
        ("vgg", True, [(2, 32, 32, 3), (1, 16, 23, 3)]),
        ("vgg", False, [(1, 40, 24, 3)]),
    ],
)
def test_matches_the_reference_lpips_package(tmp_path, jit_lpips, net, legacy, shapes):
    import lpips as reference
    import torch

    torch.manual_seed(len(shapes) + legacy)
    model = reference.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
    backbone, heads = {}, {}
    with torch.no_grad():
        for stage in range(1, 6):  # the reference's slices keep torchvision's feature indices
            for name, param in getattr(model.net, f"slice{stage}").named_parameters():
                fan_in = param[0].numel() if name.endswith("weight") else 10.0
                param.copy_(torch.randn_like(param) * (2.0 / fan_in) ** 0.5)
                backbone[f"features.{name}"] = param.detach().clone()
        for layer in range(5):
            conv = getattr(model, f"lin{layer}").model[1]
            conv.weight.copy_(torch.rand_like(conv.weight))
            heads[f"lin{layer}.model.1.weight"] = conv.weight.detach().clone()
    head_file, backbone_file = FILES[net]
    torch.save(backbone, tmp_path / backbone_file, _use_new_zipfile_serialization=not legacy)
    torch.save(heads, tmp_path / head_file, _use_new_zipfile_serialization=not legacy)
    # The reference as it loads its heads (strict=False): every head comes from the file.
    check = reference.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    check.load_state_dict(torch.load(tmp_path / head_file, map_location="cpu"), strict=False)
    for layer in range(5):
        assert torch.equal(
            getattr(check, f"lin{layer}").model[1].weight, heads[f"lin{layer}.model.1.weight"]
        )

    weights = lpips.load_weights(tmp_path, net)
    for shape in shapes:
        pred, target = image_pair(shape, seed=sum(shape))
        with torch.no_grad():
            expected = model(
                torch.from_numpy(pred).permute(0, 3, 1, 2),
                torch.from_numpy(target).permute(0, 3, 1, 2),
                normalize=True,
            )
        expected = expected.numpy().reshape(-1)
        got = np.asarray(jit_lpips(weights, pred, target))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=f"{net} {shape}")


def test_the_published_heads_load_when_the_lpips_wheel_is_installed():
    """The lpips wheel's own `weights/v0.1/*.pth` (legacy torch files from 2018) load without
    torch: five non-negative heads of the right sizes. Skipped when lpips is not installed
    (`pip install lpips==0.1.4 --no-deps` suffices: the package is not imported)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lpips is not installed")
    from flamenerf.io import torch_files

    folder = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1"
    for net, sizes in (("alex", lpips.ALEXNET.channels), ("vgg", lpips.VGG16.channels)):
        heads = torch_files.load_state_dict(folder / f"{net}.pth")
        assert [k for k in heads] == [f"lin{i}.model.1.weight" for i in range(5)]
        assert [v.shape[1] for v in heads.values()] == list(sizes)
        assert all(v.dtype == np.float32 and v.min() >= 0 for v in heads.values())


# ------------------------------------------------------------------------------------------
# The weight files.


def test_a_hostile_weight_file_is_refused_without_running(tmp_path, weight_folder):
    sentinel = tmp_path / "ran"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    for legacy in (False, True):
        folder = tmp_path / f"legacy_{legacy}"
        folder.mkdir()
        (folder / "alexnet-owt-7be5be79.pth").symlink_to(weight_folder / "alexnet-owt-7be5be79.pth")
        head = folder / "alex.pth"
        if legacy:
            with open(head, "wb") as f:
                for value in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
                    pickle.dump(value, f, protocol=2)
                pickle.dump({"lin0.model.1.weight": Hostile()}, f, protocol=2)
        else:
            with zipfile.ZipFile(head, "w") as archive:
                archive.writestr("alex/data.pkl", pickle.dumps({"x": Hostile()}, protocol=2))
        with pytest.raises(UserError, match=rf"{head}: refused to load '(posix|nt).system'"):
            lpips.load_weights(folder, "alex")
        with pytest.raises(UserError, match="refused to load"):
            lpips.enable(folder)
        assert not sentinel.exists()
        assert "lpips" not in metrics.METRICS


@pytest.mark.parametrize("cut", [0.0, 0.001, 0.5, 0.999])
def test_truncated_and_garbage_weight_files_name_the_file(tmp_path, weight_folder, cut):
    for name in ("alex.pth", "alexnet-owt-7be5be79.pth"):
        folder = tmp_path / name
        folder.mkdir()
        for other in FILES["alex"]:
            data = (weight_folder / other).read_bytes()
            if other == name:
                data = data[: int(len(data) * cut)] if cut else b"\x00garbage" * 100
            (folder / other).write_bytes(data)
        with pytest.raises(UserError, match=rf"^{folder / name}: "):
            lpips.load_weights(folder, "alex")


def test_legacy_truncated_weights_name_the_file(tmp_path, weight_folder):
    data = (weight_folder / "vgg.pth").read_bytes()
    for cut in (10, 30, 200, len(data) - 1):
        folder = tmp_path / str(cut)
        folder.mkdir()
        (folder / "vgg.pth").write_bytes(data[:cut])
        (folder / "vgg16-397923af.pth").symlink_to(weight_folder / "vgg16-397923af.pth")
        with pytest.raises(UserError, match=rf"^{folder / 'vgg.pth'}: "):
            lpips.load_weights(folder, "vgg")


def test_wrong_tensors_in_weight_files_are_named(tmp_path, weight_folder):
    from lpips_util import write_torch_file

    def folder_with(name, tensors):
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        for other in FILES["alex"]:
            (folder / other).symlink_to(weight_folder / other)
        (folder / name).unlink()
        write_torch_file(folder / name, tensors)
        return folder

    heads = random_heads("alex", 0)
    negative = dict(heads, **{"lin2.model.1.weight": -heads["lin2.model.1.weight"]})
    with pytest.raises(UserError, match=r"alex.pth: 'lin2.model.1.weight' has negative weights"):
        lpips.load_weights(folder_with("alex.pth", negative), "alex")
    with pytest.raises(UserError, match=r"alex.pth: no 'lin4.model.1.weight'"):
        lpips.load_weights(folder_with("alex.pth", dict(list(heads.items())[:4])), "alex")
    backbone = random_backbone("alex", 0)
    backbone["features.3.weight"] = backbone["features.3.weight"][:, :32]
    with pytest.raises(UserError, match=r"'features.3.weight' has shape \(192, 32, 5, 5\)"):
        lpips.load_weights(folder_with("alexnet-owt-7be5be79.pth", backbone), "alex")
    del backbone["features.10.bias"]
    with pytest.raises(UserError, match=r"owt-7be5be79.pth: no tensor 'features.10.bias'"):
        lpips.load_weights(folder_with("alexnet-owt-7be5be79.pth", backbone), "alex")
    with pytest.raises(UserError, match=r"network 'squeeze': expected one of \['alex', 'vgg'\]"):
        lpips.load_weights(weight_folder, "squeeze")


# ------------------------------------------------------------------------------------------
# The registry.


def test_the_registry_lists_lpips_when_the_weights_are_present(weight_folder, loaded, jit_lpips):
    frame_names = metrics.metric_names("frame")
    validation = metrics.metric_names(validation=True)
    with lpips.enabled(weight_folder, ["alex", "vgg"]) as note:
        assert note is None
        names = metrics.metric_names("frame")
        at = names.index("ms_ssim_scales")
        assert names[at + 1 : at + 3] == ["lpips", "lpips_vgg"]
        assert metrics.metric_names(validation=True) == validation
        metric = metrics.METRICS["lpips"]
        assert metric.in_table and metric.format == ".4f" and not metric.validation
        pred, target = image_pair((48, 48, 3), seed=9)
        mask = np.ones((48, 48), bool)
        values = metrics.frame_metrics(pred, target, mask)
        assert values["lpips"] == pytest.approx(float(jit_lpips(loaded["alex"], pred, target)))
        assert values["lpips_vgg"] == pytest.approx(float(jit_lpips(loaded["vgg"], pred, target)))
        assert lpips.enable(weight_folder) is None  # again: replaced, not registered twice
        assert metrics.metric_names("frame").count("lpips") == 1
    assert metrics.metric_names("frame") == frame_names


def test_absent_weights_give_one_note_and_no_metric(tmp_path, monkeypatch, weight_folder):
    monkeypatch.delenv(lpips.ENV, raising=False)
    assert lpips.weights_folder() == Path(os.environ["FLAMENERF_CACHE"]) / "lpips"
    monkeypatch.setenv(lpips.ENV, str(tmp_path))
    assert lpips.weights_folder() == tmp_path
    assert lpips.weights_folder(weight_folder) == weight_folder
    with lpips.enabled() as note:
        assert "lpips" not in metrics.METRICS
    assert "\n" not in note and str(tmp_path) in note
    for text in (
        "alex.pth (the lpips wheel's lpips/weights/v0.1/alex.pth)",
        "alexnet-owt-7be5be79.pth",
    ):
        assert text in note
    assert "--lpips_weights" in note and lpips.ENV in note
    (tmp_path / "alex.pth").symlink_to(weight_folder / "alex.pth")
    with lpips.enabled(tmp_path, ["alex", "vgg"]) as note:
        assert "alex.pth" not in note and "alexnet-owt-7be5be79.pth" in note
        assert "vgg.pth" in note and "vgg16-397923af.pth" in note
        assert note.startswith("note: lpips, lpips_vgg skipped")
