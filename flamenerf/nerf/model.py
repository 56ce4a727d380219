# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME-in-NeRF model.

For each ray: samples along it are warped into the canonical space by the frame's warp code
(Nerfies, annealed encoding); the canonical field gives density and colour from the encoded
point, the frame's FLAME **conditioning vector** (expression coefficients, optionally jaw
pose), the view direction and the frame's appearance code. The **spatial prior** of
FLAME-in-NeRF multiplies the conditioning vector by the ray's inside-FLAME-silhouette bit, so
rays outside the face see a zero expression. A coarse pass places the fine samples; the
coarse samples are spaced along each ray as `ModelConfig.spacing` says (linear in depth, in
disparity, or evenly in the field's contracted space: `volume.sample_along_rays`). The coarse
level is NeRF's coarse radiance field or, with `ModelConfig.sampler = "proposal"`, mip-NeRF
360's proposal: density only, trained by the interlevel loss alone (training/losses.py).

Ablations are configuration switches: `ExpressionConfig.where = "none"` is Nerfies,
`spatial_prior = "none"` drops the prior, `WarpConfig.warp_type = "none"` is a static NeRF.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flamenerf.configs import ExpressionConfig, FieldConfig, ModelConfig, WarpConfig
from flamenerf.datasets.rays import RayBatch
from flamenerf.nerf import compaction, grid, guide, warping
from flamenerf.nerf import layers as modules
from flamenerf.nerf import volume as rendering

Array = jax.Array
SPREAD_FLOOR = 1e-6  # components whose spread over the training frames is below: no noise


def _density(raw: Array, activation: str, bias: float) -> Array:
    raw = raw + bias
    return jax.nn.softplus(raw) if activation == "softplus" else jax.nn.relu(raw)


class RadianceField(nn.Module):
    """Density and colour of canonical points.

    Attributes:
      config: the field's configuration.
      condition_where: where the conditioning vector enters: "none", "trunk" (trunk input
        and skip layers), "skip" (skip layers only) or "color" (colour branch only).
      density_activation, density_bias: sigma = activation(raw + bias).
      density_only: a proposal field: density only, its colour branch never built nor
        evaluated (rgb is None).
    """

    config: FieldConfig
    condition_where: str = "none"
    density_activation: str = "softplus"
    density_bias: float = -1.0
    density_only: bool = False

    @nn.compact
    def __call__(
        self,
        points: Array,
        viewdirs: Array,
        appearance: Array | None,
        condition: Array | None,
        shading: Array | None = None,
        with_rgb: bool = True,
    ) -> tuple[Array | None, Array]:
        """Evaluates the field.

        Args:
          points: (N, S, 3) canonical points.
          viewdirs: (N, 3) unit view directions.
          appearance: (N, A) appearance codes, or None.
          condition: (N, C) per ray or (N, S, C) per point conditioning, or None.
          shading: (N, S, K) per point inputs of the colour branch only (the head's rotation,
            `ModelConfig.pose_shading`), or None: they enter through a linear layer of their
            own (no bias, zero at initialisation) added to the branch's first layer.
          with_rgb: False skips the colour branch in this call (its parameters, when built,
            are untouched): rgb is None.

        Returns:
          rgb (N, S, 3) in [0, 1] (None if `density_only` or not `with_rgb`) and sigma
          (N, S) >= 0.
        """
        cfg = self.config
        num_samples = points.shape[1]
        if cfg.field_type == "mlp":
            encoded = modules.posenc(points, 0, cfg.point_freqs, include_identity=True)
        else:
            x = grid.contract(points) if cfg.contract else points
            encoded = grid.TriPlaneEncoding(
                resolutions=cfg.triplane_resolutions,
                features=cfg.triplane_features,
                name="triplane",
            )(x)
        cond = None
        if condition is not None and self.condition_where != "none":
            cond = (
                condition
                if condition.ndim == 3
                else modules.broadcast_to_samples(condition, num_samples)
            )
        with_cond = lambda h, where: (
            jnp.concatenate([h, cond], -1)
            if (cond is not None and self.condition_where in where)
            else h
        )

        h = with_cond(encoded, ("trunk",))
        for i in range(cfg.depth):
            if i in cfg.skips:
                h = with_cond(jnp.concatenate([h, encoded], -1), ("trunk", "skip"))
            h = nn.relu(nn.Dense(cfg.width, name=f"trunk_{i}")(h))
        sigma = _density(
            nn.Dense(1, name="sigma")(h)[..., 0], self.density_activation, self.density_bias
        )
        if self.density_only or not with_rgb:
            return None, sigma
        bottleneck_width = cfg.width if cfg.field_type == "mlp" else cfg.geometry_features
        h = nn.Dense(bottleneck_width, name="bottleneck")(h)
        branch = [h]
        if cfg.viewdir_freqs > 0:
            view = modules.posenc(viewdirs, 0, cfg.viewdir_freqs, include_identity=True)
            branch.append(modules.broadcast_to_samples(view, num_samples))
        if appearance is not None:
            branch.append(modules.broadcast_to_samples(appearance, num_samples))
        h = with_cond(jnp.concatenate(branch, -1), ("color",))
        names = [f"rgb_{i}" for i in range(cfg.rgb_depth)] + ["rgb"]
        widths = [cfg.rgb_width] * cfg.rgb_depth + [3]
        for i, (name, width) in enumerate(zip(names, widths, strict=True)):
            h = nn.Dense(width, name=name)(h)
            if i == 0 and shading is not None:
                # Its own layer added to the colour branch's first, zero at the start: the
                # other layers' initial values are those of a field without it, and a head at
                # rest (or `shading` None, as `export` bakes) gives that field's colour exactly.
                h = h + nn.Dense(
                    width, use_bias=False, kernel_init=nn.initializers.zeros, name="pose_shading"
                )(shading)
            if i < len(names) - 1:
                h = nn.relu(h)
        rgb = nn.sigmoid(h)
        return rgb, sigma


def region_weight(points: Array, lower: Array, upper: Array, fade: float) -> Array:
    """1 inside the box [lower, upper], falling smoothly (smoothstep) to 0 at `fade` outside.

    Args:
      points: (..., 3); lower, upper: (3,) box corners; fade: > 0, same units.

    Returns:
      (...,) weights in [0, 1], with a continuous gradient.
    """
    q = jnp.maximum(jnp.asarray(lower) - points, points - jnp.asarray(upper))
    d2 = jnp.sum(jnp.maximum(q, 0.0) ** 2, axis=-1)
    positive = d2 > 0
    distance = jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)
    t = jnp.clip(distance / fade, 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def confine(points: Array, warped: Array, weight: Array) -> Array:
    """The warp faded by `weight`: points + weight * (warped - points); (..., 3)."""
    return points + weight[..., None] * (warped - points)


class FlameNerf(nn.Module):
    """FLAME-in-NeRF: warp field + expression-conditioned canonical NeRF.

    Attributes:
      model: sampling, codes and fields.
      warp: the warp field.
      expression: the conditioning and its spatial prior.
      num_codes: number of per-frame latent codes (training frames).
      condition_dim: size of the conditioning vector in the rays.
      near, far: ray bounds in normalised units.
      use_guide: move samples with the FLAME-guided prior (`guide.GuideGrids` input).
      mesh_radius: ("mesh" spatial prior) radius around the FLAME mesh, normalised units.
      warp_region: ((3,), (3,)) lower and upper corner of the box where the learned warp
        acts fully (in the space the warp sees), or None for everywhere.
      warp_fade: distance beyond the box over which the warp fades to the identity.
      condition_spread: (C,) each conditioning component's spread over the training frames
        (`condition_spread`), the noise's per-component scale with
        `ExpressionConfig.noise_scale = "spread"`; None otherwise.
    """

    model: ModelConfig
    warp: WarpConfig
    expression: ExpressionConfig
    num_codes: int
    condition_dim: int
    near: float
    far: float
    use_guide: bool = False
    mesh_radius: float = 0.0
    warp_region: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    warp_fade: float = 0.0
    condition_spread: tuple[float, ...] | None = None

    def setup(self):
        if self.warp.warp_type != warping.NO_WARP:
            self.warp_codes = modules.GLOEmbed(self.num_codes, self.warp.code_dim)
            self.warp_field = warping.make_warp_field(
                self.warp.warp_type,
                num_freqs=self.warp.num_freqs,
                depth=self.warp.depth,
                width=self.warp.width,
                skips=self.warp.skips,
            )
        if self.model.appearance_dim > 0:
            self.appearance_codes = modules.GLOEmbed(self.num_codes, self.model.appearance_dim)
            if self.model.appearance_mode == "color":
                zeros = nn.initializers.zeros
                self.color_transform = nn.Dense(
                    6, kernel_init=zeros, bias_init=zeros, name="color_transform"
                )
        if self.expression.where != "none" and self.expression.projection_dim > 0:
            self.projection = nn.Dense(self.expression.projection_dim, name="projection")
        self.fields = {
            level: RadianceField(
                config,
                self.expression.where,
                self.model.density_activation,
                self.model.density_bias,
                density_only=level == "coarse" and self.model.sampler == "proposal",
                name=f"{level}_field",
            )
            for level, config in (("coarse", self.model.coarse), ("fine", self.model.fine))
        }

    def warp_points(
        self, points: Array, warp_id: Array, alpha: Array, capacity: float = 0.0
    ) -> Array:
        """Warps points into the canonical space.

        Args:
          points: (N, ..., 3) observation-space points.
          warp_id: (N,) warp-code index of each row.
          alpha: scalar annealing parameter of the warp encoding.
          capacity: with a warp region and (N, S, 3) points, > 0 runs the warp's MLP on the
            samples in the region and its fade only, up to this share of each block's
            samples (nerf/compaction.py; the same result either way); 0: on every sample.

        Returns:
          (N, ..., 3) canonical points (the input when there is no warp).
        """
        if self.warp.warp_type == warping.NO_WARP:
            return points
        code = self.warp_codes(warp_id)
        code = jnp.broadcast_to(
            code.reshape(code.shape[:1] + (1,) * (points.ndim - 2) + code.shape[1:]),
            points.shape[:-1] + code.shape[-1:],
        )
        if self.warp_region is None:
            return self.warp_field(points, code, alpha)["warped_points"]
        weight = self._region_weight(points)
        if capacity == 0 or points.ndim != 3 or self.is_initializing():
            warped = self.warp_field(points, code, alpha)["warped_points"]
        else:  # the MLP on the samples in the region and its fade only (nerf/compaction.py)
            index, overflow = compaction.select(weight > 0, capacity)

            def everywhere(module, points, code, alpha, index):
                return module.warp_field(points, code, alpha)["warped_points"]

            def selected(module, points, code, alpha, index):
                gather = functools.partial(compaction.gather, index=index)
                moved = module.warp_field(gather(points), gather(code), alpha)["warped_points"]
                return compaction.scatter(points, index, moved)

            warped = nn.cond(overflow, everywhere, selected, self, points, code, alpha, index)
        return confine(points, warped, weight)

    def _region_weight(self, points: Array) -> Array:
        return region_weight(points, *self.warp_region, self.warp_fade)

    def warp_jacobian(self, points: Array, warp_id: Array, alpha: Array) -> Array:
        """(N, 3, 3) Jacobians of the (confined) warp at points (N, 3) (elastic loss)."""
        code = self.warp_codes(warp_id)
        out = self.warp_field(points, code, alpha, return_jacobian=True)
        if self.warp_region is None:
            return out["jacobian"]
        # d/dx [x + w (W - x)] = I + w (J_W - I) + (W - x) grad(w)^T.
        region = warping.with_jacobian(self._region_weight, points)
        weight, grad = region["warped_points"], region["jacobian"]  # (N,) and (N, 3)
        eye = jnp.eye(3, dtype=points.dtype)
        moved = out["warped_points"] - points
        return (
            eye
            + weight[..., None, None] * (out["jacobian"] - eye)
            + moved[..., :, None] * grad[..., None, :]
        )

    def condition(self, rays: RayBatch, randomized: bool) -> Array | None:
        """The conditioning vector each ray's field sees: (N, C') or None.

        Training noise and dropout (when configured) are applied before the spatial prior,
        so rays outside the silhouette always see exactly zero. The noise of component k has
        standard deviation `noise_std` ("absolute") or `noise_std * condition_spread[k]`
        ("spread"), the same draws either way.
        """
        cfg = self.expression
        if cfg.where == "none":
            return None
        cond = rays.condition
        if randomized and cfg.noise_std > 0:
            std = cfg.noise_std
            if cfg.noise_scale == "spread":
                std = cfg.noise_std * jnp.asarray(self.condition_spread, cond.dtype)
            cond = cond + std * jax.random.normal(self.make_rng("condition"), cond.shape)
        if randomized and cfg.dropout > 0:
            keep = jax.random.bernoulli(self.make_rng("condition"), 1 - cfg.dropout, cond.shape[:1])
            cond = cond * keep[:, None]
        if cfg.projection_dim > 0:
            cond = self.projection(cond)
        if cfg.spatial_prior == "silhouette":
            cond = cond * rays.inside[:, None]
        return cond

    def __call__(
        self,
        rays: RayBatch,
        warp_alpha: Array,
        randomized: bool,
        guide_grids: guide.GuideGrids | None = None,
        coarse_rgb: bool = True,
    ) -> dict[str, dict[str, Array]]:
        """Renders rays coarse then fine.

        Args:
          rays: the rays (their arrays, sharded or traced): origins (N, 3), directions (N, 3),
            frame (N,), warp_id (N,), appearance_id (N,), condition (N, C), inside (N,); rgb
            is not read.
          warp_alpha: scalar annealing parameter of the warp encoding.
          randomized: stratified jitter, density noise and conditioning noise (training).
          guide_grids: the frames' FLAME-guide grids (indexed by rays.frame); needed when
            `use_guide` or the "mesh" spatial prior is on.
          coarse_rgb: False renders the coarse level's weights only, as a proposal level's
            (its colour branch is skipped: the fine level's outputs are unchanged); for
            renders that read the fine level alone.

        Returns:
          {"coarse": ..., "fine": ...}, each with rgb (N, 3), depth (N,), acc (N,),
          weights (N, S), z_vals (N, S), the observation-space points (N, S, 3) and
          the points the learned warp sees (N, S, 3) (moved by the FLAME guide if on).
          A proposal level (`ModelConfig.sampler = "proposal"`: the coarse one) has no rgb,
          and only its field's parameters get gradients from its outputs (the warped points
          and the conditioning it reads are constants to it); nor has the coarse level when
          `coarse_rgb` is False.
        """
        pose_shading = self.model.pose_shading
        needs_grids = self.use_guide or self.expression.spatial_prior == "mesh"
        if needs_grids and guide_grids is None:
            raise ValueError("FlameNerf: this configuration needs guide_grids")
        if pose_shading and (not self.use_guide or guide_grids.rigid is None):
            raise ValueError(
                "ModelConfig.pose_shading = True needs the FLAME guide's rigid part "
                "(GuideConfig.enabled = True, GuideConfig.undo_rigid = True)"
            )
        origins, directions = rays.origins, rays.directions
        viewdirs = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
        appearance = (
            self.appearance_codes(rays.appearance_id) if self.model.appearance_dim > 0 else None
        )
        field_appearance = appearance if self.model.appearance_mode == "field" else None
        condition = self.condition(rays, randomized)
        key = lambda: self.make_rng("sampling") if randomized else jax.random.PRNGKey(0)

        z_vals, points = rendering.sample_along_rays(
            key(),
            origins,
            directions,
            self.model.num_coarse_samples,
            self.near,
            self.far,
            randomized,
            self.model.spacing,
        )
        outputs = {}
        for level in ("coarse", "fine"):
            if level == "fine":
                z_vals, points = rendering.resample_along_rays(
                    key(),
                    origins,
                    directions,
                    z_vals,
                    outputs["coarse"]["weights"],
                    self.model.num_fine_samples,
                    randomized,
                    include_input=self.model.fine_includes_coarse,
                )
            canonical, level_condition = points, condition
            if needs_grids:
                guided, distance = guide.apply(guide_grids, rays.frame, points)
                if self.use_guide:
                    canonical = guided
                if level_condition is not None and self.expression.spatial_prior == "mesh":
                    near_mesh = (distance < self.mesh_radius).astype(points.dtype)
                    level_condition = condition[:, None, :] * near_mesh[..., None]
            warp_inputs = canonical
            capacity = getattr(self.warp, f"{level}_capacity")
            proposal = self.fields[level].density_only
            if not proposal or self.model.proposal_warp:
                canonical = self.warp_points(canonical, rays.warp_id, warp_alpha, capacity)
            weights_only = proposal or (level == "coarse" and not coarse_rgb)
            if proposal:  # trained by the interlevel loss alone: not the warp, codes, projection
                canonical = jax.lax.stop_gradient(canonical)
                if level_condition is not None:
                    level_condition = jax.lax.stop_gradient(level_condition)
            shading = (
                guide.head_rotation_feature(guide_grids, rays.frame, points)
                if pose_shading and not weights_only
                else None
            )
            rgb, sigma = self.fields[level](
                canonical, viewdirs, field_appearance, level_condition, shading, not weights_only
            )
            if randomized and self.model.noise_std > 0:
                noise = jax.random.normal(self.make_rng("sampling"), sigma.shape)
                sigma = jax.nn.relu(sigma + self.model.noise_std * noise)
            if weights_only:
                outputs[level] = dict(
                    rendering.density_rendering(sigma, z_vals, directions),
                    z_vals=z_vals,
                    points=points,
                    warp_inputs=warp_inputs,
                )
                continue
            result = rendering.volumetric_rendering(rgb, sigma, z_vals, directions)
            if appearance is not None and field_appearance is None:
                result["rgb"] = color_correct(
                    result["rgb"], result["acc"], self.color_transform(appearance)
                )
            outputs[level] = dict(result, z_vals=z_vals, points=points, warp_inputs=warp_inputs)
        return outputs


def color_correct(rgb: Array, acc: Array, gain_bias: Array) -> Array:
    """A per-ray affine colour change: exposure and white balance, nothing view-dependent.

    Volume rendering is linear in colour, so applying `c -> c * (1 + g) + b` to every sample
    equals applying it to the composited colour with the bias scaled by the opacity.

    Args:
      rgb: (N, 3) composited colours; acc: (N,) opacities.
      gain_bias: (N, 6) per-ray gain offsets g (3) and biases b (3); zeros are the identity.

    Returns:
      (N, 3) rgb * (1 + g) + b * acc.
    """
    gain, bias = gain_bias[..., :3], gain_bias[..., 3:]
    return rgb * (1.0 + gain) + bias * acc[..., None]


def condition_spread(conditions: np.ndarray) -> tuple[float, ...]:
    """Each conditioning component's spread over frames (`ExpressionConfig.noise_scale`).

    Args:
      conditions: (F, C) the training frames' conditioning vectors (`Capture.condition`).

    Returns:
      C floats: the standard deviation of each component over the F frames, 0 where it is
      below SPREAD_FLOOR. A component constant over the training frames (an expression
      coefficient the tracker never moved, a jaw axis never used) gets no noise rather than
      a tiny one: there is no variation to generalise over, and noise would be the only
      change the field ever saw on it.
    """
    conditions = np.asarray(conditions, np.float64)
    if conditions.ndim != 2 or len(conditions) == 0:
        raise ValueError(
            f"condition_spread: expected (F, C) conditioning vectors with F >= 1, "
            f"found shape {conditions.shape}"
        )
    spread = conditions.std(axis=0)
    return tuple(float(s) if s >= SPREAD_FLOOR else 0.0 for s in spread)


def make_model(
    model: ModelConfig,
    warp: WarpConfig,
    expression: ExpressionConfig,
    num_codes: int,
    condition_dim: int,
    near: float,
    far: float,
    use_guide: bool = False,
    mesh_radius: float = 0.0,
    warp_region: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    warp_fade: float = 0.0,
    condition_spread: tuple[float, ...] | None = None,
) -> FlameNerf:
    """Builds the model, checking the configuration's consistency.

    Args:
      condition_spread: (condition_dim,) the components' spread over the training frames
        (`condition_spread`); needed when the noise is on with `noise_scale = "spread"`.
    """
    if expression.where == "skip" and not (model.coarse.skips and model.fine.skips):
        raise ValueError("ExpressionConfig.where = 'skip' needs FieldConfig.skips in both fields")
    if model.num_fine_samples <= 0 or model.num_coarse_samples < 2:
        raise ValueError("ModelConfig: need num_coarse_samples >= 2 and num_fine_samples >= 1")
    if warp_region is not None and warp_fade <= 0:
        raise ValueError(f"make_model: warp_fade must be > 0 with a warp region, found {warp_fade}")
    noisy = expression.where != "none" and expression.noise_std > 0
    if noisy and expression.noise_scale == "spread" and condition_spread is None:
        raise ValueError(
            "ExpressionConfig.noise_scale = 'spread' needs the conditioning components' "
            "spread over the training frames (make_model's condition_spread)"
        )
    if condition_spread is not None:
        condition_spread = tuple(float(s) for s in condition_spread)
        if len(condition_spread) != condition_dim:
            raise ValueError(
                f"make_model: condition_spread has {len(condition_spread)} components, "
                f"expected condition_dim = {condition_dim}"
            )
    return FlameNerf(
        model,
        warp,
        expression,
        num_codes,
        condition_dim,
        near,
        far,
        use_guide,
        mesh_radius,
        warp_region,
        warp_fade,
        condition_spread,
    )


def dummy_grids(rigid: bool = False) -> guide.GuideGrids:
    """One empty frame of guide grids (for initialisation: shapes only), with a rigid part
    (the identity) when `rigid`."""
    grids = guide.GuideGrids(
        values=jnp.zeros((1, 2, 2, 2, 4), jnp.float16), lower=-jnp.ones(3), upper=jnp.ones(3)
    )
    if not rigid:
        return grids
    return grids.replace(
        rigid=jnp.eye(3, 4)[None],
        rotation=jnp.zeros((1, 3)),
        centre=jnp.zeros((1, 3)),
        radius=jnp.ones((1,)),
        fade=jnp.ones(()),
    )


def init_params(model: FlameNerf, key: Array) -> Any:
    """Initialises parameters with a two-ray dummy batch (shapes only matter)."""
    n = 2
    rays = RayBatch(
        origins=jnp.zeros((n, 3)),
        directions=jnp.ones((n, 3)) / jnp.sqrt(3.0),
        rgb=jnp.zeros((n, 3)),
        frame=jnp.zeros((n,), jnp.int32),
        warp_id=jnp.zeros((n,), jnp.int32),
        appearance_id=jnp.zeros((n,), jnp.int32),
        condition=jnp.zeros((n, model.condition_dim)),
        inside=jnp.ones((n,)),
    )
    keys = dict(zip(("params", "sampling", "condition"), jax.random.split(key, 3), strict=True))
    grids = (
        dummy_grids(rigid=model.model.pose_shading)
        if model.use_guide or model.expression.spatial_prior == "mesh"
        else None
    )
    return model.init(keys, rays, jnp.zeros(()), randomized=False, guide_grids=grids)["params"]
