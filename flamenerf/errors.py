# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The one exception for bad user input, and the exit codes every command line uses.

`UserError` is raised for anything the user can fix: a malformed capture or FLAME file, a
refused pickle, a misspelt configuration value, a missing checkpoint. Its message names the
file, the field, what was found and what was expected. The specialised errors of the readers
(`datasets.capture.CaptureError`, `capture.io.StepError`, `io.safe_pickle.PickleRefused`,
`io.strict_json.DuplicateKey`) are subclasses, so `except UserError` catches them all; it is a
`ValueError`, so code written against plain `ValueError` keeps working.

Exit codes of every `python -m flamenerf...` command:
"""

EXIT_OK = 0  # done
EXIT_CHECK_FAILED = 1  # a checking command (validate, capture check) ran and found problems
EXIT_USER_ERROR = 2  # bad arguments or bad input: one line on stderr, no traceback
EXIT_NONFINITE = 3  # training produced non-finite parameters; no checkpoint was written


class UserError(ValueError):
    """A problem with the user's input: printed as one message, without a traceback."""
