"""Same weights, same logits: the RoBERTa reward model against transformers RobertaForSequenceClassification."""

import numpy as np
import pytest
import torch
from helpers.hf_checkpoints import write_hf_roberta_classifier
from make_reviews_sample import make_rows
from transformers import AutoTokenizer

import kerastune
from kerastune.errors import KerastuneError
from kerastune.metrics.toxicity import ToxicityScorer
from kerastune.models.gpt2.tokenizer import train_byte_level_bpe, write_vocabulary
from kerastune.models.labels import save_labels
from kerastune.models.roberta.tiny import SPECIAL_TOKENS

TEXTS = ["#Person1# tells Tommy that he didn't like the movie.",
         "The movie was terrible, dumb and stupid!",
         "ok"]


@pytest.fixture(scope="module")
def hf_roberta(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_roberta")
    return path, write_hf_roberta_classifier(path, [r["text"] for r in make_rows(200, seed=3)] + TEXTS)


def test_classifier_logits_match_transformers(hf_roberta, tmp_path):
    path, reference = hf_roberta
    # Random init gives a non-zero token-type row, which HF adds to every position: the converter must keep it.
    assert reference.roberta.embeddings.token_type_embeddings.weight.abs().max() > 0
    theirs = AutoTokenizer.from_pretrained(str(path))
    batch = theirs(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**batch).logits.numpy()

    model = kerastune.load_model(str(path))
    assert type(model).__name__ == "RobertaTextClassifier"
    assert model.id2label == {0: "nothate", 1: "hate"}
    scorer = ToxicityScorer(model)
    assert scorer.encode(TEXTS) == [list(ids[ids != 1]) for ids in batch["input_ids"].numpy()]
    assert np.abs(scorer.logits(TEXTS) - expected).max() <= 1e-4
    np.testing.assert_allclose(scorer.rewards(TEXTS), expected[:, 0], atol=1e-4)
    np.testing.assert_allclose(scorer.toxicity(TEXTS), torch.softmax(torch.tensor(expected), -1)[:, 1], atol=1e-5)
    # Batching does not change a text's score.
    np.testing.assert_allclose(ToxicityScorer(model, batch_size=1).logits(TEXTS), expected, atol=1e-4)

    # A run's saved reward model reloads with its weights and label names.
    model.save_to_preset(str(tmp_path / "preset"))
    save_labels(model, tmp_path / "preset")
    again = kerastune.load_model(str(tmp_path / "preset"))
    assert again.id2label == {0: "nothate", 1: "hate"}
    assert np.abs(ToxicityScorer(again).logits(TEXTS) - expected).max() <= 1e-4


def test_unknown_label_and_wrong_head_are_named(hf_roberta, tmp_path):
    model = kerastune.load_model("tiny-roberta", texts=TEXTS, vocab_size=300)
    assert model.id2label == {0: "nothate", 1: "hate"}
    with pytest.raises(KerastuneError, match="unknown label 'toxic'.*nothate, hate"):
        ToxicityScorer(model, toxic_label="toxic")
    path, reference = hf_roberta
    # A bare encoder (no classification head) is refused with the reason.
    reference.roberta.save_pretrained(tmp_path)
    write_vocabulary(*train_byte_level_bpe(TEXTS, 300, special_tokens=SPECIAL_TOKENS), tmp_path)
    config = (tmp_path / "config.json").read_text().replace('"RobertaModel"', '"RobertaForSequenceClassification"')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(KerastuneError, match="no sequence-classification head"):
        kerastune.load_model(str(tmp_path))
