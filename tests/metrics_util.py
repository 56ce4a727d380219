# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""A small metrics.jsonl as training writes it (train and validation records, a blank line),
shared by the figure tests and the plots command's tests."""

import json


def write_metrics(path):
    records = [
        {"step": 10, "wall_s": 1.0, "split": "train", "loss": 0.2, "psnr": 12.0, "mse_fine": 0.1},
        {"step": 20, "wall_s": 2.0, "split": "train", "loss": 0.1, "psnr": 14.0, "mse_fine": 0.05},
        {"step": 20, "wall_s": 2.5, "split": "val", "psnr": 13.0, "psnr_face": 15.0},
        {"step": 30, "wall_s": 3.0, "split": "train", "loss": 0.05, "psnr": 16.0, "lr": 1e-3},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
