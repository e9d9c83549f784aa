"""Metrics: exact match, and ROUGE equal to rouge_score aggregated the way evaluate's rouge does."""

import numpy as np
from rouge_score import rouge_scorer

from kerastune.metrics import exact_match, rouge
from kerastune.metrics.rouge import split_sentences

PREDICTIONS = [
    "The cats are running home. They were hungry!",
    "Artificial intelligence helps doctors read scans faster.",
    "",
    "Paris is the capital of France.",
    "Rain fell all night. The river rose quickly.",
]
# What nltk.sent_tokenize gives for each side (written out: punkt needs a download).
SPLIT_PREDICTIONS = [
    "The cats are running home.\nThey were hungry!",
    PREDICTIONS[1], "", PREDICTIONS[3],
    "Rain fell all night.\nThe river rose quickly.",
]
REFERENCES = [
    "The cat runs home because it was hungry. Then it slept.",
    "AI can help doctors; it reads medical scans quickly.",
    "No answer was given.",
    "Paris is the capital of France.",
    "The river rose quickly. Rain fell all night.",
]
SPLIT_REFERENCES = [
    "The cat runs home because it was hungry.\nThen it slept.",
    REFERENCES[1], REFERENCES[2], REFERENCES[3],
    "The river rose quickly.\nRain fell all night.",
]


def test_rouge_equals_rouge_score_mean_f_measure():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    expected = {k: [] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    for prediction, reference in zip(SPLIT_PREDICTIONS, SPLIT_REFERENCES):
        result = scorer.score(reference, prediction)
        for key in expected:
            expected[key].append(result[key].fmeasure)
    ours = rouge(PREDICTIONS, REFERENCES)
    for key, values in expected.items():
        assert abs(ours[key] - np.mean(values)) < 1e-12
    assert ours["rougeLsum"] > ours["rougeL"]  # swapped sentences: Lsum matches each one
    assert rouge(REFERENCES, REFERENCES) == {k: 1.0 for k in ours}


def test_sentence_splitting_is_offline_and_one_per_line():
    assert split_sentences(" One. Two!  Three? four") == "One.\nTwo!\nThree?\nfour"
    assert split_sentences("No split in 3.5 or e.g.x") == "No split in 3.5 or e.g.x"


def test_stemming_is_on():
    assert rouge(["running cats"], ["run cat"])["rouge1"] == 1.0


def test_exact_match():
    assert exact_match([" World", "Sports"], ["World", "Business"]) == {"accuracy": 0.5, "matches": 1, "total": 2}
