# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of the warp fields: identity at initialisation, shapes, Jacobians, gradients."""

import typing

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

from flamenerf import configs
from flamenerf.nerf import warping

CODE_DIM = 8
NUM_FREQS = 6
FIELDS = {"translation": warping.TranslationField, "se3": warping.SE3Field}


def _points_and_codes(n=64):
    kx, kc = jax.random.split(jax.random.PRNGKey(0))
    points = jax.random.uniform(kx, (n, 3), minval=-1.0, maxval=1.0)
    codes = 0.1 * jax.random.normal(kc, (n, CODE_DIM))  # 10x the GLOEmbed initial scale
    return points, codes


@pytest.fixture(scope="module", params=sorted(FIELDS))
def field(request):
    """A small field, its variables and shared jitted functions."""
    module = FIELDS[request.param](num_freqs=NUM_FREQS, depth=3, width=32, skips=(2,))
    points, codes = _points_and_codes(2)
    variables = jax.jit(module.init)(jax.random.PRNGKey(1), points, codes, float(NUM_FREQS))

    def loss(params, points, codes):
        out = module.apply({"params": params}, points, codes, 3.0, return_jacobian=True)
        elastic = jnp.sum((out["jacobian"] - jnp.eye(3)) ** 2)
        return jnp.sum((out["warped_points"] - 0.5) ** 2) + elastic

    def one_point(variables, point, code):
        return module.apply(variables, point, code, float(NUM_FREQS))["warped_points"]

    return {
        "name": request.param,
        "variables": variables,
        "apply": jax.jit(module.apply, static_argnames="return_jacobian"),
        "grad": jax.jit(jax.grad(loss)),
        "jacobian_reference": jax.jit(jax.vmap(jax.jacfwd(one_point, 1), (None, 0, 0))),
    }


def _scale_outputs(variables, factor):
    """Scales the output layers so the warp is far from the identity."""
    flat = flax.traverse_util.flatten_dict(variables["params"])
    flat = {k: v * factor if "output" in k else v for k, v in flat.items()}
    return {"params": flax.traverse_util.unflatten_dict(flat)}


def _set_outputs(variables, biases):
    """Zero output kernels and given output biases: a constant warp."""
    flat = flax.traverse_util.flatten_dict(variables["params"])
    for key in flat:
        if "output" in key:
            head = key[0]
            flat[key] = jnp.zeros_like(flat[key]) if key[-1] == "kernel" else biases[head]
    return {"params": flax.traverse_util.unflatten_dict(flat)}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_identity_at_initialisation_default_size(name):
    module = FIELDS[name](num_freqs=NUM_FREQS)  # Nerfies' 6 x 128 trunk
    points, codes = _points_and_codes()
    out, _ = jax.jit(module.init_with_output)(jax.random.PRNGKey(1), points, codes, NUM_FREQS)
    assert float(jnp.max(jnp.abs(out["warped_points"] - points))) < 1e-3


def test_identity_at_initialisation(field):
    points, codes = _points_and_codes()
    out = field["apply"](field["variables"], points, codes, jnp.float32(NUM_FREQS))
    assert float(jnp.max(jnp.abs(out["warped_points"] - points))) < 1e-3


def test_output_shapes_with_leading_dims(field):
    variables, apply = field["variables"], field["apply"]
    points = jnp.zeros((2, 5, 3))
    codes = jnp.zeros((2, 1, CODE_DIM))  # per-ray codes broadcast over samples
    out = apply(variables, points, codes, jnp.float32(2.0), return_jacobian=True)
    chex.assert_shape([out["warped_points"], out["jacobian"]], [(2, 5, 3), (2, 5, 3, 3)])
    out = apply(variables, jnp.zeros(3), jnp.zeros(CODE_DIM), jnp.float32(2.0))
    assert set(out) == {"warped_points"}
    chex.assert_shape(out["warped_points"], (3,))


def test_jacobian_matches_jacfwd_per_point(field):
    variables = _scale_outputs(field["variables"], 300.0)
    points, codes = _points_and_codes(4)
    out = field["apply"](variables, points, codes, jnp.float32(NUM_FREQS), return_jacobian=True)
    expected = field["jacobian_reference"](variables, points, codes)
    np.testing.assert_allclose(out["jacobian"], expected, rtol=1e-4, atol=1e-4)
    assert float(jnp.max(jnp.abs(out["jacobian"] - jnp.eye(3)))) > 1e-2  # not trivially I


def test_constant_output_gives_known_warp(field):
    points, codes = _points_and_codes(8)
    if field["name"] == "translation":
        t = jnp.array([0.1, -0.2, 0.3])
        variables = _set_outputs(field["variables"], {"mlp": t})
        expected = np.asarray(points) + np.asarray(t)
    else:
        w, v = np.array([0.3, -0.5, 0.2]), np.array([0.05, 0.1, -0.2])
        biases = {"w": jnp.asarray(w, jnp.float32), "v": jnp.asarray(v, jnp.float32)}
        variables = _set_outputs(field["variables"], biases)
        m = np.zeros((4, 4))
        m[:3, :3] = [[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]]
        m[:3, 3] = v
        transform = expm(m)
        expected = np.asarray(points) @ transform[:3, :3].T + transform[:3, 3]
    out = field["apply"](variables, points, codes, jnp.float32(1.0))
    np.testing.assert_allclose(out["warped_points"], expected, atol=1e-5)


@pytest.mark.parametrize("output_scale", [1.0, 0.0])
def test_parameter_gradients_finite(field, output_scale):
    # output_scale 0 makes the SE(3) twist exactly zero: the theta = 0 case.
    variables = _scale_outputs(field["variables"], output_scale)
    points, codes = _points_and_codes(8)
    grads = field["grad"](variables["params"], points, codes)
    chex.assert_tree_all_finite(grads)
    flat = flax.traverse_util.flatten_dict(grads)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for k, g in flat.items() if "output" in k)


class JacobianVariantsTest(chex.TestCase):
    """`with_jacobian` (one linearisation, three tangents), traced by jax.jit and run op by op."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_with_jacobian_of_a_known_nonlinear_warp(self):
        # warp(x) = A x + sin(x) (element-wise): Jacobian A + diag(cos(x)) at each point.
        a = np.array([[0.5, -1.0, 0.2], [0.3, 0.1, 2.0], [-0.7, 0.4, 1.5]], np.float32)
        points = np.random.default_rng(0).uniform(-2.0, 2.0, size=(2, 4, 3)).astype(np.float32)

        def warp(x):
            return x @ jnp.asarray(a).T + jnp.sin(x)

        out = self.variant(lambda x: warping.with_jacobian(warp, x))(jnp.asarray(points))
        expected = {
            "warped_points": points @ a.T + np.sin(points),
            "jacobian": a + np.cos(points)[..., None] * np.eye(3),
        }
        chex.assert_trees_all_close(out, expected, atol=1e-5, rtol=0.0)


def test_init_with_jacobian_creates_same_parameters():
    module = warping.SE3Field(num_freqs=2, depth=2, width=8, skips=(1,))
    points, codes = _points_and_codes(2)
    plain = jax.eval_shape(module.init, jax.random.PRNGKey(0), points, codes, 1.0)
    with_jac = jax.eval_shape(
        lambda *a: module.init(*a, return_jacobian=True), jax.random.PRNGKey(0), points, codes, 1.0
    )
    chex.assert_trees_all_equal_shapes_and_dtypes(plain, with_jac)


# --------------------------------------------------------------------------------------------
# The registry of warp types.


def test_registry_holds_the_tested_fields_and_drives_the_config_check():
    assert dict(warping.WARP_FIELDS) == FIELDS
    assert warping.warp_type_names() == ("none", "translation", "se3")
    hint = typing.get_type_hints(configs.WarpConfig)["warp_type"]
    assert typing.get_args(hint) == warping.warp_type_names()
    with pytest.raises(ValueError) as info:
        configs.WarpConfig(warp_type="se4")
    message = str(info.value).splitlines()[0]
    assert message.startswith("WarpConfig.warp_type: expected one of ")
    assert message.endswith("got 'se4'")
    assert all(repr(name) in message for name in warping.warp_type_names())


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_make_warp_field_builds_the_registered_class(name):
    field = warping.make_warp_field(name, num_freqs=3, depth=2, width=16, skips=(1,))
    assert type(field) is FIELDS[name]
    assert (field.num_freqs, field.depth, field.width, tuple(field.skips)) == (3, 2, 16, (1,))


@pytest.mark.parametrize("name", ["none", "SE3", "affine"])
def test_make_warp_field_rejects_unregistered_names(name):
    with pytest.raises(ValueError, match=rf"warp type {name!r} has no warp field") as info:
        warping.make_warp_field(name, num_freqs=3, depth=2, width=16, skips=())
    assert all(repr(registered) in str(info.value) for registered in warping.WARP_FIELDS)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        warping.WARP_FIELDS["affine"] = warping.TranslationField
