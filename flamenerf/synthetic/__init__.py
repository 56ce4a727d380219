# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The procedural test world: a FLAME-format head, its textures and captures of it.

head        the procedural FLAME-format head (used whenever no FLAME model file is
            given), split along its construction: shape, features, eyes, mesh,
            skinning, bases, landmarks, the model file, pictures
textures    the materials of head, eyes, torso and room
generator   synthetic captures in the capture format (`python -m flamenerf.synthetic`):
            the demo capture, head motion, vrig validation cameras, other
            normalisations, expression-dependent appearance
"""
