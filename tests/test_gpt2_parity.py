"""Same weights, same logits and the same greedy and beam outputs: kerastune's GPT-2 against transformers."""

import json

import numpy as np
import pytest
import torch
from helpers.causal_parity import check_logits_and_reload, hf_continuations
from helpers.hf_checkpoints import write_hf_gpt2
from transformers import AutoTokenizer

import kerastune
from kerastune.errors import KerastuneError
from kerastune.generation.causal import CausalLMGenerator

PROMPTS = ["Esta mochila", "La nueva lámpara de escritorio de Casa Nova es", "Resiste"]


def test_logits_match_transformers_on_random_weights(tmp_path, product_texts):
    reference = write_hf_gpt2(tmp_path, product_texts, seed=1)
    model = kerastune.load_model(str(tmp_path))
    assert type(model).__name__ == "GPT2CausalLM"
    again = check_logits_and_reload(model, reference, 1, 300, tmp_path / "preset")  # and the run's model/
    assert again.preprocessor.add_start_token is False


@pytest.mark.slow
def test_tokenizer_matches_transformers(tmp_path, hf_gpt2):
    path, _ = hf_gpt2
    theirs = AutoTokenizer.from_pretrained(str(path))
    text = "La playera negra, año 2024: ¡cálida!  ñandú €\nnueva línea"
    ours = kerastune.load_model(str(path)).preprocessor.tokenizer
    assert [int(t) for t in np.asarray(ours(text))] == theirs(text)["input_ids"]
    # transformers 5 saves tokenizer.json only; the vocabulary and merges are read from it.
    theirs.save_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    assert not (tmp_path / "vocab.json").exists()
    from_json = kerastune.load_model(str(tmp_path)).preprocessor.tokenizer
    assert [int(t) for t in np.asarray(from_json(text))] == theirs(text)["input_ids"]


@pytest.mark.slow
@pytest.mark.parametrize("num_beams", [1, 3])
def test_greedy_and_beam_outputs_match_transformers(hf_gpt2, num_beams):
    path, reference = hf_gpt2
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = kerastune.load_model(str(path))
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=12, num_beams=num_beams)
    ours = generator.generate_tokens(generator.tokenize(PROMPTS))  # prompts of different lengths in one batch
    expected = hf_continuations(reference, [tokenizer(p)["input_ids"] for p in PROMPTS], 12, num_beams)
    assert ours == expected
    assert len({len(new) for new in expected}) > 1  # outputs of different lengths: stopping is tested too


@pytest.mark.slow
def test_unsupported_checkpoints_are_named(tmp_path, hf_gpt2):
    path, _ = hf_gpt2
    for name in ("vocab.json", "merges.txt", "model.safetensors"):
        (tmp_path / name).write_bytes((path / name).read_bytes())
    config = json.loads((path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    with pytest.raises(KerastuneError, match="activation_function"):
        kerastune.load_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(KerastuneError, match="pytorch_model.bin"):
        kerastune.load_model(str(tmp_path))


@pytest.mark.slow
def test_hf_export_round_trip_after_changing_weights(tmp_path, hf_gpt2):
    from transformers import GPT2LMHeadModel

    from kerastune.export.hf_format import export_hf

    path, _ = hf_gpt2
    model = kerastune.load_model(str(path))
    layer = model.backbone.transformer_layers[1]
    rng = np.random.RandomState(0)
    for variable in (layer._self_attention_layer.key_dense.kernel, layer._self_attention_layer.value_dense.bias,
                     layer._feedforward_output_dense.kernel, model.backbone.position_embedding.position_embeddings):
        variable.assign(np.asarray(variable) + rng.normal(0, 0.05, variable.shape).astype("float32"))
    export_hf(model, tmp_path / "hf")
    theirs = GPT2LMHeadModel.from_pretrained(str(tmp_path / "hf")).eval()
    ids = np.asarray([AutoTokenizer.from_pretrained(str(tmp_path / "hf"))(PROMPTS[1])["input_ids"]], "int32")
    with torch.no_grad():
        expected = theirs(torch.tensor(ids, dtype=torch.long)).logits.numpy()
    ours = np.asarray(model({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
    assert np.abs(ours - expected).max() <= 1e-4
