# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.synthetic`: writes a synthetic capture (see `generator`)."""

import sys

from flamenerf.synthetic.generator import main

sys.exit(main())
