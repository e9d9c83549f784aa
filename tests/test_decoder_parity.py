"""Llama, Qwen2 and Gemma 2 (rotary, grouped-query families keras-hub converts) against transformers: the same
weights give the same logits, the same tokens from the tokenizer, and the same greedy and beam outputs for a
batch of prompts of different lengths; a run's saved model reloads; the tiny builders generate."""

import numpy as np
import pytest
import torch
from helpers.causal_parity import check_logits_and_reload, hf_continuations
from helpers.hf_checkpoints import cached_checkpoint, write_hf_decoder
from transformers import AutoModelForCausalLM, AutoTokenizer

import kerastune
from kerastune.generation.causal import CausalLMGenerator

FAMILIES = ("llama", "qwen2", "gemma2")
PROMPTS = ["Esta mochila", "La nueva lámpara de escritorio de Casa Nova es", "Resiste", ""]
KERAS_CLASSES = {"llama": "Llama3CausalLM", "qwen2": "QwenCausalLM", "gemma2": "GemmaCausalLM"}


@pytest.fixture(scope="module", params=FAMILIES)
def checkpoint(request, product_texts):
    """(family, directory, transformers model, tokenizer) of a briefly trained tiny model. The tokenizer is
    transformers' (Llama, Qwen2) or, for Gemma's SentencePiece model, SentencePiece's own."""
    family = request.param
    settings = {"family": family, "train_steps": 150, "seed": 1}
    path = cached_checkpoint(request, f"hf_{family}", settings, "\n".join(product_texts).encode(),
                             lambda path: write_hf_decoder(path, family, product_texts, train_steps=150, seed=1))
    reference = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    if family == "gemma2":
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model"))
        return family, path, reference, lambda text: [2] + processor.encode(text)  # Gemma's <bos> first
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return family, path, reference, lambda text: tokenizer(text)["input_ids"]


def test_logits_match_transformers(checkpoint, tmp_path):
    family, path, reference, _ = checkpoint
    model = kerastune.load_model(str(path))
    assert type(model).__name__ == KERAS_CLASSES[family]
    check_logits_and_reload(model, reference, 3, reference.config.vocab_size, tmp_path / "preset")


def test_tokenizer_matches_transformers(checkpoint):
    """Prompts tokenize as the checkpoint's tokenizer does them (start token included); an empty prompt
    without a start token starts from the end token."""
    _, path, reference, tokenize = checkpoint
    model = kerastune.load_model(str(path))
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=4)
    texts = ["La playera negra, año 2024: ¡cálida!  ñandú €\nnueva línea", "", "Resiste"]
    assert generator.tokenize(texts) == [tokenize(t) or [reference.config.eos_token_id] for t in texts]


@pytest.mark.slow
@pytest.mark.parametrize("num_beams", [1, 3])
def test_greedy_and_beam_outputs_match_transformers(checkpoint, num_beams):
    _, path, reference, _ = checkpoint
    model = kerastune.load_model(str(path))
    generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=12, num_beams=num_beams)
    prompts = generator.tokenize(PROMPTS)  # as transformers' tokenizer (the test above)
    ours = generator.generate_tokens(prompts)  # prompts of different lengths in one batch
    expected = hf_continuations(reference, prompts, 12, num_beams)  # one left-padded batch
    assert ours == expected
    assert len({len(new) for new in expected}) > 1  # outputs of different lengths: stopping is tested too


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen", "tiny-gemma"])
def test_tiny_builders_generate_with_every_strategy(name, product_texts):
    model = kerastune.load_model(name, texts=product_texts, vocab_size=400)
    for settings in (dict(sampler="greedy"), dict(sampler="sample", top_p=0.9, seed=1), dict(num_beams=2)):
        generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=5, **settings)
        texts = generator.generate(["Esta mochila", "Resiste el agua y"], batch_size=2)
        assert len(texts) == 2 and texts[0].startswith("Esta mochila") and texts[1].startswith("Resiste el agua y")


@pytest.mark.slow
def test_hf_export_round_trip_after_changing_weights(checkpoint, tmp_path):
    """Weights changed in Keras, exported (keras-hub's exporter; Gemma 2: kerastune's, with two key/value heads):
    transformers reloads the same logits, and its tokenizer loaded from the export tokenizes as the original's
    (start token included)."""
    from kerastune.export.hf_format import export_hf

    family, path, _, tokenize = checkpoint
    model = kerastune.load_model(str(path))
    rng = np.random.RandomState(0)
    for variable in model.backbone.trainable_variables[1::5]:  # the embedding excepted, one in five
        variable.assign(np.asarray(variable) + rng.normal(0, 0.05, variable.shape).astype("float32"))
    export_hf(model, tmp_path / "hf")
    theirs = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf")).eval()
    ids = np.asarray([[5, 17, 42, 9, 100, 33, 8]], "int32")
    with torch.no_grad():
        expected = theirs(torch.tensor(ids, dtype=torch.long)).logits.numpy()
    ours = np.asarray(model({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
    assert np.abs(ours - expected).max() <= 1e-4
    if family != "gemma2":  # the exported tokenizer tokenizes as the original (Gemma's: see the README)
        exported = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
        assert [exported(text)["input_ids"] for text in PROMPTS] == [tokenize(text) for text in PROMPTS]
