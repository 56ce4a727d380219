# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Recomputes tests/golden/lpips.json with the reference `lpips` package (PyTorch).

    python tests/golden/lpips_reference.py

Needs torch, torchvision and lpips==0.1.4 (not in the `test` extra: see the README), e.g. in a
separate venv: `pip install torch torchvision lpips==0.1.4 numpy`. The weights are
tests/lpips_util.py's random ones (seed 0, numpy's legacy RandomState, whose stream is fixed),
written with its torch-free writer and loaded by `torch.load`; the images are its
`image_pair(shape, seed)`. The reference is `lpips.LPIPS(net=NET, pretrained=False,
pnet_rand=True)` with its backbone slices and heads loaded from those files, called with
`normalize=True` on (N, 3, H, W) tensors. tests/evaluation/test_lpips.py compares flamenerf's
JAX LPIPS with these values (atol 1e-5) without torch.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import lpips_util  # noqa: E402

SEED = 0
CASES = [  # (net, shape, image seed)
    ("alex", (2, 64, 64, 3), 5),
    ("alex", (1, 40, 48, 3), 6),
    ("alex", (1, 31, 31, 3), 7),
    ("vgg", (1, 32, 32, 3), 8),
    ("vgg", (2, 20, 24, 3), 9),
]


def reference_model(net: str, folder: Path):
    """lpips.LPIPS with the backbone and heads of the weight files in `folder`."""
    import lpips
    import torch

    model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
    head_file, backbone_file = lpips_util.FILES[net]
    backbone = torch.load(folder / backbone_file, map_location="cpu")
    for stage in range(1, 6):
        part = getattr(model.net, f"slice{stage}")
        state = {k: backbone[f"features.{k}"] for k in part.state_dict()}
        part.load_state_dict(state)
    heads = torch.load(folder / head_file, map_location="cpu")
    missing, unexpected = model.load_state_dict(heads, strict=False)
    # `lins.L` are the same modules as `linL` (the file's names), which must all be loaded.
    assert not unexpected and not any(k.startswith("lin") and k[3].isdigit() for k in missing)
    return model


def main() -> None:
    import importlib.metadata

    import numpy as np
    import torch

    cases = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for net in ("alex", "vgg"):
            lpips_util.write_weights(folder, net, seed=SEED)
        models = {net: reference_model(net, folder) for net in ("alex", "vgg")}
        for net, shape, seed in CASES:
            pred, target = lpips_util.image_pair(shape, seed)
            with torch.no_grad():
                value = models[net](
                    torch.from_numpy(pred).permute(0, 3, 1, 2),
                    torch.from_numpy(target).permute(0, 3, 1, 2),
                    normalize=True,
                )
            values = [float(v) for v in np.asarray(value).reshape(-1)]
            cases.append({"net": net, "shape": list(shape), "seed": seed, "lpips": values})
    golden = {
        "about": "reference lpips values; written by tests/golden/lpips_reference.py",
        "lpips_version": importlib.metadata.version("lpips"),
        "torch_version": torch.__version__,
        "weights_seed": SEED,
        "cases": cases,
    }
    path = TESTS / "golden" / "lpips.json"
    lines = [json.dumps(case) for case in golden.pop("cases")]
    text = json.dumps(golden, indent=1)[:-2]  # without the closing brace
    text += ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
