"""Shared fixtures: offline, quiet, records in a temporary directory."""
import logging
import os

import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A fresh cache per test session, so the GGUF-to-safetensors conversion is tested every time
# (a machine that already has the cache would otherwise hide a broken first use). ~25 s.
_OWN_CACHE = "WANDA_CACHE" not in os.environ
os.environ.setdefault("WANDA_CACHE", tempfile.mkdtemp(prefix="wanda-cache-"))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch

import wanda_core  # noqa: F401  (sets the offline switches before any HF import)

torch.set_num_threads(min(2, torch.get_num_threads()))
logging.getLogger("transformers").setLevel(logging.ERROR)


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def tiny_llama():
    from wanda_core.models.loaders import load_model

    return load_model("tiny-llama")


@pytest.fixture(scope="session", autouse=True)
def _remove_own_cache():
    yield
    if _OWN_CACHE:  # ~0.5 GB of converted weights
        import shutil

        shutil.rmtree(os.environ["WANDA_CACHE"], ignore_errors=True)
