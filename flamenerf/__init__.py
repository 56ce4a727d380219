# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf: FLAME-in-NeRF in JAX/Flax, in the style of Nerfies."""

__version__ = "0.1.0"
