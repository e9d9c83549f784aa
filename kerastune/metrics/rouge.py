"""ROUGE-1/2/L/Lsum with stemming, as the seq2seq notebook computes it through `evaluate`.

`evaluate`'s rouge wraps `rouge_score.rouge_scorer` (the same options:
`use_stemmer=True`; `rougeLsum` treats newlines as sentence breaks) and the
notebook puts one sentence per line with `nltk.sent_tokenize`, which needs
the punkt data download. Here sentences are split offline by a rule
(end punctuation followed by whitespace), and each score is the mean
F-measure over the pairs.
"""

import re

import numpy as np
from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_sentences(text: str) -> str:
    """One sentence per line, for rougeLsum (the notebook's `"\\n".join(sent_tokenize(x))`)."""
    return "\n".join(s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip())


def rouge(predictions, references, use_stemmer=True) -> dict:
    """Mean F-measure of each ROUGE type over (prediction, reference) pairs."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    scores = {name: [] for name in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references):
        result = scorer.score(split_sentences(reference), split_sentences(prediction))
        for name in ROUGE_TYPES:
            scores[name].append(result[name].fmeasure)
    return {name: float(np.mean(values)) if values else 0.0 for name, values in scores.items()}
