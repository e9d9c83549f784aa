"""Callbacks: generation-based evaluation each epoch, history files, plots."""

import json
from pathlib import Path

import keras

from kerastune.training.checkpoints import load_arrays, save_arrays
from kerastune.training.run_dir import atomic_path, read_history, write_text


class GenerationEvaluation(keras.callbacks.Callback):
    """Generate for the evaluation prompts every epoch and score the outputs.

    `score(predictions, references) -> dict` returns metrics, which are added
    to the epoch's logs with `prefix` (so they reach history.csv, TensorBoard
    and the plots like any Keras metric). The last epoch's predictions are
    kept (`predictions`, `epoch`): a recipe that scores the same prompts
    after training reuses them instead of generating again.
    """

    def __init__(self, generator, prompts, references, score, batch_size=32, prefix="val_"):
        super().__init__()
        self.generator = generator
        self.prompts = list(prompts)
        self.references = list(references)
        self.score = score
        self.batch_size = batch_size
        self.prefix = prefix
        self.predictions, self.epoch = None, None

    def on_epoch_end(self, epoch, logs=None):
        print(f"Generating {len(self.prompts)} evaluation outputs")
        predictions = self.generator.generate(self.prompts, batch_size=self.batch_size, progress=True)
        self.predictions, self.epoch = predictions, epoch
        results = self.score(predictions, self.references)
        for name, value in results.items():
            if logs is not None:
                logs[self.prefix + name] = value
        print("  " + ", ".join(f"{self.prefix}{k}: {v:.4f}" for k, v in results.items()))


class BestMetric(keras.callbacks.Callback):
    """Remember the best epoch by a logged metric, in `best.json` (survives resume).

    With `weights_path` (an `.npz`, checkpoints' array format) the best
    epoch's model variables are saved too, for transformers'
    `load_best_model_at_end` (`restore_weights`).
    """

    def __init__(self, path, monitor, mode="max", weights_path=None):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.weights_path = weights_path
        self.better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)

    def start_fresh(self):
        """Forget a previous run's best (called by `fit` when it does not resume)."""
        self.path.unlink(missing_ok=True)
        if self.weights_path:
            Path(self.weights_path).unlink(missing_ok=True)

    def restore_weights(self, model) -> bool:
        """Load the best epoch's weights into `model`; False when there are none."""
        if not (self.weights_path and Path(self.weights_path).is_file()):
            return False
        load_arrays(self.weights_path, model.variables)
        return True

    def best(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        best = self.best()
        if not best or self.better(float(value), best["value"]):
            if self.weights_path:
                with atomic_path(self.weights_path) as partial:
                    save_arrays(partial, self.model.variables)
            write_text(self.path, json.dumps({"monitor": self.monitor, "epoch": epoch + 1, "value": float(value)}))


def plot_history(history_csv, out_dir, names=None) -> list[Path]:
    """One PNG per metric (train and `val_` curves together) from history.csv, by epoch or by PPO step.

    `names` picks metrics (default: all); a `/` in a name (PPO's `objective/kl`) becomes `_` in the file name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history_csv)
    if not rows:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_name = "epoch" if "epoch" in rows[0] else "step"
    xs = [int(r[x_name]) + (x_name == "epoch") for r in rows]  # epochs are stored 0-based, steps 1-based
    names = names or sorted({k.removeprefix("val_") for k in rows[0] if k not in ("epoch", "step", "learning_rate")})
    written = []
    for name in names:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in ((name, "train"), ("val_" + name, "validation")):
            values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "NA")]  # CSVLogger: NA = absent
            if len(values) == len(xs):
                ax.plot(xs, values, marker="o", label=label)
        ax.set_xlabel(x_name)
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
        path = out_dir / f"{name.replace('/', '_')}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
