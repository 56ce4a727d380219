# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The Blender side of tests/export/test_blender.py: `python tests/blender_util.py GLB OUT FPS`.

Runs in its own process: `bpy` (Blender as a Python module, the PyPI wheel) loads Blender's own
libraries, kept out of the test process (JAX, TensorFlow Datasets). Imports GLB with Blender's
glTF importer (`bpy.ops.import_scene.gltf`) into an empty scene whose frame rate is FPS (so
that key frame k lands on frame k), reads back what a user gets, with Blender's own data, and
widens the shape keys' slider ranges (below), and writes:

  OUT/blender.json   names: objects, bones (with parents), vertex groups, shape keys,
                     actions (frame range, key frame counts per F-curve and data path)
  OUT/blender.npz    arrays in glTF's axes (Blender's Z-up turned back: x, z, -y):
                     positions (V, 3) the head mesh's vertices as imported; keys (E, V, 3)
                     each shape key's positions; moved (E, V, 3) the evaluated mesh (modifiers
                     applied, armature at rest) with shape key e at 1 minus with all at 0;
                     weights (V, J) each vertex group's weight (root, neck, jaw order of
                     `groups` in the json); bone_heads (B, 3) in armature space; frames (K,
                     V, 3) the evaluated head mesh at each key frame of the first action
  OUT/blender.glb    Blender's export (`bpy.ops.export_scene.gltf`) of the imported avatar,
                     after the steps a user takes to keep the layout: the importer's empty
                     "head" node (left behind when it moves an animated skinned mesh under
                     its armature) removed, the mesh object renamed "head", the scene named
                     "avatar"; no normals or texture coordinates (the avatar is unlit).
"""

import json
import sys
from pathlib import Path

import numpy as np


def to_gltf(points) -> np.ndarray:
    """(N, 3) Blender's Z-up coordinates -> glTF's Y-up (the importer's conversion undone)."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    return np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def mesh_positions(mesh) -> np.ndarray:
    flat = np.zeros(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", flat)
    return to_gltf(flat)


def evaluated(bpy, obj) -> np.ndarray:
    """(V, 3) the object's evaluated mesh (shape keys and modifiers applied), glTF axes."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    owner = obj.evaluated_get(depsgraph)
    mesh = owner.to_mesh()
    try:
        return mesh_positions(mesh)
    finally:
        owner.to_mesh_clear()


def fcurves(action):
    """[(data path, array index, keyframe count)] of an action (layered actions' channel
    bags when Blender has them, the legacy list otherwise)."""
    out = []
    if hasattr(action, "layers") and len(action.layers):
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    out += [
                        (c.data_path, c.array_index, len(c.keyframe_points)) for c in bag.fcurves
                    ]
    else:
        out = [(c.data_path, c.array_index, len(c.keyframe_points)) for c in action.fcurves]
    return out


def main(glb: str, out: str, fps: float) -> None:
    import bpy

    out = Path(out)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(round(fps)), 1.0
    result = bpy.ops.import_scene.gltf(filepath=glb)
    assert result == {"FINISHED"}, result
    objects = list(scene.objects)
    armature = next(o for o in objects if o.type == "ARMATURE")
    head = next(
        o for o in objects if o.type == "MESH" and any(m.type == "ARMATURE" for m in o.modifiers)
    )
    room = next((o for o in objects if o.type == "MESH" and o.name == "room"), None)
    mesh = head.data
    positions = mesh_positions(mesh)
    blocks = list(mesh.shape_keys.key_blocks) if mesh.shape_keys else []
    # Blender clamps a shape key's value to its slider range, [0, 1] unless widened, and its
    # glTF importer widens it from the first key frame only (KhronosGroup/glTF-Blender-IO
    # #1364): FLAME coefficients are signed and exceed 1. A user widens it (Shape Keys panel,
    # Range Min/Max) to Blender's limits.
    for block in blocks[1:]:
        block.slider_min, block.slider_max = -10.0, 10.0
    keys = [mesh_positions_of(block) for block in blocks[1:]]
    groups = [g.name for g in head.vertex_groups]
    weights = np.zeros((len(mesh.vertices), len(groups)))
    for v in mesh.vertices:
        for g in v.groups:
            weights[v.index, g.group] = g.weight
    bones = [(b.name, b.parent.name if b.parent else None) for b in armature.data.bones]
    heads = to_gltf([b.head_local for b in armature.data.bones])
    actions = {
        a.name: {"frame_range": list(a.frame_range), "fcurves": fcurves(a)}
        for a in bpy.data.actions
    }
    # Each shape key alone at 1, the armature at rest: what moving the slider does.
    armature.data.pose_position = "REST"
    saved = [b.value for b in blocks]
    for b in blocks[1:]:
        b.value = 0.0
    base = evaluated(bpy, head)
    moved = []
    for b in blocks[1:]:
        b.value = 1.0
        moved.append(evaluated(bpy, head) - base)
        b.value = 0.0
    for b, value in zip(blocks, saved, strict=True):
        b.value = value
    # The imported animation played: the evaluated mesh at each of its key frames.
    armature.data.pose_position = "POSE"
    frames = []
    if actions:
        first = min(a["frame_range"][0] for a in actions.values())
        last = max(a["frame_range"][1] for a in actions.values())
        for frame in range(int(round(first)), int(round(last)) + 1):
            scene.frame_set(frame)
            frames.append(evaluated(bpy, head))
    info = {
        "objects": [[o.name, o.type] for o in objects],
        "head_object": head.name,
        "room_vertices": None if room is None else len(room.data.vertices),
        "shape_keys": [b.name for b in blocks],
        "groups": groups,
        "bones": bones,
        "actions": actions,
        "fps": scene.render.fps,
        "version": bpy.app.version_string,
    }
    (out / "blender.json").write_text(json.dumps(info, indent=1))
    np.savez(
        out / "blender.npz",
        positions=positions,
        keys=np.array(keys).reshape(len(keys), len(positions), 3),
        moved=np.array(moved).reshape(len(moved), len(positions), 3),
        weights=weights,
        bone_heads=heads,
        frames=np.array(frames).reshape(len(frames), len(positions), 3),
    )
    # Export again, keeping the layout as a user would.
    scene.frame_set(0)
    for o in objects:
        if o.type == "EMPTY" and o.name == "head":
            bpy.data.objects.remove(o)
    head.name = "head"
    scene.name = "avatar"
    result = bpy.ops.export_scene.gltf(
        filepath=str(out / "blender.glb"),
        export_format="GLB",
        export_normals=False,
        export_texcoords=False,
        export_morph_normal=False,
        export_extras=True,  # the scene's custom property "flamenerf": the avatar's extras
        export_armature_object_remove=True,
        export_vertex_color="ACTIVE",
        export_optimize_animation_size=False,
    )
    assert result == {"FINISHED"}, result


def mesh_positions_of(block) -> np.ndarray:
    flat = np.zeros(len(block.data) * 3)
    block.data.foreach_get("co", flat)
    return to_gltf(flat)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
