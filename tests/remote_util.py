# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""A Google Cloud Storage server on this machine, for tests of gs:// folders.

`gcs_server` (a session fixture) runs gcp-storage-emulator, in memory, on a free loopback
port in a thread, and points at it both clients flamenerf reaches gs:// with: gcsfs (fsspec,
behind etils.epath: every file flamenerf reads and writes itself) through
`STORAGE_EMULATOR_HOST`, and TensorStore (behind Orbax: the checkpoints' arrays) through
`TENSORSTORE_GCS_HTTP_URL` with a test token. One server per session: gcsfs, epath and
TensorStore keep their clients (and so the address) once made. `gcs_bucket` makes a fresh
bucket per test. `GcsServer.fs` is a gcsfs file system of its own (no listings cache: it sees
what the code under test wrote since), for checking the bucket independently of that code.

The emulator's object downloads are given the `x-goog-generation` header a real server sends
(`_with_generation_headers`): TensorStore takes the object's generation from it, and without
it OCDBT's conditional manifest writes fail now and then ("Malformed StorageGeneration").
gcsfs's newer "bucket type" probe (zonal and hierarchical buckets, over gRPC, which the
emulator does not serve: a 60 s timeout per bucket) is off (`GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`),
and gs:// is mapped to gcsfs's core file system in case gcsfs was imported before.
"""

import dataclasses
import itertools
import logging
import os
import socket

import pytest

_BUCKETS = itertools.count()


@dataclasses.dataclass
class GcsServer:
    url: str  # http://127.0.0.1:PORT
    fs: object  # a gcsfs.GCSFileSystem of the server, for checks


def _with_generation_headers(download):
    """The emulator's download handler, adding the generation headers GCS sends."""

    def handler(request, response, storage, *args, **kwargs):
        try:
            found = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except Exception:  # not found: the handler answers 404 itself
            found = None
        if found is not None:
            response["x-goog-generation"] = str(found["generation"])
            response["x-goog-metageneration"] = str(found.get("metageneration", "1"))
        return download(request, response, storage, *args, **kwargs)

    return handler


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_server():
    from gcp_storage_emulator.handlers import objects
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", url)
        patch.setenv("TENSORSTORE_GCS_HTTP_URL", url)
        patch.setenv("GOOGLE_AUTH_TOKEN_FOR_TESTING", "test")
        patch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        # `objects.get` (the JSON API's ?alt=media) calls the module's `download`.
        patch.setattr(objects, "download", _with_generation_headers(objects.download))
        import fsspec
        import gcsfs.core

        for name in ("gs", "gcs"):
            fsspec.register_implementation(name, gcsfs.core.GCSFileSystem, clobber=True)
        fs = gcsfs.core.GCSFileSystem(
            token="anon", endpoint_url=url, skip_instance_cache=True, use_listings_cache=False
        )
        try:
            yield GcsServer(url, fs)
        finally:
            server.stop()


@pytest.fixture
def gcs_bucket(gcs_server):
    """A new empty bucket on the session's server: its name (gs://NAME is the URL)."""
    name = f"bucket-{os.getpid()}-{next(_BUCKETS)}"
    gcs_server.fs.mkdir(name)
    return name
