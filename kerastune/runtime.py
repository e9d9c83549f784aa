"""Backend, precision policy, seeds, distribution, and compiled functions that work on every backend."""

import contextlib
import functools
import os
import random

import keras
import numpy as np

from kerastune.config import DISTRIBUTIONS
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


def has_tpu() -> bool:
    if backend() == "jax":
        import jax

        return any(d.platform == "tpu" for d in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("TPU"))


def set_precision(precision: str) -> str:
    """Set Keras's global dtype policy; `auto` is mixed_bfloat16 on a TPU, mixed_float16 on a GPU, else float32.
    `bfloat16` keeps the weights (and so the optimizer's moments) in bfloat16 too: half the memory of the
    mixed policies' float32 weights, at the cost of updates smaller than a weight's bfloat16 step being lost."""
    if precision == "auto":
        precision = "mixed_bfloat16" if has_tpu() else "mixed_float16" if has_gpu() else "float32"
    if precision not in ("float32", "mixed_float16", "mixed_bfloat16", "bfloat16"):
        raise KerastuneError(f"unknown precision '{precision}'")
    keras.mixed_precision.set_global_policy(precision)
    return precision


# ---- distribution -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def distribution_scope(name: str = "none", model_parallel_size: int = 2, multi_host: bool = False):
    """Build, train and generate on the devices `name` asks for; yields the strategy / distribution or None.

    - `none`: Keras's default device.
    - `data_parallel`: every device holds the whole model and a slice of each batch. JAX:
      `keras.distribution.DataParallel`; TensorFlow: `MirroredStrategy` over the GPUs (else the CPUs),
      or `MultiWorkerMirroredStrategy` when `TF_CONFIG` describes several workers.
    - `model_parallel` (JAX): a `batch` x `model` device mesh (`model_parallel_size` devices on `model`),
      with the big kernels of T5, GPT-2, DistilBERT and RoBERTa sharded along `model` (models/layouts.py).
    - `tpu`: TensorFlow's `TPUStrategy` (`TPUClusterResolver`, `TPU_NAME` or the local TPU); on JAX the
      TPU devices in a data-parallel mesh.
    `multi_host` starts the multi-process runtime first (`keras.distribution.initialize()` on JAX).
    Models must be created inside the scope; batch sizes stay global.
    """
    if name not in DISTRIBUTIONS:
        raise KerastuneError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got '{name}'")
    if name == "none":
        yield None
        return
    if backend() == "jax":
        if multi_host:
            keras.distribution.initialize()
        distribution = _jax_distribution(name, model_parallel_size)
        with distribution.scope():
            yield distribution
    elif backend() == "tensorflow":
        strategy = _tf_strategy(name)
        with strategy.scope():
            yield strategy
    else:
        raise KerastuneError(f"distribution={name} needs KERAS_BACKEND=jax or tensorflow, not {backend()}")


def _jax_distribution(name, model_parallel_size):
    from keras.distribution import DataParallel, DeviceMesh, ModelParallel, list_devices

    if name == "tpu":
        devices = [d for d in list_devices() if d.startswith("tpu")]
        if not devices:
            raise KerastuneError(f"distribution=tpu: JAX sees no TPU, only {', '.join(list_devices())}")
        return DataParallel(devices=devices)
    devices = list_devices()
    if name == "data_parallel":
        return DataParallel(devices=devices)
    if model_parallel_size < 1 or len(devices) % model_parallel_size:
        raise KerastuneError(
            f"model_parallel_size={model_parallel_size} must divide the number of devices ({len(devices)})"
        )
    from kerastune.models.layouts import layout_map

    mesh = DeviceMesh((len(devices) // model_parallel_size, model_parallel_size), ["batch", "model"], devices)
    return ModelParallel(layout_map=layout_map(mesh), batch_dim_name="batch")


@functools.cache
def _tf_strategy(name):
    """One strategy per kind and process: a second MirroredStrategy over the same devices reuses the
    collective-op keys of the first, and their all-reduces then collide."""
    import tensorflow as tf

    if name == "model_parallel":
        raise KerastuneError(
            "distribution=model_parallel runs on KERAS_BACKEND=jax (Keras's ModelParallel); "
            "on TensorFlow use data_parallel"
        )
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise KerastuneError(f"distribution=tpu: no TPU found ({str(e).splitlines()[0]})") from None
        return tf.distribute.TPUStrategy(resolver)
    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def replica_count() -> int:
    """How many slices each batch is split into by the distribution in force (1 without one)."""
    if backend() == "jax":
        distribution = keras.distribution.distribution()
        if distribution is None:
            return 1
        mesh = distribution.device_mesh
        return mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_strategy().num_replicas_in_sync
    return 1


def describe_distribution(name: str, batch_size: int) -> str:
    """One line for the log: where the run trains and how each global batch is split."""
    if name == "none":
        return f"distribution: none (one device), batch {batch_size}"
    if backend() == "jax":
        distribution = keras.distribution.distribution()
        mesh = distribution.device_mesh
        where = f"{mesh.devices.size} devices, mesh {dict(zip(mesh.axis_names, mesh.shape))}"
    else:
        import tensorflow as tf

        where = f"{len(tf.distribute.get_strategy().extended.worker_devices)} local devices"
    replicas = replica_count()
    return (f"distribution: {name} on {where}; global batch {batch_size}, "
            f"{batch_size / replicas:g} per replica ({replicas} replicas)")


def pad_batches_for_replicas(dataset):
    """Repeat rows of each batch, with sample weight 0, up to a multiple of the replica count.

    Length buckets and the last batch of an epoch have any size; JAX shards each batch evenly over the
    mesh's batch axis, and TensorFlow would hand some replicas empty slices, which keras-hub's attention
    cannot take. The added rows are real rows (no NaNs) that carry no loss (weight 0).
    """
    replicas = replica_count()
    if replicas == 1:
        return dataset
    import tensorflow as tf

    def pad(x, y, sample_weight):
        rows = tf.shape(sample_weight)[0]
        index = tf.range(rows + (-rows) % replicas) % rows
        keep = tf.cast(tf.range(tf.size(index)) < rows, sample_weight.dtype)
        keep = tf.reshape(keep, [-1] + [1] * (len(sample_weight.shape) - 1))
        take = lambda t: tf.gather(t, index)  # noqa: E731
        return tf.nest.map_structure(take, x), tf.nest.map_structure(take, y), take(sample_weight) * keep

    return dataset.map(pad)


def variable_values(variables) -> list:
    """NumPy copies of variables, through a tensor: TensorFlow's MirroredVariables have no usable __array__."""
    return [keras.ops.convert_to_numpy(keras.ops.convert_to_tensor(v)) for v in variables]


def compile_model_function(model, fn, xla=True):
    """Compile `fn(*args)`, which calls `model`'s layers, once per input shape.

    TensorFlow: `tf.function(jit_compile=xla)`, variables are read at run time.
    Without XLA the graph takes any shape after its second trace and runs
    oneDNN's kernels: as fast as XLA for large matmuls on CPU, and nothing
    to compile per shape.
    JAX: `jax.jit` over a stateless call, with the model's current variable
    values passed in as arguments, so later training is seen without
    recompiling. PyTorch: eager, under `torch.no_grad()` (these functions
    are inference: generation, log-probs, scores).
    The result's `traces` attribute counts the compilations so far (one per
    input shape; it should not grow batch after batch).
    """
    name = backend()
    counted = _count_traces(fn)
    if name == "tensorflow":
        import tensorflow as tf

        call = tf.function(counted, jit_compile=xla, reduce_retracing=True)
    elif name == "jax":
        import jax

        @jax.jit
        def stateless(state, *args):
            trainable, non_trainable = state
            mapping = list(zip(model.trainable_variables, trainable))
            mapping += list(zip(model.non_trainable_variables, non_trainable))
            with keras.StatelessScope(state_mapping=mapping):
                return counted(*args)

        def call(*args):
            state = (
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
            )
            return stateless(state, *args)

    elif name == "torch":
        import torch

        def call(*args):  # eager, but without building an autograd graph nobody will use
            with torch.no_grad():
                return counted(*args)

    else:
        call = counted
    return _CountedFunction(call, counted)


def _count_traces(fn):
    """`fn` that counts its Python calls: under tf.function or jax.jit, one per compilation."""

    def counted(*args):
        counted.traces += 1
        return fn(*args)

    counted.traces = 0
    return counted


class _CountedFunction:
    """A compiled function with the compilation count of `_count_traces` as `.traces`."""

    def __init__(self, call, counted):
        self._call, self._counted = call, counted

    def __call__(self, *args):
        return self._call(*args)

    @property
    def traces(self) -> int:
        return self._counted.traces


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
