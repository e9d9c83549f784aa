"""Same weights, same outputs: kerastune's T5 against transformers' T5ForConditionalGeneration.

Each test builds a random transformers model, `save_pretrained`s it, loads
the directory with `kerastune.load_model` and compares logits (<= 1e-4) and
greedy / beam-search tokens (identical).
"""

import numpy as np
import pytest
import torch
from helpers.hf_checkpoints import trained_hf_t5

import kerastune
from kerastune.generation.seq2seq import Seq2SeqGenerator

pytestmark = pytest.mark.slow  # trained T5 references (PyTorch)

CONFIGS = {
    "flan_t5_like": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "t5_v1_0_like": dict(feed_forward_proj="relu", tie_word_embeddings=True),
}
PROMPTS = [
    "Reuters - The striker scored twice against the league leaders on Monday.",
    "Scientists discovered a rare bacterium.",
    "AP - Shares of the retailer rose sharply after analyst expectations, officials said. The bank cut jobs.",
    "The army",
]


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, spiece_proto):
    path, reference = trained_hf_t5(request, spiece_proto, seed=3, train_steps=100, **CONFIGS[request.param])
    return reference, kerastune.load_model(str(path))


def test_logits_match_transformers(pair):
    reference, model = pair
    generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer)
    ids, mask = generator.prompt_matrix(PROMPTS)
    decoder_ids = np.array([[0, 5, 9, 17, 4, 1]] * len(PROMPTS), "int32")
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask),
            decoder_input_ids=torch.tensor(decoder_ids, dtype=torch.long),
        ).logits.numpy()
    logits = model(
        {
            "encoder_token_ids": ids,
            "encoder_padding_mask": mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": np.ones_like(decoder_ids),
        }
    )
    assert np.abs(np.asarray(logits) - expected).max() <= 1e-4


@pytest.mark.parametrize("num_beams", [1, 4])
def test_generation_matches_transformers(pair, num_beams):
    reference, model = pair
    generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer, max_new_tokens=12, num_beams=num_beams)
    ids, mask = generator.prompt_matrix(PROMPTS)
    ours = generator.generate_batch(ids, mask)
    with torch.no_grad():
        theirs = reference.generate(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask),
            max_new_tokens=12,
            num_beams=num_beams,
            do_sample=False,
            early_stopping=True,
        ).numpy()[:, 1:]
    ours, theirs = [until_eos(row) for row in ours], [until_eos(row) for row in theirs]
    assert ours == theirs
    assert len({len(row) for row in ours}) > 1, f"every output has the same length: {ours}"


def until_eos(row):
    """Tokens up to and including </s> (transformers fills after it with </s>, kerastune with pad)."""
    row = [int(t) for t in row]
    return row[: row.index(1) + 1] if 1 in row else row


def test_generate_text_uses_length_buckets(pair):
    _, model = pair
    generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer, max_new_tokens=6)
    one_by_one = [generator.generate([p], batch_size=1)[0] for p in PROMPTS]
    assert generator.generate(PROMPTS, batch_size=3) == one_by_one
