# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Deformation (warp) fields of Nerfies: observation-space points -> canonical points.

Both fields take a point `x: (..., 3)`, a per-frame warp code `code: (..., C)` (already looked
up, e.g. with `modules.GLOEmbed`) and the annealing parameter `alpha`, and return
`{"warped_points": (..., 3)}` plus `"jacobian": (..., 3, 3)` (d warped / d x, for the
elastic loss) when asked.

Batching is by broadcasting, not `nn.vmap`: every layer acts on the last axis, so any
leading shape works and all points share one set of parameters. `code` is broadcast against
the points' leading shape, so a per-ray code for points `(N, S, 3)` must be passed as
`(N, 1, C)` or `(N, S, C)` (see `modules.broadcast_to_samples`).

The output layers are initialised with uniform(-1e-4, 1e-4) weights and zero biases, so both
fields start as the identity up to ~1e-4 * (hidden activations), as in Nerfies.

`WARP_FIELDS` (at the end) is the registry of warp types: `WarpConfig.warp_type` names one of
them, or "none" (no warp: a static NeRF). To add a warp type, write a field with the
attributes `num_freqs, depth, width, skips` and the call signature above, and add one entry.
"""

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import flax.linen as nn
import jax
import jax.numpy as jnp

from flamenerf.geometry import rigid_body
from flamenerf.nerf import layers as modules

Array = jax.Array

_TINY_INIT = modules.uniform_symmetric(1e-4)


def _trunk_inputs(points: Array, code: Array, num_freqs: int, alpha: float | Array) -> Array:
    """Concatenates the annealed encoding of `points: (..., 3)` with `code` broadcast to it."""
    encoded = modules.annealed_posenc(points, num_freqs, alpha, include_identity=True)
    code = jnp.broadcast_to(code, (*points.shape[:-1], code.shape[-1]))
    return jnp.concatenate([encoded, code], axis=-1)


def with_jacobian(warp: Callable[[Array], Array], points: Array) -> dict[str, Array]:
    """Evaluates `warp` and its per-point Jacobian by linearising once, then 3 tangents.

    Points are independent, so pushing the tangent e_k through every point at once yields the
    k-th Jacobian column of all points: (..., 3, 3) with [..., i, k] = d out_i / d x_k.
    """
    warped, push_forward = jax.linearize(warp, points)
    columns = [
        push_forward(jnp.broadcast_to(jnp.eye(3, dtype=points.dtype)[k], points.shape))
        for k in range(3)
    ]
    return {"warped_points": warped, "jacobian": jnp.stack(columns, axis=-1)}


class TranslationField(nn.Module):
    """Warp by a translation: `x -> x + MLP(annealed_posenc(x), code)`.

    Attributes:
      num_freqs: frequency bands of the annealed encoding of the point.
      depth: hidden layers of the MLP.
      width: units per hidden layer.
      skips: hidden layers that receive the MLP input again.
      activation: hidden activation.
      hidden_init: kernel initializer of the hidden layers.
      output_init: kernel initializer of the output layer (tiny, so the warp starts as identity).
    """

    num_freqs: int = 8
    depth: int = 6
    width: int = 128
    skips: Sequence[int] = (4,)
    activation: Callable[[Array], Array] = nn.relu
    hidden_init: modules.Initializer = nn.initializers.glorot_uniform()
    output_init: modules.Initializer = _TINY_INIT

    @nn.compact
    def __call__(
        self,
        points: Array,
        code: Array,
        alpha: float | Array,
        return_jacobian: bool = False,
    ) -> dict[str, Array]:
        """Warps `points: (..., 3)` with `code: (..., C)`; see the module docstring."""
        mlp = modules.MLP(
            depth=self.depth,
            width=self.width,
            skips=self.skips,
            activation=self.activation,
            output_dim=3,
            hidden_init=self.hidden_init,
            output_init=self.output_init,
            name="mlp",
        )

        def warp(x: Array) -> Array:
            return x + mlp(_trunk_inputs(x, code, self.num_freqs, alpha))

        if not return_jacobian:
            return {"warped_points": warp(points)}
        if self.is_initializing():
            warp(points)  # creates the parameters outside the jax transform
        return with_jacobian(warp, points)


class SE3Field(nn.Module):
    """Warp by a rigid motion per point (Nerfies' SE(3) field).

    A trunk MLP feeds two heads: w (3) and v (3). Their concatenation is the twist (exponential
    coordinates, screw axis S = (w, v) / |w| times theta = |w|) whose exponential is applied to
    the point: `x -> R x + p`, with `exp_se3_vector`, safe at w = 0.

    Attributes:
      num_freqs: frequency bands of the annealed encoding of the point.
      depth: hidden layers of the trunk.
      width: units per hidden layer of the trunk.
      skips: trunk layers that receive the trunk input again.
      branch_depth: hidden layers of each head (0: a single linear layer, as Nerfies).
      branch_width: units per hidden layer of each head.
      activation: hidden activation.
      hidden_init: kernel initializer of the hidden layers.
      output_init: kernel initializer of both heads' output layers (tiny: identity at start).
    """

    num_freqs: int = 8
    depth: int = 6
    width: int = 128
    skips: Sequence[int] = (4,)
    branch_depth: int = 0
    branch_width: int = 128
    activation: Callable[[Array], Array] = nn.relu
    hidden_init: modules.Initializer = nn.initializers.glorot_uniform()
    output_init: modules.Initializer = _TINY_INIT

    @nn.compact
    def __call__(
        self,
        points: Array,
        code: Array,
        alpha: float | Array,
        return_jacobian: bool = False,
    ) -> dict[str, Array]:
        """Warps `points: (..., 3)` with `code: (..., C)`; see the module docstring."""
        trunk = modules.MLP(
            depth=self.depth,
            width=self.width,
            skips=self.skips,
            activation=self.activation,
            hidden_init=self.hidden_init,
            name="trunk",
        )
        heads = {
            name: modules.MLP(
                depth=self.branch_depth,
                width=self.branch_width,
                activation=self.activation,
                output_dim=3,
                hidden_init=self.hidden_init,
                output_init=self.output_init,
                name=name,
            )
            for name in ("w", "v")
        }

        def warp(x: Array) -> Array:
            features = trunk(_trunk_inputs(x, code, self.num_freqs, alpha))
            twist = jnp.concatenate([heads["w"](features), heads["v"](features)], axis=-1)
            return rigid_body.apply_transform(rigid_body.exp_se3_vector(twist), x)

        if not return_jacobian:
            return {"warped_points": warp(points)}
        if self.is_initializing():
            warp(points)  # creates the parameters outside the jax transform
        return with_jacobian(warp, points)


# --------------------------------------------------------------------------------------------
# The registry of warp types: `WarpConfig.warp_type` -> field class.

NO_WARP = "none"  # the warp type without a field: observation space is the canonical space

WARP_FIELDS: Mapping[str, type[nn.Module]] = MappingProxyType(
    {
        "translation": TranslationField,
        "se3": SE3Field,
    }
)


def warp_type_names() -> tuple[str, ...]:
    """Every valid `WarpConfig.warp_type`: "none", then the registered fields in order."""
    return (NO_WARP, *WARP_FIELDS)


def make_warp_field(
    warp_type: str, *, num_freqs: int, depth: int, width: int, skips: Sequence[int], **kwargs
) -> nn.Module:
    """The registered warp field `warp_type`, built with the given hyper-parameters.

    Raises:
      ValueError: `warp_type` is "none" or not registered (the message lists the names).
    """
    if warp_type not in WARP_FIELDS:
        raise ValueError(
            f"warp type {warp_type!r} has no warp field: expected one of "
            + ", ".join(repr(name) for name in WARP_FIELDS)
            + f" (or {NO_WARP!r} for no warp)"
        )
    return WARP_FIELDS[warp_type](
        num_freqs=num_freqs, depth=depth, width=width, skips=skips, **kwargs
    )
