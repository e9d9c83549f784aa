"""Exact-match accuracy: the seed's `getMatchMetricBatch` (stripped string equality)."""


def exact_match(predictions, references) -> dict:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    matches = sum(p.strip() == r.strip() for p, r in zip(predictions, references))
    total = len(references)
    return {"accuracy": matches / total if total else 0.0, "matches": matches, "total": total}
