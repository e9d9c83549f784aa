"""Shared fixtures: sample data, SentencePiece vocabularies, HF T5 checkpoints written by transformers."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Simulated devices, only for the distribution tests, which `make test` runs in a pytest process of their
# own with KERASTUNE_TEST_DEVICES=1 (every other test keeps the machine's one CPU device). Set before JAX or
# TensorFlow starts: JAX splits the host into 8 CPU devices, TensorFlow into 4 logical CPUs
# (MirroredStrategy compiles every replica's copy of a step, so fewer keep CI short).
SIMULATED_DEVICES = os.environ.get("KERASTUNE_TEST_DEVICES") == "1"
if SIMULATED_DEVICES:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 4
    )
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ lives beside the package
sys.path.insert(0, str(ROOT / "recipes" / "data"))
sys.path.insert(0, str(Path(__file__).parent))

# The Hugging Face Hub the tests see is tests/local_hub.py on 127.0.0.1, with a cache of their own. The
# port is reserved now, before anything imports huggingface_hub (which reads HF_ENDPOINT once); until a
# test starts the hub (the `local_hub` fixture) connections to it are refused, as with no network.
from helpers.local_hub import LocalHub, reserve_port  # noqa: E402

_HUB_SOCKET = reserve_port()
_CACHE = tempfile.mkdtemp(prefix="kerastune-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:%d" % _HUB_SOCKET.getsockname()[1]
os.environ["HF_HOME"] = os.path.join(_CACHE, "huggingface")
os.environ["KERASTUNE_CACHE"] = os.path.join(_CACHE, "kerastune")
for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def local_hub():
    with LocalHub(_HUB_SOCKET) as hub:
        yield hub



@pytest.fixture(scope="session")
def news_rows():
    from make_news_sample import make_rows

    return make_rows(400, seed=7)


@pytest.fixture(scope="session")
def spiece_proto(news_rows):
    from helpers.hf_checkpoints import PROMPT

    from kerastune.models.t5.tiny import train_sentencepiece

    return train_sentencepiece([PROMPT.format(text=r["text"]) for r in news_rows], vocab_size=500)


@pytest.fixture(scope="session")
def product_texts():
    from make_products_sample import make_rows

    return [r["product_description"] for r in make_rows(300, seed=5) if r["product_description"]]


@pytest.fixture(scope="session")
def hf_gpt2(request, product_texts):
    """(directory, transformers model) of a briefly trained tiny GPT-2."""
    from helpers.hf_checkpoints import trained_hf_gpt2

    return trained_hf_gpt2(request, product_texts, train_steps=120)


# Roughly the seconds each of the longest files takes in one pass of `make test` on a 2-core machine
# (pytest --durations=0, summed per file, with the trained reference checkpoints not yet cached).
# pytest-xdist hands out whole files in collection order (with --no-loadscope-reorder; by default it puts
# the files with the most tests first), so the longest go first: a long file started last runs alone at
# the end while the other worker idles.
LONGEST_FILES = {
    "tensorflow": {"test_kill_resume.py": 400, "test_kill_resume_detox.py": 230, "test_export.py": 200,
                   "test_precision.py": 170, "test_hub.py": 150, "test_bench.py": 130, "test_learning.py": 130,
                   "test_chat_sft.py": 120, "test_t5_parity.py": 110, "test_decoder_parity.py": 85,
                   "test_ppo.py": 80, "test_kill_resume_preference.py": 250, "test_grpo.py": 90,
                   "test_dpo.py": 75, "test_causal_ppo.py": 80, "test_reward_model.py": 40},
    "jax": {"test_chat_sft.py": 230, "test_learning.py": 135, "test_causal_lm.py": 125,
            "test_instruction_tuning.py": 100, "test_decoder_parity.py": 95, "test_memory_levers.py": 90,
            "test_seq2seq_qa.py": 80, "test_lora_ppo_detox.py": 75, "test_ppo.py": 75, "test_training.py": 70,
            "test_t5_parity.py": 60, "test_export.py": 60, "test_packing.py": 50, "test_grpo.py": 145,
            "test_reward_model.py": 70, "test_dpo.py": 150, "test_causal_ppo.py": 85},
}


def pytest_collection_modifyitems(config, items):
    """The longest files first (see LONGEST_FILES); the rest keep their order."""
    seconds = LONGEST_FILES.get(os.environ.get("KERAS_BACKEND", "tensorflow"), {})
    items.sort(key=lambda item: -seconds.get(item.path.name, 0))  # stable
