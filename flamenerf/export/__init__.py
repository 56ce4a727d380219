# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Exporting a trained experiment as an avatar asset: glTF 2.0 and a browser viewer.

    bake        the bake's options and its stages in order: the canonical field (no learned
                warp, no guide: the template at rest) into a vertex-coloured triangle mesh,
                each finished stage kept for a resumed run; the stages:
    field       the canonical field that is baked (`CanonicalField`)
    scene_box   the box of the surfaces the training cameras see
    grids       rectilinear grids: finer slabs, resumable sampling, trilinear reads
    carving     depth maps of the density grid from chosen cameras, and the carved depth
    meshing     marching cubes on a rectilinear grid, small components dropped, the
                surface grown along its normals
    colouring   vertex colours rendered from the best camera
    backdrop    the room beyond the body as one smooth height field
    rig         the FLAME rig of that mesh through the FLAME guide's relation, run backwards
                (expression morph targets, neck and jaw skin weights), the skeleton and the
                contract's pose maths (shared by the preview and the animations)
    refine      vertex colours fitted to the NeRF's renders of training frames (least
                squares over the asset's supersampled renders)
    gltf        the `Asset` and its glb form (`write_glb`, `read_glb`, which checks it)
    preview     the Python render of an asset, as the browser viewer draws it (with its
                k x k supersampling)
    animation   driving sequences of FLAME parameter files as glTF animations
    pipeline    bake, rig, assemble, fit the colours (the NeRF's renders of training
                frames) and write DIR/avatar.glb, index.html, export.json
    page        the self-contained viewer page (three.js bundled from npm at build time;
                `viewer/` holds its sources and bundle)

`python -m flamenerf.export` (`__main__`) is the command line over these; docs/export.md
describes the asset, the rig's relation to the guide and the measured fidelity.
"""
