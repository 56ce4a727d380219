# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.synthetic.head --out head.npz [--plot head.png]` (see `cli`)."""

import sys

from flamenerf.synthetic.head.cli import main

if __name__ == "__main__":
    sys.exit(main())
