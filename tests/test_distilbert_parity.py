"""Same weights, same logits: kerastune's DistilBERT masked LM against transformers' DistilBertForMaskedLM."""

import numpy as np
import torch
from helpers.hf_checkpoints import write_hf_distilbert
from make_reviews_sample import make_rows

import kerastune


def test_masked_lm_logits_match_transformers(tmp_path):
    reference = write_hf_distilbert(tmp_path, [r["text"] for r in make_rows(200, seed=3)])

    model = kerastune.load_model(str(tmp_path))
    assert type(model).__name__ == "DistilBertMaskedLM"
    ids = np.array([[2, 10, 11, 4, 12, 3, 0, 0], [2, 13, 14, 15, 4, 16, 17, 3]])
    mask = (ids != 0).astype("int32")
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    x = {"token_ids": ids, "padding_mask": mask, "mask_positions": np.tile(np.arange(8), (2, 1))}
    logits = np.asarray(model(x))
    assert np.abs(logits - expected)[mask.astype(bool)].max() <= 1e-4

    # The run's saved model/ reloads with the same head (keras-hub rebuilds it with its own epsilon).
    model.save_to_preset(str(tmp_path / "preset"))
    again = kerastune.load_model(str(tmp_path / "preset"))
    reloaded = np.asarray(again(x))
    assert np.abs(reloaded - expected)[mask.astype(bool)].max() <= 1e-4
    # Tokenization matches transformers' tokenizer for the same vocabulary.
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(str(tmp_path))
    text = "The acting was SUPERB, the plot... thin!"
    assert [int(t) for t in np.asarray(model.preprocessor.tokenizer(text))] == theirs(text).input_ids[1:-1]
