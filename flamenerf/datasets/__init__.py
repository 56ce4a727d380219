# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The capture format: reading it, checking it, and turning it into ray batches.

    capture    the capture folder as other tools write it (docs/capture-format.md): strict
               reading, the model frame (the scene re-expressed around the FLAME head)
    validate   `python -m flamenerf.datasets.validate`: every check training makes
    rays       `RayBatch`, frame sources and the prefetching batch iterator
    packing    the TFDS (array_record) pack of a capture in the cache folder

Writing captures lives with the tools that write them: `flamenerf.capture.io` (the phone
pipeline) and `flamenerf.synthetic.generator`. (`flamenerf.datasets.synthetic` is the
earlier name of `python -m flamenerf.synthetic`.)
"""
