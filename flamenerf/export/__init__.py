# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Exporting a trained experiment as an avatar asset: glTF 2.0 and a browser viewer.

    bake        the canonical field (no learned warp, no guide: the template at rest) into a
                vertex-coloured triangle mesh: density grid, carving by the training
                cameras' depth, marching cubes, vertex colours, the room as a backdrop
    rig         the FLAME rig of that mesh through the FLAME guide's relation, run backwards
                (expression morph targets, neck and jaw skin weights), the skeleton and the
                contract's pose maths (shared by the preview and the animations)
    gltf        the `Asset` and its glb form (`write_glb`, `read_glb`, which checks it)
    preview     the Python render of an asset, as the browser viewer draws it
    animation   driving sequences of FLAME parameter files as glTF animations
    pipeline    bake, rig, assemble and write DIR/avatar.glb, index.html, export.json
    page        the self-contained viewer page (three.js bundled from npm at build time;
                `viewer/` holds its sources and bundle)

`python -m flamenerf.export` (`__main__`) is the command line over these; docs/export.md
describes the asset, the rig's relation to the guide and the measured fidelity.
"""
