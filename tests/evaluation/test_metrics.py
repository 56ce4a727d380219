# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests for flamenerf.evaluation.metrics against hand-computed values and brute-force
numpy/scipy."""

import math

import jax
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from flamenerf.evaluation import metrics

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
C1, C2 = 0.01**2, 0.03**2


# ---------------------------------------------------------------- numpy references (float64)


def _gauss_1d() -> np.ndarray:
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    return g / g.sum()


def _ssim_maps_bruteforce(x: np.ndarray, y: np.ndarray):
    """Explicit 11x11 window over every 'valid' position. x, y: (H, W) -> (lum, cs) maps."""
    window = np.outer(_gauss_1d(), _gauss_1d())
    px, py = sliding_window_view(x, (11, 11)), sliding_window_view(y, (11, 11))
    mx = np.einsum("ijkl,kl->ij", px, window)
    my = np.einsum("ijkl,kl->ij", py, window)
    vx = np.einsum("ijkl,kl->ij", (px - mx[..., None, None]) ** 2, window)
    vy = np.einsum("ijkl,kl->ij", (py - my[..., None, None]) ** 2, window)
    cov = np.einsum("ijkl,kl->ij", (px - mx[..., None, None]) * (py - my[..., None, None]), window)
    lum = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
    cs = (2 * cov + C2) / (vx + vy + C2)
    return lum, cs


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM over pixels and channels. x, y: (H, W, C)."""
    maps = [_ssim_maps_bruteforce(x[..., c], y[..., c]) for c in range(x.shape[-1])]
    return float(np.mean([lum * cs for lum, cs in maps]))


def _ssim_maps_scipy(x: np.ndarray, y: np.ndarray):
    """Same statistics through scipy's Gaussian filter, cropped to the 'valid' region."""

    def blur(z):
        return ndimage.gaussian_filter(z, sigma=1.5, radius=5, mode="constant")[5:-5, 5:-5]

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    lum = (2 * mx * my + C1) / (mx**2 + my**2 + C1)
    cs = (2 * cov + C2) / (vx + vy + C2)
    return lum, cs


def _ms_ssim_reference(x: np.ndarray, y: np.ndarray, num_scales: int) -> float:
    """Wang et al. 2003 product per channel, mean over channels. x, y: (H, W, C)."""
    w = WEIGHTS[:num_scales] / WEIGHTS[:num_scales].sum()
    per_channel = []
    for c in range(x.shape[-1]):
        a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
        value = 1.0
        for j in range(num_scales):
            lum, cs = _ssim_maps_scipy(a, b)
            term = cs.mean() if j < num_scales - 1 else (lum * cs).mean()
            value *= max(term, 0.0) ** w[j]
            pad = ((0, a.shape[0] % 2), (0, a.shape[1] % 2))
            a, b = np.pad(a, pad, mode="symmetric"), np.pad(b, pad, mode="symmetric")
            h, wd = a.shape
            a = a.reshape(h // 2, 2, wd // 2, 2).mean(axis=(1, 3))
            b = b.reshape(h // 2, 2, wd // 2, 2).mean(axis=(1, 3))
        per_channel.append(value)
    return float(np.mean(per_channel))


# ---------------------------------------------------------------- shared data and jitted fns


def _noisy_pair(rng, shape, noise=0.15, blur=1.0):
    """A smooth-ish random image and a noisy copy, both in [0, 1], float32."""
    x = ndimage.gaussian_filter(rng.random(shape), sigma=(0,) * (len(shape) - 3) + (blur, blur, 0))
    x = (x - x.min()) / (x.max() - x.min())
    y = np.clip(x + noise * rng.standard_normal(shape), 0.0, 1.0)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="session")
def jit_ssim():
    return jax.jit(metrics.ssim)


@pytest.fixture(scope="session")
def jit_ms_ssim():
    return jax.jit(metrics.ms_ssim, static_argnames="weights")


# ---------------------------------------------------------------- PSNR


def test_mse_to_psnr():
    np.testing.assert_allclose(
        np.asarray(metrics.mse_to_psnr(np.array([1.0, 0.01, 1e-4]))), [0, 20, 40]
    )


def test_psnr_constant_error():
    target = np.full((4, 5, 3), 0.5, np.float32)
    np.testing.assert_allclose(float(metrics.psnr(target + 0.1, target)), 20.0, rtol=1e-5)
    assert float(metrics.psnr(target, target)) == math.inf


def test_psnr_masked():
    rng = np.random.default_rng(0)
    target = rng.random((2, 6, 7, 3)).astype(np.float32) * 0.5
    mask = np.zeros((2, 6, 7), bool)
    mask[0, 1:4, 2:6] = True
    mask[1, 3:, :] = True
    error = np.where(mask[..., None], 0.1, 0.3).astype(np.float32)
    pred = target + error
    np.testing.assert_allclose(np.asarray(metrics.psnr(pred, target, mask)), 20.0, rtol=1e-5)
    outside = -10 * math.log10(0.09)
    np.testing.assert_allclose(np.asarray(metrics.psnr(pred, target, ~mask)), outside, rtol=1e-5)
    # (..., H, W, 1) masks and float weights give the same numbers.
    np.testing.assert_allclose(
        np.asarray(metrics.psnr(pred, target, mask[..., None].astype(np.float32))), 20.0, rtol=1e-5
    )
    # Whole-image PSNR from the hand-computed MSE.
    frac = mask.mean(axis=(1, 2))
    expected = -10 * np.log10(frac * 0.01 + (1 - frac) * 0.09)
    np.testing.assert_allclose(np.asarray(metrics.psnr(pred, target)), expected, rtol=1e-5)


def test_psnr_empty_mask_is_nan():
    x = np.zeros((4, 4, 3), np.float32)
    assert np.isnan(float(metrics.psnr(x + 0.1, x, np.zeros((4, 4), bool))))


def test_psnr_bad_shapes():
    x = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="target"):
        metrics.psnr(x, np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="mask"):
        metrics.psnr(x, x, np.zeros((4, 5), bool))


# ---------------------------------------------------------------- SSIM


def test_ssim_identical_is_one(jit_ssim):
    x, _ = _noisy_pair(np.random.default_rng(1), (24, 20, 3))
    np.testing.assert_allclose(float(jit_ssim(x, x)), 1.0, atol=1e-6)


def test_ssim_matches_bruteforce(jit_ssim):
    rng = np.random.default_rng(2)
    for shape in [(30, 37, 3), (16, 11, 3)]:
        x, y = _noisy_pair(rng, shape)
        expected = _ssim_reference(x.astype(np.float64), y.astype(np.float64))
        np.testing.assert_allclose(float(jit_ssim(x, y)), expected, atol=1e-4)
    # Independent uniform noise (SSIM near 0).
    x, y = rng.random((2, 20, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(float(jit_ssim(x, y)), _ssim_reference(x, y), atol=1e-4)


def test_ssim_batched(jit_ssim):
    rng = np.random.default_rng(3)
    x, y = _noisy_pair(rng, (2, 3, 16, 18, 3))
    got = np.asarray(jit_ssim(x, y))
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(got[i, j], _ssim_reference(x[i, j], y[i, j]), atol=1e-4)


def test_ssim_too_small():
    x = np.zeros((10, 32, 3), np.float32)
    with pytest.raises(ValueError, match="11"):
        metrics.ssim(x, x)


# ---------------------------------------------------------------- MS-SSIM


@pytest.mark.parametrize(
    "side, scales", [(11, 1), (20, 1), (21, 2), (40, 2), (41, 3), (64, 3), (160, 4), (161, 5)]
)
def test_ms_ssim_num_scales(side, scales):
    assert metrics.ms_ssim_num_scales((side, side + 7, 3)) == scales
    assert metrics.ms_ssim_num_scales((2, side + 50, side, 3)) == scales
    assert metrics.ms_ssim_num_scales((1000, 1000, 3)) == 5
    assert metrics.ms_ssim_num_scales((1000, 1000, 3), max_scales=2) == 2


def test_ms_ssim_num_scales_too_small():
    with pytest.raises(ValueError, match="11"):
        metrics.ms_ssim_num_scales((10, 100, 3))


def test_ms_ssim_identical_is_one(jit_ms_ssim):
    x, _ = _noisy_pair(np.random.default_rng(4), (48, 44, 3))
    np.testing.assert_allclose(float(jit_ms_ssim(x, x)), 1.0, atol=1e-6)


def test_ms_ssim_one_scale_is_ssim(jit_ms_ssim, jit_ssim):
    x, y = _noisy_pair(np.random.default_rng(5), (2, 26, 31, 3))
    np.testing.assert_allclose(
        np.asarray(jit_ms_ssim(x, y, weights=(1.0,))), np.asarray(jit_ssim(x, y)), atol=1e-6
    )


def test_ms_ssim_five_scales_matches_numpy(jit_ms_ssim):
    x, y = _noisy_pair(np.random.default_rng(6), (176, 176, 3), noise=0.2)
    assert metrics.ms_ssim_num_scales(x.shape) == 5
    expected = _ms_ssim_reference(x, y, 5)
    assert 0.1 < expected < 0.99  # A non-trivial value.
    np.testing.assert_allclose(float(jit_ms_ssim(x, y)), expected, atol=1e-4)


def test_ms_ssim_small_image_renormalised(jit_ms_ssim):
    x, y = _noisy_pair(np.random.default_rng(7), (64, 64, 3))
    assert metrics.ms_ssim_num_scales(x.shape) == 3
    expected = _ms_ssim_reference(x, y, 3)
    np.testing.assert_allclose(float(jit_ms_ssim(x, y)), expected, atol=1e-4)
    # Renormalisation matters: the unnormalised 3-weight product differs.
    assert abs(float(jit_ms_ssim(x, y)) - expected ** (WEIGHTS[:3].sum())) > 1e-3


def test_ms_ssim_odd_sizes_and_batch(jit_ms_ssim):
    rng = np.random.default_rng(8)
    x, y = _noisy_pair(rng, (2, 45, 53, 3))  # 45 -> 23 -> 12: 3 scales, odd sizes padded.
    got = np.asarray(jit_ms_ssim(x, y))
    assert got.shape == (2,)
    for i in range(2):
        np.testing.assert_allclose(got[i], _ms_ssim_reference(x[i], y[i], 3), atol=1e-4)


def test_ms_ssim_clips_negative_terms(jit_ms_ssim):
    x = np.random.default_rng(9).random((24, 24, 1)).astype(np.float32)
    # An inverted image has negative structure correlation: the product is clipped to 0.
    assert float(jit_ms_ssim(x, 1.0 - x)) == 0.0


# ---------------------------------------------------------------- the evaluation metrics


def test_frame_metrics_match_hand_computed_values():
    rng = np.random.default_rng(0)
    target = rng.uniform(0.3, 0.7, (12, 16, 3)).astype(np.float32)
    mask = np.zeros((12, 16), bool)
    mask[2:8, 4:12] = True  # 48 face pixels, 144 outside
    pred = target + np.where(mask[..., None], 0.1, 0.2).astype(np.float32)
    values = metrics.frame_metrics(pred, target, mask)
    assert values["psnr_face"] == pytest.approx(20.0, abs=1e-3)
    assert values["psnr_outside"] == pytest.approx(-10 * np.log10(0.04), abs=1e-3)
    whole = (48 * 0.01 + 144 * 0.04) / 192
    assert values["psnr"] == pytest.approx(-10 * np.log10(whole), abs=1e-3)
    assert values["ms_ssim_scales"] == 1  # a 12-px side holds one 11-px window
    same = metrics.frame_metrics(target, target, mask)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert same["ms_ssim"] == pytest.approx(1.0, abs=1e-5)
    big = np.zeros((64, 64, 3))
    assert metrics.frame_metrics(big, big, np.ones((64, 64), bool))["ms_ssim_scales"] == 3


def test_small_images_have_no_ssim():
    values = metrics.frame_metrics(np.zeros((8, 8, 3)), np.ones((8, 8, 3)), np.ones((8, 8), bool))
    assert np.isnan(values["ssim"]) and values["ms_ssim_scales"] == 0
    assert values["psnr"] == pytest.approx(0.0)


def test_frame_metrics_computes_the_names_asked_in_their_order():
    pred, target = np.full((4, 4, 3), 0.5), np.full((4, 4, 3), 0.6)
    mask = np.zeros((4, 4), bool)
    values = metrics.frame_metrics(pred, target, mask, ["psnr_face", "psnr"])
    assert list(values) == ["psnr_face", "psnr"]
    assert np.isnan(values["psnr_face"])  # no silhouette pixel
    assert values["psnr"] == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="'disent_inside': expected one of the frame metrics"):
        metrics.frame_metrics(pred, target, mask, ["disent_inside"])


def test_disentanglement_regions_by_hand():
    a = np.zeros((8, 8, 3))
    mask_a = np.zeros((8, 8), bool)
    mask_a[3:5, 3:5] = True
    mask_b = np.zeros((8, 8), bool)
    mask_b[3:5, 5] = True
    b = a.copy()
    b[4, 6] = 0.6  # next to the union: inside the 1-px dilation
    b[2, 2] = 0.3  # diagonal neighbour of the union: inside too (3x3 dilation)
    b[0, 0] = 0.9  # two pixels away: outside
    values = metrics.disentanglement(a, b, mask_a, mask_b)
    region = np.zeros((8, 8), bool)
    region[2:6, 2:7] = True  # union (rows 3-4, cols 3-5) dilated by one pixel
    np.testing.assert_array_equal(metrics.disentanglement_region(mask_a, mask_b), region)
    assert values["disent_inside"] == pytest.approx((0.6 + 0.3) / region.sum())
    assert values["disent_outside"] == pytest.approx(0.9 / (~region).sum())
    everything = np.ones((8, 8), bool)
    assert np.isnan(metrics.disentanglement(a, b, everything, everything)["disent_outside"])


def test_registry_order_kinds_and_flags():
    assert metrics.metric_names("frame") == [
        "psnr",
        "psnr_face",
        "psnr_outside",
        "ssim",
        "ms_ssim",
        "ms_ssim_scales",
    ]
    assert metrics.metric_names("disentanglement") == ["disent_outside", "disent_inside"]
    assert metrics.metric_names("report") == [
        "psnr_near_third",
        "psnr_far_third",
        "code_dependence",
    ]
    assert metrics.metric_names(validation=True) == ["psnr", "psnr_face", "psnr_outside"]
    assert [m.name for m in metrics.METRICS.values() if m.integer] == ["ms_ssim_scales"]
    report = {"distance": {"near_third_psnr": 21.5, "far_third_psnr": 19.0}}
    assert metrics.METRICS["psnr_near_third"].fn(report) == 21.5
    assert metrics.METRICS["psnr_far_third"].fn({}) is None
    swap = {"distance": {"code_swap": {"code_dependence_db": 0.7}}}
    assert metrics.METRICS["code_dependence"].fn(swap) == 0.7
    assert metrics.METRICS["code_dependence"].fn(report) is None


def test_register_refuses_a_second_metric_of_a_name_and_unknown_kinds(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))
    with pytest.raises(ValueError, match="metric 'psnr': registered twice"):
        metrics.register(metrics.Metric("psnr", "frame", lambda p, t, m: 0.0))
    with pytest.raises(ValueError, match="kind: expected 'frame'"):
        metrics.register(metrics.Metric("x", "image", lambda p, t, m: 0.0))
    added = metrics.register(
        metrics.Metric("mean_abs", "frame", lambda p, t, m: float(np.abs(p - t).mean()))
    )
    assert metrics.metric_names("frame")[-1] == "mean_abs" and added.format == ".4f"
    mask = np.ones((2, 2), bool)
    values = metrics.frame_metrics(np.zeros((2, 2, 3)), np.full((2, 2, 3), 0.25), mask)
    assert values["mean_abs"] == 0.25


def test_register_after_a_metric_and_unregister(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))
    frame = metrics.metric_names("frame")
    metrics.register(metrics.Metric("extra", "frame", lambda p, t, m: 0.0), after="ssim")
    names = metrics.metric_names("frame")
    assert names == frame[: frame.index("ssim") + 1] + ["extra"] + frame[frame.index("ssim") + 1 :]
    metrics.register(metrics.Metric("last", "frame", lambda p, t, m: 0.0), after="not there")
    assert metrics.metric_names()[-1] == "last"
    metrics.unregister("extra")
    metrics.unregister("extra")  # absent: nothing happens
    assert metrics.metric_names("frame") == frame + ["last"]
