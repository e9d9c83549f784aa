"""Metrics computed in-house (no hub downloads)."""

from kerastune.metrics.exact_match import exact_match

__all__ = ["exact_match"]
