# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training: the experiment folder, the losses and the data-parallel train step.

    experiment   `Experiment`: an experiment folder (config.gin, checkpoints, metrics.jsonl,
                 TensorBoard), its capture, guide grids and validation; `Experiment.restore`
                 opens a trained one for evaluation and rendering
    losses       the loss terms and their registry (add a loss term here, with its weight
                 in `LossConfig`)
    step         the train state, the optimiser and the one jitted, mesh-sharded train step
    progress     `CompletedSteps`: the progress bar, rays/s and ETA from completed steps

The schedules (learning rate, annealing, loss weights) are part of the configuration
language and live beside it, in `flamenerf/schedules.py`.

`python -m flamenerf.train` is the command line over this package.
"""
