# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.compilation_cache: where the command lines' persistent compilation cache goes.

Each case runs a tiny jitted function in fresh processes (JAX opens the cache once per
process), and reads what they did from the cache folder and JAX's monitoring events.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flamenerf import compilation_cache

# One process: enable the cache (caching every program, however fast it compiles), compile and
# run a small function, report the folder and the persistent-cache hits and misses.
SCRIPT = """
import json, sys
import jax, jax.numpy as jnp
from flamenerf import compilation_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
min_secs = None if sys.argv[1] == "default" else float(sys.argv[1])
folder = compilation_cache.enable(min_secs)
out = jax.jit(lambda x: jnp.sin(x) * 3.0 + jnp.cos(x))(jnp.arange(5.0)).block_until_ready()
print(json.dumps({
    "folder": None if folder is None else str(folder),
    "hits": events.count("/jax/compilation_cache/cache_hits"),
    "dir": jax.config.jax_compilation_cache_dir,
    "enabled": jax.config.jax_enable_compilation_cache,
    "min_secs": jax.config.jax_persistent_cache_min_compile_time_secs,
}))
"""


def run(env: dict[str, str], min_secs: str = "0") -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, min_secs],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def entries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def env(tmp_path):
    """The environment of a process outside the test suite's own cache settings."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in (compilation_cache.ENV, "JAX_COMPILATION_CACHE_DIR")
        and not k.startswith("JAX_PERSISTENT_CACHE")
    }
    clean["FLAMENERF_CACHE"] = str(tmp_path / "root")
    return clean


def test_second_process_reads_what_the_first_wrote(env, tmp_path):
    folder = tmp_path / "jax_cache"
    env[compilation_cache.ENV] = str(folder)
    first = run(env)
    assert first["folder"] == str(folder) and first["dir"] == str(folder)
    assert first["hits"] == 0
    written = entries(folder)
    assert written, "the first process wrote no cache entry"
    second = run(env)
    assert second["hits"] >= 1
    assert sorted(entries(folder)) == sorted(written)  # read, nothing new to write


def test_default_folder_is_under_the_cache_root(env, tmp_path):
    report = run(env)
    assert report["folder"] == str(tmp_path / "root" / "jax")
    assert entries(tmp_path / "root" / "jax")


def test_default_threshold_caches_programs_compiling_in_a_tenth_of_a_second(env):
    report = run(env, "default")
    assert report["min_secs"] == compilation_cache.MIN_COMPILE_SECS
    assert compilation_cache.MIN_COMPILE_SECS <= 0.1 < 1.0  # JAX's own default is 1 s


def test_off_turns_the_cache_off_whatever_jax_was_told(env, tmp_path):
    jax_folder = tmp_path / "jax_env"
    env[compilation_cache.ENV] = "off"
    env["JAX_COMPILATION_CACHE_DIR"] = str(jax_folder)
    report = run(env)
    assert report["folder"] is None and report["enabled"] is False
    assert report["hits"] == 0
    assert not entries(jax_folder)
    assert not entries(tmp_path / "root")


def test_jax_own_setting_is_kept(env, tmp_path):
    # What tests/conftest.py does for the whole test run (and its subprocesses).
    jax_folder = tmp_path / "jax_env"
    env["JAX_COMPILATION_CACHE_DIR"] = str(jax_folder)
    report = run(env)
    assert report["folder"] == str(jax_folder)
    assert entries(jax_folder)
    assert not entries(tmp_path / "root")


def test_unusable_folder_warns_and_runs_uncached(env, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    env[compilation_cache.ENV] = str(blocker / "jax")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "0"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["folder"] is None
    assert "cannot create the compilation cache folder" in result.stderr
    assert compilation_cache.ENV in result.stderr


class _Enabled(Exception):
    """Raised by the stand-in `enable`: the command stops there."""


@pytest.mark.parametrize(
    "command, argv",
    [
        ("train", ["--base_folder", "EXP"]),
        ("eval", ["--base_folder", "EXP"]),
        ("render", ["path", "--base_folder", "EXP"]),
        ("export.__main__", ["--base_folder", "EXP", "--out", "OUT"]),
    ],
)
def test_the_command_lines_enable_it_first(command, argv, monkeypatch):
    import importlib

    def enabled(*args, **kwargs):
        raise _Enabled

    monkeypatch.setattr(compilation_cache, "enable", enabled)
    module = importlib.import_module(f"flamenerf.{command}")
    with pytest.raises(_Enabled):  # before the experiment folder is even looked at
        module.main(argv)
