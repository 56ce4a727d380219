# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Captures on disk: reading, validation, ray batches, packing and synthetic captures."""
