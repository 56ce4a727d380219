# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Building blocks shared by the fields: MLPs, positional encodings, latent codes.

Everything here works on arrays with arbitrary leading dimensions: an encoding of
`x: (..., D)` returns `(..., E)`, an MLP maps `(..., C_in)` to `(..., C_out)`. Modules are
therefore written for one point and batch by broadcasting (no `nn.vmap` is needed).
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Activation = Callable[[Array], Array]
Initializer = Callable[..., Array]


def uniform_symmetric(scale: float) -> Initializer:
    """An initializer drawing from uniform(-scale, scale).

    `nn.initializers.uniform(scale)` draws from [0, scale); Nerfies' "tiny" output layers
    (which make a warp field start as the identity) want a symmetric range.
    """

    def init(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

    return init


class MLP(nn.Module):
    """A multi-layer perceptron with NeRF-style skip connections.

    Hidden layer `i` (0-based) for `i in skips` receives `concat([h, inputs], -1)`, where
    `inputs` are the MLP's own inputs, i.e. NeRF's `skips=(4,)` feeds the input again to the
    fifth hidden layer. `depth` counts hidden layers only; the output layer is added when
    `output_dim > 0` (otherwise the last hidden activation is returned).

    Attributes:
      depth: number of hidden layers (each Dense(width) followed by `activation`).
      width: units of each hidden layer.
      skips: indices of hidden layers, in [1, depth), whose input is concatenated with the
        MLP input.
      activation: hidden activation.
      output_dim: units of the final linear layer; 0 for none.
      output_activation: applied to the output layer; None for linear.
      hidden_init: kernel initializer of the hidden layers.
      output_init: kernel initializer of the output layer.
      use_bias: whether Dense layers have biases.
    """

    depth: int
    width: int
    skips: Sequence[int] = ()
    activation: Activation = nn.relu
    output_dim: int = 0
    output_activation: Activation | None = None
    hidden_init: Initializer = nn.initializers.glorot_uniform()
    output_init: Initializer = nn.initializers.glorot_uniform()
    use_bias: bool = True

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        """Maps `inputs: (..., C_in)` to `(..., output_dim)` (or `(..., width)` if no output)."""
        for i in self.skips:
            if not 1 <= i < self.depth:
                raise ValueError(
                    f"MLP.skips: found layer index {i}, expected indices in [1, {self.depth}) "
                    f"(depth={self.depth})"
                )
        x = inputs
        for i in range(self.depth):
            if i in self.skips:
                x = jnp.concatenate([x, inputs], axis=-1)
            x = nn.Dense(
                self.width, use_bias=self.use_bias, kernel_init=self.hidden_init, name=f"hidden_{i}"
            )(x)
            x = self.activation(x)
        if self.output_dim > 0:
            x = nn.Dense(
                self.output_dim, use_bias=self.use_bias, kernel_init=self.output_init, name="output"
            )(x)
            if self.output_activation is not None:
                x = self.output_activation(x)
        return x


def posenc(x: Array, min_deg: int, max_deg: int, include_identity: bool = True) -> Array:
    """Sinusoidal positional encoding with frequencies 2^min_deg .. 2^(max_deg - 1).

    Layout, for bands `l = min_deg .. max_deg - 1`:
    `[x (if include_identity), sin(2^l x), cos(2^l x) for each l]`, each block of size D.
    No factor pi (as NeRF's code, Nerfies and mip-NeRF).

    Args:
      x: (..., D) values to encode.
      min_deg: log2 of the lowest frequency (inclusive).
      max_deg: log2 of the highest frequency (exclusive).
      include_identity: prepend `x` itself.

    Returns:
      (..., D * 2 * (max_deg - min_deg) [+ D]) features.
    """
    num_bands = max_deg - min_deg
    if num_bands < 0:
        raise ValueError(f"posenc: found min_deg={min_deg} > max_deg={max_deg}")
    return _banded_encoding(x, min_deg, jnp.ones((num_bands,), x.dtype), include_identity)


def anneal_weights(alpha: float | Array, num_freqs: int) -> Array:
    """Nerfies' coarse-to-fine window: band j gets (1 - cos(pi * clip(alpha - j, 0, 1))) / 2.

    Args:
      alpha: scalar in [0, num_freqs]; 0 disables every band, num_freqs enables all.
      num_freqs: number of frequency bands.

    Returns:
      (num_freqs,) weights in [0, 1].
    """
    bands = jnp.arange(num_freqs, dtype=jnp.float32)
    ramp = jnp.clip(jnp.asarray(alpha, jnp.float32) - bands, 0.0, 1.0)
    return 0.5 * (1.0 - jnp.cos(jnp.pi * ramp))


def annealed_posenc(
    x: Array, num_freqs: int, alpha: float | Array, include_identity: bool = True
) -> Array:
    """Positional encoding with frequencies 2^0 .. 2^(num_freqs-1), band j scaled by w_j(alpha).

    Same layout as `posenc(x, 0, num_freqs, include_identity)`; the identity is never windowed.

    Args:
      x: (..., D) values to encode.
      num_freqs: number of frequency bands.
      alpha: scalar annealing parameter (see `anneal_weights`); may be traced.
      include_identity: prepend `x` itself.

    Returns:
      (..., D * 2 * num_freqs [+ D]) features.
    """
    weights = anneal_weights(alpha, num_freqs).astype(x.dtype)
    return _banded_encoding(x, 0, weights, include_identity)


def _banded_encoding(x: Array, min_deg: int, weights: Array, include_identity: bool) -> Array:
    """Encodes `x: (..., D)` with bands 2^(min_deg + j), band j multiplied by `weights[j]`."""
    num_bands = weights.shape[0]
    scales = 2.0 ** jnp.arange(min_deg, min_deg + num_bands, dtype=x.dtype)
    angles = x[..., None, :] * scales[:, None]  # (..., L, D)
    sincos = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-2)  # (..., L, 2, D)
    sincos = sincos * weights[:, None, None]
    features = sincos.reshape(*x.shape[:-1], num_bands * 2 * x.shape[-1])
    if include_identity:
        features = jnp.concatenate([x, features], axis=-1)
    return features


def posenc_dim(num_inputs: int, num_bands: int, include_identity: bool = True) -> int:
    """Width of `posenc`/`annealed_posenc` output for `num_inputs` values and `num_bands` bands."""
    return num_inputs * 2 * num_bands + (num_inputs if include_identity else 0)


class GLOEmbed(nn.Module):
    """Per-frame latent codes (Generative Latent Optimisation), one learnt row per id.

    Attributes:
      num_embeddings: number of codes (training frames).
      features: dimension of each code.
      embedding_init: initializer of the (num_embeddings, features) table; small normal.
    """

    num_embeddings: int
    features: int
    embedding_init: Initializer = nn.initializers.normal(stddev=0.01)

    @nn.compact
    def __call__(self, ids: Array) -> Array:
        """Looks up codes: `ids: (...,)` or `(..., 1)` integers -> `(..., features)`.

        Out-of-range ids are not checked inside jit (XLA clamps gathers); validate ids
        when the data are loaded.
        """
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"GLOEmbed: found ids of dtype {ids.dtype}, expected integers")
        if ids.ndim > 0 and ids.shape[-1] == 1:
            ids = ids[..., 0]
        embed = nn.Embed(
            num_embeddings=self.num_embeddings,
            features=self.features,
            embedding_init=self.embedding_init,
            name="embed",
        )
        return embed(ids)


def broadcast_to_samples(per_ray: Array, num_samples: int) -> Array:
    """Repeats a per-ray vector for every sample of its ray: `(..., C)` -> `(..., S, C)`."""
    return jnp.broadcast_to(
        per_ray[..., None, :], (*per_ray.shape[:-1], num_samples, per_ray.shape[-1])
    )
