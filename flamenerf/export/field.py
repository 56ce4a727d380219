# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The trained canonical field that the bake samples (`CanonicalField`).

The canonical field is the model's fine field in the canonical space: the template at rest,
with no learned per-frame warp and no FLAME guide (the guide maps posed points INTO this
space; the rig, `flamenerf.export.rig`, maps it back out). It sees one conditioning vector
(when the configuration conditions on one: zero, or what the bake chooses, in a region where
training fed it, `condition_region`) and one appearance code: the mean of the training
frames' codes ("mean", the default) or one frame's ("frame").

Three reads, each jitted and run in chunks of `POINT_CHUNK` field evaluations: `evaluate`
(colour and density at points, (N, 3) -> (N, 3), (N,)), `weights` (volume-rendering weights
of given ray samples, (N, S)) and `render` (the model's coarse-then-fine rendering along rays,
(N, 3) colour and (N,) opacity). Everything is in the model frame; colours are the field's
(sRGB-encoded, as the images it was trained on).

The bake's stages (`flamenerf.export.bake`: `scene_box`, the density grid, `colouring`,
`backdrop`) use these methods (and `density`) only: tests pass a duck-typed analytic field
instead (tests/export_util.py, `SoftSphere`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from flamenerf.nerf import volume

APPEARANCES = ("mean", "frame")
POINT_CHUNK = 1 << 16  # field evaluations per jitted call


def box_region(lower: np.ndarray, upper: np.ndarray) -> Callable[[jax.Array], jax.Array]:
    """A `condition_region`: (N, S, 3) points -> (N, S) inside the box [lower, upper] ((3,)
    each)."""
    lower_j = jnp.asarray(np.asarray(lower, np.float32).reshape(3))
    upper_j = jnp.asarray(np.asarray(upper, np.float32).reshape(3))
    return lambda points: jnp.all((points >= lower_j) & (points <= upper_j), axis=-1)


class CanonicalField:
    """The model's fine field in the canonical space, with one appearance code.

    Args:
      model: the `FlameNerf` module; params: its parameters.
      appearance: "mean" (the mean of every training frame's code) or "frame".
      frame: the appearance-code index used with "frame".
      chunk: points per jitted evaluation.
      condition: (C,) the conditioning vector the field sees (None: zeros, the neutral face).
      condition_region: where the conditioning applies, zero elsewhere (after the projection,
        as the model's spatial prior zeroes it): a jittable map of (N, S, 3) canonical points
        to (N, S) booleans (`box_region`; the export pipeline's `conditioning_region` follows
        the model's prior); None: everywhere.
    """

    def __init__(
        self,
        model: Any,
        params: Any,
        appearance: str = "mean",
        frame: int = 0,
        chunk: int = POINT_CHUNK,
        condition: np.ndarray | None = None,
        condition_region: Callable[[jax.Array], jax.Array] | None = None,
    ):
        if appearance not in APPEARANCES:
            raise ValueError(f"appearance: found {appearance!r}, expected one of {APPEARANCES}")
        self.params, self.chunk = params, chunk
        dim = model.model.appearance_dim
        mode = model.model.appearance_mode
        code = np.zeros((0,), np.float32)
        if dim > 0:
            table = np.asarray(params["appearance_codes"]["embed"]["embedding"], np.float32)
            code = table.mean(axis=0) if appearance == "mean" else table[frame]
        self.code = jnp.asarray(code)
        if condition is None:
            condition = np.zeros((model.condition_dim,), np.float32)
        condition = np.asarray(condition, np.float32)
        if condition.shape != (model.condition_dim,) or not np.all(np.isfinite(condition)):
            raise ValueError(
                f"condition: expected {model.condition_dim} finite values, found shape "
                f"{condition.shape}"
            )
        self.condition = jnp.asarray(condition)
        self.condition_region = condition_region
        conditioned = model.expression.where != "none"
        projected = model.expression.projection_dim > 0

        def field(module, points, viewdirs, codes, cond):
            if cond is not None and projected:
                cond = module.projection(cond)
            if cond is not None and condition_region is not None:
                inside = condition_region(points)  # (N, S): zero outside, after the projection
                cond = cond[:, None, :] * inside[..., None].astype(cond.dtype)
            rgb, sigma = module.fields["fine"](
                points, viewdirs, codes if mode == "field" else None, cond
            )
            if codes is not None and mode == "color":
                gain_bias = module.color_transform(codes)[:, None, :]
                rgb = rgb * (1.0 + gain_bias[..., :3]) + gain_bias[..., 3:]
            return rgb, sigma

        def evaluate(params, points, viewdirs, code, condition):
            # points (N, S, 3), viewdirs (N, 3) -> rgb (N, S, 3) colour-corrected, sigma (N, S)
            n = points.shape[0]
            codes = jnp.broadcast_to(code, (n,) + code.shape) if dim > 0 else None
            cond = jnp.broadcast_to(condition, (n,) + condition.shape) if conditioned else None
            return model.apply({"params": params}, points, viewdirs, codes, cond, method=field)

        def render(
            params, origins, directions, near, far, code, condition, lower, upper, coarse, fine
        ):
            key = jax.random.PRNGKey(0)

            def shade(points):
                rgb, sigma = evaluate(params, points, directions, code, condition)
                excluded = jnp.all((points >= lower) & (points <= upper), axis=-1)
                return rgb, jnp.where(excluded, 0.0, sigma)

            z, points = volume.sample_along_rays(
                key, origins, directions, coarse, near, far, False, spacing="disparity"
            )
            rgb, sigma = shade(points)
            weights = volume.volumetric_rendering(rgb, sigma, z, directions)["weights"]
            z, points = volume.resample_along_rays(
                key, origins, directions, z, weights, fine, False, True
            )
            rgb, sigma = shade(points)
            out = volume.volumetric_rendering(rgb, sigma, z, directions)
            return out["rgb"], out["acc"]

        self._evaluate = jax.jit(evaluate)
        self._render = jax.jit(render, static_argnums=(9, 10))

        def composite(params, points, viewdirs, z_vals, code, condition):
            rgb, sigma = evaluate(params, points, viewdirs, code, condition)
            out = volume.volumetric_rendering(rgb, sigma, z_vals, viewdirs, last_delta=0.0)
            return out["weights"]

        self._composite = jax.jit(composite)

    def _parts(self, n: int, per_item: int, desc: str | None, show: bool) -> list[slice]:
        step = max(1, self.chunk // per_item)
        starts = tqdm(range(0, n, step), desc=desc, disable=not show or desc is None, leave=False)
        return [slice(s, min(s + step, n)) for s in starts]

    def evaluate(
        self, points: np.ndarray, viewdirs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Colour and density at points.

        Args:
          points: (N, 3); viewdirs: (N, 3) unit view directions (default +z).

        Returns:
          rgb (N, 3) (the field's colour, appearance applied) and sigma (N,), float32.
        """
        points = np.asarray(points, np.float32).reshape(-1, 3)
        if viewdirs is None:
            viewdirs = np.broadcast_to(np.float32([0, 0, 1]), points.shape)
        viewdirs = np.asarray(viewdirs, np.float32).reshape(-1, 3)
        rgb, sigma = [np.zeros((0, 3), np.float32)], [np.zeros((0,), np.float32)]
        for part in self._parts(len(points), 1, None, False):
            c, s = self._evaluate(
                self.params, points[part, None], viewdirs[part], self.code, self.condition
            )
            rgb.append(np.asarray(c)[:, 0])
            sigma.append(np.asarray(s)[:, 0])
        return np.concatenate(rgb), np.concatenate(sigma)

    def density(self, points: np.ndarray) -> np.ndarray:
        """(N,) float32 density at points (N, 3) (the view direction does not matter)."""
        return self.evaluate(points)[1]

    def weights(
        self,
        origins: np.ndarray,
        directions: np.ndarray,
        z_vals: np.ndarray,
        desc: str | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """(N, S) float32 volume-rendering weights of ray samples (the last one's interval is
        empty). origins, directions: (N, 3), directions unit; z_vals: (N, S) sorted."""
        origins = np.asarray(origins, np.float32)
        directions = np.asarray(directions, np.float32)
        z_vals = np.asarray(z_vals, np.float32)
        out = [np.zeros((0, z_vals.shape[1]), np.float32)]
        for part in self._parts(len(origins), z_vals.shape[1], desc, show_progress):
            points = origins[part, None] + z_vals[part, :, None] * directions[part, None]
            out.append(
                np.asarray(
                    self._composite(
                        self.params,
                        points,
                        directions[part],
                        z_vals[part],
                        self.code,
                        self.condition,
                    )
                )
            )
        return np.concatenate(out)

    def render(
        self,
        origins: np.ndarray,
        directions: np.ndarray,
        near: float,
        far: float | np.ndarray,
        samples: int = 64,
        desc: str | None = None,
        show_progress: bool = False,
        exclude: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The canonical field rendered along rays as the model renders: `samples` samples
        evenly in disparity from near to far, then `samples` more where those put their
        weight (both used).

        Args:
          origins, directions: (N, 3), directions unit.
          near: the rays' start; far: their end, one for all or (N,).
          exclude: a box (lower (3,), upper (3,)) whose density counts as zero.

        Returns:
          rgb (N, 3) (not divided by the opacity) and acc (N,), float32.
        """
        origins = np.asarray(origins, np.float32)
        directions = np.asarray(directions, np.float32)
        far = np.broadcast_to(np.asarray(far, np.float32), (len(origins),))
        if exclude is None:
            lower, upper = np.full(3, np.inf, np.float32), np.full(3, -np.inf, np.float32)
        else:
            lower, upper = (np.asarray(b, np.float32) for b in exclude)
        rgb, acc = [np.zeros((0, 3), np.float32)], [np.zeros((0,), np.float32)]
        for part in self._parts(len(origins), 2 * samples, desc, show_progress):
            c, a = self._render(
                self.params,
                origins[part],
                directions[part],
                np.float32(near),
                far[part],
                self.code,
                self.condition,
                lower,
                upper,
                samples,
                samples,
            )
            rgb.append(np.asarray(c))
            acc.append(np.asarray(a))
        return np.concatenate(rgb), np.concatenate(acc)
