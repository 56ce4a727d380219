# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The earlier name of `python -m flamenerf.synthetic`, kept so that old commands still run."""

import sys

from flamenerf.synthetic.generator import main

if __name__ == "__main__":
    sys.exit(main())
