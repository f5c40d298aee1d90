"""Shared fixtures: tiny models saved to disk, and the shared real data (skips or fails clearly)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny import build_tokenizer, save_tiny_model  # noqa: E402


def data_dir() -> Path | None:
    d = os.environ.get("RMKIT_DATA_DIR")
    if d is None:
        guess = Path(__file__).resolve().parents[1].parent / "shared" / "data"
        d = str(guess) if guess.exists() else None
    return Path(d) if d and Path(d).exists() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; missing data skips, or fails when RMKIT_REQUIRE_DATA=1 (CI)."""
    d = data_dir()
    if d is None:
        msg = "real data not found: set RMKIT_DATA_DIR to the shared data folder (../shared/data)"
        if os.environ.get("RMKIT_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", template="llama3")


@pytest.fixture(scope="session")
def tiny_gemma2(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-gemma2"), "gemma2", template="gemma")


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-qwen3"), "qwen3",
                           tok=build_tokenizer("chatml", add_bos=False))


def needs(module: str, extra: str):
    """Import an optional extra's module for a test; missing, the test skips naming the extra, or fails
    when RMKIT_REQUIRE_DATA=1 (CI: `make test` installs every extra, so nothing may skip there)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = f"{module} is not installed (pip install 'rmkit[{extra}]'): {e}"
        if os.environ.get("RMKIT_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


# vLLM's CPU attention takes head sizes 32, 64, 80, ... (not the 16 of the tiny models above)
VLLM_TINY = dict(num_attention_heads=2, num_key_value_heads=1, head_dim=32)


@pytest.fixture(scope="session")
def tiny_llama_vllm(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama-vllm"), "llama", template="llama3", **VLLM_TINY)
