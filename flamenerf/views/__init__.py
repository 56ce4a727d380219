# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""TODO."""
