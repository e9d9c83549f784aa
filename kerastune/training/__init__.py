"""Training: optimizer, losses, callbacks, checkpoints and the fit wrapper."""

from kerastune.training.callbacks import BestMetric, GenerationEvaluation, plot_history
from kerastune.training.fit import count_batches, fit, without_preprocessor
from kerastune.training.optimizer import create_optimizer

__all__ = ["BestMetric", "GenerationEvaluation", "count_batches", "create_optimizer", "fit", "plot_history",
           "without_preprocessor"]
