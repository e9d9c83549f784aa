"""The notebook's PPO loop, sturdier: batched rollouts, per-step logs, checkpoints and resume (GRPO runs the
same loop: `run_steps`).

Each step takes the next batch of prompts (shuffled once per pass, full
batches only, like trl's dataloader), samples responses for the whole batch
in one compiled call, scores `query + response` with the reward function,
and runs one `PPOTrainer.step`. Every step appends trl's statistics to
history.csv, writes them to TensorBoard and saves a checkpoint, so an
interrupted run resumes at the step after the last one it finished. A
step whose statistics are not finite stops the run (`Diverged`) before
its checkpoint is written.
"""

import math
from pathlib import Path

import keras
import numpy as np

from kerastune.errors import Diverged, KerastuneError
from kerastune.training.checkpoints import remove_checkpoints
from kerastune.training.run_dir import append_history, elapsed, keep_history, read_history, resumed_clock

PROGRESS_STATS = ("objective/kl", "ppo/mean_scores", "ppo/returns/mean", "ppo/policy/advantages_mean")


def batch_indices(step, n_queries, batch_size, seed) -> np.ndarray:
    """The prompts of step `step`: pass p = step // batches_per_pass uses its own fixed shuffle."""
    per_pass = n_queries // batch_size
    if per_pass == 0:
        raise KerastuneError(f"PPO needs at least batch_size={batch_size} prompts, got {n_queries}")
    order = np.random.default_rng([seed, step // per_pass]).permutation(n_queries)
    first = (step % per_pass) * batch_size
    return order[first:first + batch_size]


def run_ppo(trainer, queries, score_fn, steps, run_dir, resume=True, seed=0, verbose=True, keep=3) -> list[dict]:
    """Run PPO steps up to `steps`; returns one stats row per step (resumed rows included).

    `score_fn(query_texts, response_texts) -> scores` is the reward model.
    Checkpoints: `run_dir/checkpoints/ppo-NNNN/`, the newest `keep` kept.
    """
    query_ids = trainer.encode(queries)

    def one_step(step):
        chosen = batch_indices(step, len(queries), trainer.batch_size, seed)
        batch_ids = [query_ids[i] for i in chosen]
        responses = trainer.generate(batch_ids)
        scores = score_fn([queries[i] for i in chosen], trainer.decode(responses))
        return trainer.step(batch_ids, responses, scores)

    return run_steps(trainer, one_step, steps, run_dir, prefix="ppo", progress_stats=PROGRESS_STATS,
                     learning_rate_key="ppo.learning_rate", resume=resume, verbose=verbose, keep=keep)


def run_steps(trainer, one_step, steps, run_dir, *, prefix, progress_stats, learning_rate_key, resume=True,
              verbose=True, keep=3) -> list[dict]:
    """The step loop of an RL trainer (PPO, GRPO): `one_step(step) -> stats` for each step up to `steps`,
    resumed after the trainer's last checkpoint (`trainer.load_state` / `save_state`, `steps_done`)."""
    run_dir = Path(run_dir)
    checkpoints, history_csv = run_dir / "checkpoints", run_dir / "history.csv"
    rows = []
    checkpoint, state = trainer.load_state(checkpoints) if resume else (None, {})
    if checkpoint:
        keep_history(history_csv, trainer.steps_done)
        rows = [{k: float(v) for k, v in r.items()} for r in read_history(history_csv)]
        resumed_clock(state.get("seconds", 0.0))
        print(f"resuming {prefix.upper()} after step {trainer.steps_done} of {steps} from {checkpoint}")
    else:
        remove_checkpoints(checkpoints, prefix)
        history_csv.unlink(missing_ok=True)
    writer = _tensorboard_writer(run_dir / "tensorboard" / prefix)
    bar = keras.utils.Progbar(steps, unit_name="step", stateful_metrics=progress_stats) if verbose else None
    if bar and rows:
        bar.update(len(rows))
    for step in range(trainer.steps_done, steps):
        stats = one_step(step)
        # A reward that scored none of a step's completions has no mean (NaN, as trl logs it): not divergence.
        bad = [name for name, value in stats.items() if not math.isfinite(value) and not name.startswith("rewards/")]
        if bad:
            kept = f"the last good checkpoint is {prefix}-{step:04d}" if step else "no checkpoint was written yet"
            raise Diverged(f"{prefix.upper()} diverged at step {step + 1}: {', '.join(bad[:3])} not finite; {kept} "
                           f"(try a lower {learning_rate_key})")
        row = {"step": step + 1, **stats}
        rows.append(row)
        append_history(history_csv, row)
        _log_scalars(writer, row)
        trainer.save_state(checkpoints, keep, {"seconds": elapsed()})
        if bar:
            bar.update(step + 1, values=[(name, stats[name]) for name in progress_stats if name in stats])
    return rows


def _tensorboard_writer(log_dir):
    import tensorflow as tf

    return tf.summary.create_file_writer(str(log_dir))


def _log_scalars(writer, row):
    import tensorflow as tf

    with writer.as_default():
        for name, value in row.items():
            if name != "step":
                tf.summary.scalar(name, value, step=int(row["step"]))
    writer.flush()
