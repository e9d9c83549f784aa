"""The kerastune side of `kerastune bench`, on whichever Keras backend this process runs.

Each measurement takes the path a recipe takes: `load_model(dir)` on the
checkpoint transformers wrote, the recipes' own tf.data batches (length
buckets; the masked-LM recipe's chunks and masking), `model.fit` compiled as
`training.fit` compiles it, and `Seq2SeqGenerator`'s compiled search for
generation. Items follow worker.py's protocol: build, `setup()` (load and
warm up), `repeat()` (one timed pass), `finish()`.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks.workloads import MODELS


def matmul_peak(size=2048, repeats=10) -> float:
    """Best fp32 GFLOP/s of a (size x size) matmul on this backend, compiled."""
    a = keras.random.normal((size, size))
    b = keras.random.normal((size, size))
    if keras.config.backend() == "jax":
        import jax

        matmul = jax.jit(keras.ops.matmul)
        wait = jax.block_until_ready
    else:
        matmul = tf.function(keras.ops.matmul, jit_compile=True)
        wait = keras.ops.convert_to_numpy
    wait(matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        wait(matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def training_dataset(family, examples, batch_size, model):
    """The recipes' batching of already-tokenized examples, in their given order (no reshuffle, so the
    timed passes see the batches the warm-up pass compiled)."""
    from kerastune.data.causal_lm import causal_lm_dataset
    from kerastune.data.masking import masked_lm_dataset
    from kerastune.data.tf_dataset import batch_pairs

    if family == "t5":
        pairs = tf.data.Dataset.from_tensor_slices((
            tf.ragged.constant(examples["inputs"], tf.int32), tf.ragged.constant(examples["targets"], tf.int32)))
        pairs = pairs.map(lambda s, t: (s, t))  # ragged rows -> dense vectors
        return batch_pairs(pairs, batch_size, 512, 512)
    if family in ("gpt2", "qwen2"):
        return causal_lm_dataset(examples["inputs"], batch_size, max_length=1024, shuffle=False)
    import datasets  # the masked-LM recipe's chunks and its on-the-fly token masking

    chunks = datasets.Dataset.from_dict({"input_ids": examples["inputs"], "word_ids": examples["word_ids"]})
    return masked_lm_dataset(chunks, model.preprocessor.tokenizer, batch_size, "token", shuffle=False)


class PassTimer(keras.callbacks.Callback):
    """Seconds of each `fit` epoch, and of its first step (tracing and compiling included)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.first_step, self.steps = [], None, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.first_step is None:
            self.first_step = time.perf_counter() - self.start

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


class CompileCounter:
    """XLA compilations on JAX (every jitted program: the train step per shape, and small helpers); None
    on TensorFlow, whose training step runs as a graph without XLA on a CPU."""

    def __init__(self):
        self.count = None
        if keras.config.backend() == "jax":
            import jax

            self.count = 0
            jax.monitoring.register_event_duration_secs_listener(self._event)

    def _event(self, name, seconds, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            self.count += 1


COMPILES = CompileCounter()


class Training:
    """`model.fit` as `training.fit` compiles it, over the workload's batches: a warm-up pass compiles
    every bucket's shape, then each `repeat` times one more pass (steady-state steps only)."""

    def __init__(self, workload, path):
        from kerastune.models import load_model
        from kerastune.training.fit import compile_for_training
        from kerastune.training.optimizer import create_optimizer

        started = time.perf_counter()
        family, _ = MODELS[workload.model]
        keras.utils.set_random_seed(0)
        self.model = load_model(str(path))
        self.dataset = training_dataset(family, workload.examples(), workload.batch_size, self.model)
        self.shapes = len({tuple(tf.nest.flatten(x)[0].shape) for x, _, _ in self.dataset})
        self.load_seconds = time.perf_counter() - started
        self.model.preprocessor = None  # the tf.data pipeline already tokenized
        compile_for_training(self.model, create_optimizer(1e-5, 1000, 0, 0.0, self.model))
        self.timer = PassTimer()

    def _pass(self) -> float:
        self.model.fit(self.dataset, epochs=1, verbose=0, callbacks=[self.timer])
        return self.timer.seconds[-1]

    def setup(self) -> dict:
        before = COMPILES.count
        warmup = self._pass()
        self.compiled = COMPILES.count
        return {"load_seconds": self.load_seconds, "first_step_seconds": self.timer.first_step,
                "warmup_seconds": warmup, "steps": self.timer.steps, "shapes": self.shapes,
                "jit_compile": bool(self.model.jit_compile),
                "xla_compilations": None if before is None else self.compiled - before}

    def repeat(self) -> dict:
        return {"seconds": self._pass()}

    def finish(self) -> dict:
        if COMPILES.count is None:
            return {}
        return {"xla_recompilations": COMPILES.count - self.compiled}  # in the timed passes: must be 0


class Generation:
    """`Seq2SeqGenerator`'s compiled search over every prompt: the warm-up pass compiles each bucket's
    shape, each `repeat` is one more pass, which must compile nothing."""

    def __init__(self, workload, path, num_beams):
        from kerastune.generation.seq2seq import Seq2SeqGenerator
        from kerastune.models import load_model

        started = time.perf_counter()
        model = load_model(str(path))
        self.generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer,
                                          max_new_tokens=workload.max_new_tokens, num_beams=num_beams)
        self.prompts, self.batch_size = workload.prompt_ids(), workload.batch_size
        self.load_seconds = time.perf_counter() - started

    def _pass(self) -> float:
        started = time.perf_counter()
        self.outputs = self.generator.generate_tokens(self.prompts, self.batch_size)
        return time.perf_counter() - started

    def setup(self) -> dict:
        warmup = self._pass()
        self.compiled = self.generator.compilations
        return {"load_seconds": self.load_seconds, "warmup_seconds": warmup, "compilations": self.compiled}

    def repeat(self) -> dict:
        return {"seconds": self._pass()}

    def finish(self) -> dict:
        return {"recompilations": self.generator.compilations - self.compiled,
                "outputs": [[int(t) for t in np.asarray(row)] for row in self.outputs]}


class CausalGeneration(Generation):
    """`CausalLMGenerator`'s greedy search (keras-hub's compiled loop, each prompt at its own positions) over
    every prompt: a warm-up pass compiles each bucket's shape, each `repeat` is one more pass."""

    def __init__(self, workload, path):
        from kerastune.generation.causal import CausalLMGenerator
        from kerastune.models import load_model

        started = time.perf_counter()
        model = load_model(str(path))
        self.generator = CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=workload.max_new_tokens)
        self.prompts, self.batch_size = workload.prompt_ids(), workload.batch_size
        self.load_seconds = time.perf_counter() - started

    def setup(self) -> dict:  # keras-hub's loop keeps no compilation count
        return {"load_seconds": self.load_seconds, "warmup_seconds": self._pass()}

    def finish(self) -> dict:
        return {"outputs": [[int(t) for t in row] for row in self.outputs]}


def recipe_pipeline(workload, path, data_dir, output_dir) -> dict:
    """The instruction_tuning recipe end to end (train, per-epoch validation accuracy, validation and test
    accuracy, checkpoints, plots, model save), with the seed's settings on the checkpoint and data given."""
    from kerastune.recipes import resolve, run

    overrides = [f"model={path}", f"dataset={data_dir}", f"output_dir={output_dir}", "resume=false",
                 f"max_train_samples={workload.train}", f"max_eval_samples={workload.validation}",
                 f"max_test_samples={workload.test}", f"epochs={workload.epochs}", "show_examples=0"]
    resolved = resolve("instruction_tuning", (), overrides)
    start = time.perf_counter()
    metrics = run(resolved.recipe, resolved.config)
    return {"seconds": time.perf_counter() - start, "validation_accuracy": metrics["validation_accuracy"],
            "test_accuracy": metrics["test_accuracy"]}
