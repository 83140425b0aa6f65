"""Shared fixtures: offline, quiet, records in a temporary directory."""
import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
    from wanda_core.models import load_model

    return load_model("tiny-llama")
