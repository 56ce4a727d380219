# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The NeRF core: pure Flax modules and the JAX math they use.

    layers    MLP, positional and coarse-to-fine (annealed) encodings, latent-code tables
    warping   the learned warp fields and their registry (add a warp type here)
    grid      tri-plane feature grids and the scene contraction
    guide     the FLAME guide: rigid head motion and expression residual as a deformation
    volume    sampling along rays, hierarchical resampling, volume rendering
    model     `FlameNerf`: guide -> warp -> canonical field (expression-conditioned) ->
              coarse and fine renders

Everything here is a pure function of parameters and arrays (shapes in the docstrings);
nothing reads files or configs other than the dataclasses it is given.
"""
