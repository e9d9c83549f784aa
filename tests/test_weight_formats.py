"""Every weight format hub repositories have loads without PyTorch, with transformers' logits.

transformers writes each model once (GPT-2, T5, DistilBERT, and Qwen2 for
the families keras-hub's own converters load); the tests rewrite its weights as
`pytorch_model.bin` (zip and legacy), sharded `.bin`, sharded safetensors and
bfloat16 / float16 safetensors; then one process where `import torch` fails
loads every directory with `kerastune.load_model` and saves its logits.
"""

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.hf_checkpoints import (
    copy_side_files,
    write_bin,
    write_hf_distilbert,
    write_hf_gpt2,
    write_hf_qwen2,
    write_hf_t5,
    write_safetensors,
)
from make_reviews_sample import make_rows as reviews

import kerastune
from kerastune.cli import main
from kerastune.errors import KerastuneError
from kerastune.weights import UnsafeCheckpointError, read_weights

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, product_texts, spiece_proto):
    """name -> (directory, torch model, inputs, atol): the same three models in every format."""
    root = tmp_path_factory.mktemp("formats")
    gpt2 = write_hf_gpt2(root / "gpt2", product_texts, seed=1)
    t5 = write_hf_t5(root / "t5", spiece_proto, seed=2)
    bert = write_hf_distilbert(root / "distilbert", [r["text"] for r in reviews(200, seed=3)])
    qwen = write_hf_qwen2(root / "qwen2", product_texts)  # a family loaded through keras-hub's own converter
    ids = np.random.RandomState(0).randint(1, 150, size=(2, 12))  # inside every vocabulary here
    gpt2_inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    t5_inputs = {"encoder_token_ids": ids, "encoder_padding_mask": np.ones_like(ids),
                 "decoder_token_ids": ids[:, :5], "decoder_padding_mask": np.ones_like(ids[:, :5])}
    bert_inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids),
                   "mask_positions": np.tile(np.arange(12), (2, 1))}
    cases = {
        "gpt2_bin_zip": (write_bin(gpt2, root / "gpt2", root / "gpt2_bin_zip"), gpt2, gpt2_inputs, 1e-4),
        "gpt2_bin_legacy": (write_bin(gpt2, root / "gpt2", root / "gpt2_bin_legacy", legacy=True), gpt2,
                            gpt2_inputs, 1e-4),
        "gpt2_bin_sharded": (write_bin(gpt2, root / "gpt2", root / "gpt2_bin_sharded", shards=3), gpt2,
                             gpt2_inputs, 1e-4),
        "gpt2_safetensors_sharded": (write_safetensors(gpt2, root / "gpt2", root / "gpt2_st_sharded", shards=3),
                                     gpt2, gpt2_inputs, 1e-4),
        "t5_bin_zip": (write_bin(t5, root / "t5", root / "t5_bin_zip"), t5, t5_inputs, 1e-4),
        "t5_bin_legacy_sharded": (write_bin(t5, root / "t5", root / "t5_bin_legacy_sharded", legacy=True, shards=2),
                                  t5, t5_inputs, 1e-4),
        "distilbert_bin_zip": (write_bin(bert, root / "distilbert", root / "distilbert_bin"), bert, bert_inputs, 1e-4),
        "qwen2_bin_legacy": (write_bin(qwen, root / "qwen2", root / "qwen2_bin", legacy=True), qwen, gpt2_inputs, 1e-4),
    }
    # Half-precision checkpoints: compared with the same weights rounded, in float32 (HF upcasts the same way).
    for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        rounded = write_hf_gpt2(root / f"gpt2_{name}_ref", product_texts, seed=1)
        with torch.no_grad():
            for p in rounded.parameters():
                p.copy_(p.to(dtype).float())
        cases[f"gpt2_safetensors_{name}"] = (
            write_safetensors(gpt2, root / "gpt2", root / f"gpt2_{name}", dtype=dtype), rounded, gpt2_inputs, 1e-4)
    return cases


def reference_logits(model, inputs):
    with torch.no_grad():
        if "encoder_token_ids" in inputs:
            return model(input_ids=torch.tensor(inputs["encoder_token_ids"]),
                         decoder_input_ids=torch.tensor(inputs["decoder_token_ids"])).logits.numpy()
        return model(input_ids=torch.tensor(inputs["token_ids"])).logits.numpy()


def test_every_format_loads_without_torch_with_transformers_logits(checkpoints, tmp_path):
    jobs = [{"dir": str(path), "inputs": {k: v.tolist() for k, v in inputs.items()},
             "out": str(tmp_path / f"{name}.npy")} for name, (path, _, inputs, _) in checkpoints.items()]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    loader = HERE / "helpers" / "load_without_torch.py"
    result = subprocess.run([sys.executable, str(loader), str(tmp_path / "jobs.json")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, (path, model, inputs, atol) in checkpoints.items():
        ours = np.load(tmp_path / f"{name}.npy")
        difference = np.abs(ours - reference_logits(model, inputs)).max()
        assert difference <= atol, (name, difference)
    assert not (checkpoints["gpt2_bin_zip"][0] / "model.safetensors").exists()


def test_bin_weights_are_memory_mapped_not_copied(checkpoints):
    for name in ("gpt2_bin_zip", "gpt2_bin_legacy"):
        weights = read_weights(checkpoints[name][0])
        wte = weights["transformer.wte.weight"]
        assert isinstance(wte.base, np.memmap) or isinstance(np.asarray(wte).base, np.memmap) or _mapped(wte), name
        assert not wte.flags.writeable


def _mapped(array):
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = array.base
    return False


class Exploit:
    """What a malicious checkpoint holds: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_that_runs_code_is_refused(tmp_path, checkpoints, legacy, capsys):
    marker = tmp_path / "pwned"
    state = {"transformer.wte.weight": torch.zeros(2, 2), "payload": Exploit(marker)}
    target = copy_side_files(checkpoints["gpt2_bin_zip"][0], tmp_path / "evil")
    torch.save(state, target / "pytorch_model.bin", **({"_use_new_zipfile_serialization": False} if legacy else {}))
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system|nt.system"):
        read_weights(target)
    assert main(["generate", str(target), "hola"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "refusing to load a pickle" in error[0], error
    assert not marker.exists()
    # A plain pickle (not torch's layout) with the same payload is refused too.
    (target / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit(marker), protocol=2))
    with pytest.raises(KerastuneError):
        read_weights(target)
    assert not marker.exists()


def test_unreadable_or_broken_checkpoints_are_named(tmp_path, checkpoints):
    only_tf = copy_side_files(checkpoints["gpt2_bin_zip"][0], tmp_path / "tf")
    (only_tf / "tf_model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(KerastuneError, match="tf_model.h5"):
        kerastune.load_model(str(only_tf))
    sharded = tmp_path / "sharded"
    write_bin(checkpoints["gpt2_bin_zip"][1], checkpoints["gpt2_bin_zip"][0], sharded, shards=2)
    (sharded / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(KerastuneError, match="00002-of-00002.bin"):
        read_weights(sharded)
    truncated = copy_side_files(checkpoints["gpt2_bin_zip"][0], tmp_path / "truncated")
    data = (checkpoints["gpt2_bin_legacy"][0] / "pytorch_model.bin").read_bytes()
    (truncated / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(KerastuneError, match="truncated|could not read"):
        read_weights(truncated)
    assert zipfile.is_zipfile(checkpoints["gpt2_bin_zip"][0] / "pytorch_model.bin")
