"""A Keras model whose loss also reports statistics (trl's logged names) as Keras metrics.

`compute_loss` calls `track(stats)`; the statistics then reach `fit`'s progress bar, history.csv,
TensorBoard and the plots (as `val_*` on validation data), and `train_on_batch(..., return_dict=True)`.
"""

import keras


class StatsModel(keras.Model):
    def __init__(self, stat_names, **kwargs):
        super().__init__(**kwargs)
        self.trackers = [keras.metrics.Mean(name=name) for name in stat_names]

    def track(self, stats: dict):
        for tracker in self.trackers:
            tracker.update_state(stats[tracker.name])

    @property
    def metrics(self):
        compiled = super().metrics  # the loss tracker once compiled (Keras may already list the trackers)
        seen = {id(m) for m in compiled}
        return compiled + [t for t in self.trackers if id(t) not in seen]
