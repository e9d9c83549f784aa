"""Backend, precision policy, seeds, and compiled functions that work on every backend."""

import random

import keras
import numpy as np

from kerastune.errors import KerastuneError


def backend() -> str:
    return keras.config.backend()


def set_seed(seed: int):
    """Seed Python, NumPy, TensorFlow and Keras so a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def has_gpu() -> bool:
    import tensorflow as tf

    if backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    return bool(tf.config.list_physical_devices("GPU"))


def set_precision(precision: str) -> str:
    """Set Keras's global dtype policy; `auto` is mixed_float16 on a GPU, float32 elsewhere."""
    if precision == "auto":
        precision = "mixed_float16" if has_gpu() else "float32"
    if precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise KerastuneError(f"unknown precision '{precision}'")
    keras.mixed_precision.set_global_policy(precision)
    return precision


def compile_model_function(model, fn):
    """Compile `fn(*args)`, which calls `model`'s layers, once per input shape.

    TensorFlow: `tf.function(jit_compile=True)`, variables are read at run time.
    JAX: `jax.jit` over a stateless call, with the model's current variable
    values passed in as arguments, so later training is seen without
    recompiling. Other backends run eagerly.
    """
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True, reduce_retracing=True)
    if name == "jax":
        import jax

        @jax.jit
        def stateless(state, *args):
            trainable, non_trainable = state
            mapping = list(zip(model.trainable_variables, trainable))
            mapping += list(zip(model.non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping):
                return fn(*args)

        def call(*args):
            state = (
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
            )
            return stateless(state, *args)

        return call
    return fn


def stateless_uniform(shape, seed, index):
    """Uniform [0, 1) noise that is a pure function of (`seed`, an int32 pair, and `index`).

    Inside a compiled loop a Keras `SeedGenerator` would be state the loop
    must carry; folding the step index into a seed passed as an input gives
    fresh, reproducible noise at every step on TensorFlow and JAX.
    """
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        step_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int32), tf.cast(index, tf.int32))
        return tf.random.stateless_uniform(shape, seed=step_seed, dtype=tf.float32)
    if name == "jax":
        import jax

        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), seed[0]), seed[1])
        return jax.random.uniform(jax.random.fold_in(key, index), shape, dtype="float32")
    return keras.random.uniform(shape)
