"""Metrics computed in-house (no hub downloads)."""

from kerastune.metrics.exact_match import exact_match
from kerastune.metrics.rouge import rouge

__all__ = ["exact_match", "rouge"]
