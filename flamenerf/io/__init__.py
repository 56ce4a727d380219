# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Reading and writing files safely: the pieces every other package shares.

safe_pickle   the one safe unpickler (FLAME model files, tracker frames, torch state
              dicts): allow-lists, an opcode pre-scan against bombs, checked results
torch_files   torch.save files (zip archives and the legacy layout) read without torch
strict_json   JSON parsing that refuses NaN, duplicate keys and wrong types, naming the
              file and field
paths         local paths and URLs (gs://, s3://, az:// through etils.epath: `as_path`, and
              what object stores do differently) and the cache root (`FLAMENERF_CACHE`;
              default under the home folder)
media         PNG, GIF and MP4 writing (ffmpeg from Debian or the imageio-ffmpeg wheel)
"""
