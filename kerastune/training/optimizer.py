"""`create_optimizer`: AdamW with linear warmup then linear decay, as transformers' Trainer.

Same meaning as transformers' old TF `create_optimizer` and Trainer's default
(`get_linear_schedule_with_warmup`, betas 0.9/0.999, eps 1e-8): the rate rises
linearly from 0 over `warmup_steps`, then falls linearly to 0 at
`num_train_steps`. Warmup is capped to the run's length, so a short run still
reaches its peak rate. Norm scales and biases are not weight-decayed.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerastune")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak_learning_rate, num_train_steps, warmup_steps=0, batches_per_step=1):
        self.peak_learning_rate = float(peak_learning_rate)
        self.num_train_steps = max(int(num_train_steps), 1)
        self.warmup_steps = max(min(int(warmup_steps), self.num_train_steps - 1), 0)
        self.batches_per_step = int(batches_per_step)

    def __call__(self, step):
        # Keras evaluates a schedule at its count of batches; with gradient accumulation an update (a step
        # here, as in transformers' Trainer) takes `batches_per_step` of them.
        step = ops.floor(ops.cast(step, "float32") / self.batches_per_step)
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        rising = step / warmup
        remaining = ops.cast(self.num_train_steps - self.warmup_steps, "float32")
        falling = ops.maximum(0.0, (self.num_train_steps - step) / ops.maximum(remaining, 1.0))
        scale = ops.where(step < self.warmup_steps, rising, falling)
        return self.peak_learning_rate * scale

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "num_train_steps": self.num_train_steps,
            "warmup_steps": self.warmup_steps,
            "batches_per_step": self.batches_per_step,
        }


def create_optimizer(learning_rate, num_train_steps, warmup_steps=0, weight_decay=0.0, model=None,
                     gradient_accumulation_steps=1):
    """AdamW + warmup + linear decay. Pass `model` to exempt its 1-D weights from decay.

    `gradient_accumulation_steps` > 1 averages that many batches' gradients per update (Keras's optimizer
    does it); `num_train_steps` and `warmup_steps` count updates.

    Without weight decay this is plain Adam, the same update: Keras's AdamW would
    still multiply every weight by 0 each step and evaluate the schedule once per
    variable while tracing (about 3 s of T5-small's first step)."""
    schedule = WarmupLinearDecay(learning_rate, num_train_steps, warmup_steps, gradient_accumulation_steps)
    accumulate = gradient_accumulation_steps if gradient_accumulation_steps > 1 else None
    if not weight_decay:
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                     gradient_accumulation_steps=accumulate)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        gradient_accumulation_steps=accumulate,
    )
    if model is not None and weight_decay:
        optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    return optimizer
