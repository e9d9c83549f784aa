"""The kerastune side of `kerastune bench`, on whichever Keras backend this process runs.

Each measurement takes the path a recipe takes: `load_model(dir)` on the
checkpoint transformers wrote, the library's length-bucketed tf.data batches,
`model.fit` compiled as `training.fit` compiles it (XLA on TensorFlow and
JAX), and `Seq2SeqGenerator`'s compiled search for generation.
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
    timed pass sees the batches the warm-up pass compiled)."""
    from kerastune.data.causal_lm import causal_lm_dataset
    from kerastune.data.tf_dataset import batch_pairs

    if family == "t5":
        pairs = tf.data.Dataset.from_tensor_slices((
            tf.ragged.constant(examples["inputs"], tf.int32), tf.ragged.constant(examples["targets"], tf.int32)))
        pairs = pairs.map(lambda s, t: (s, t))  # ragged rows -> dense vectors
        return batch_pairs(pairs, batch_size, 512, 512)
    if family == "gpt2":
        return causal_lm_dataset(examples["inputs"], batch_size, max_length=1024, shuffle=False)
    return masked_lm_dataset(examples["inputs"], batch_size, model.preprocessor.tokenizer)


def masked_lm_dataset(token_lists, batch_size, tokenizer, seed=0):
    """Variable-length masked-LM batches: the recipe's token masking (15%, 80/10/10) in tf.data, then
    bucketing and padding like the seq2seq data (transformers' collator pads each batch the same way)."""
    from kerastune.data.masking import IGNORE, token_masking
    from kerastune.data.tokens import PAD_MULTIPLE, bucket_boundaries, pad_to_multiple

    specials = tf.constant([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id], tf.int32)
    mask_id, vocab = tokenizer.mask_token_id, tokenizer.vocabulary_size()
    ids = tf.data.Dataset.from_tensor_slices(tf.ragged.constant(token_lists, tf.int32)).map(lambda r: r)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def mask(row, example_seed):
        special = tf.reduce_any(tf.equal(row[:, None], specials[None, :]), axis=1)
        inputs, labels = token_masking(row, special, tf.cast(example_seed, tf.int64), mask_id, vocab)
        return inputs, labels

    ds = tf.data.Dataset.zip((ids, seeds)).map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    edges = bucket_boundaries(512)
    ds = ds.bucket_by_sequence_length(
        lambda inputs, labels: tf.shape(inputs)[0], edges, [batch_size] * (len(edges) + 1),
        padded_shapes=([None], [None]), padding_values=(0, IGNORE),
    )

    def to_model_inputs(inputs, labels):
        inputs, labels = pad_to_multiple(inputs, PAD_MULTIPLE), pad_to_multiple(labels, PAD_MULTIPLE, pad_id=IGNORE)
        width = tf.shape(inputs)[1]
        positions = tf.tile(tf.range(width)[None, :], [tf.shape(inputs)[0], 1])
        x = {"token_ids": inputs, "padding_mask": tf.not_equal(inputs, 0), "mask_positions": positions}
        return x, tf.maximum(labels, 0), tf.cast(tf.not_equal(labels, IGNORE), tf.float32)

    return ds.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds, self.steps = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def train_throughput(workload, path) -> dict:
    """Seconds of the second of two `fit` epochs over the workload's batches (the first compiles)."""
    from kerastune.models import load_model
    from kerastune.training.fit import compile_for_training, without_preprocessor
    from kerastune.training.optimizer import create_optimizer

    family, _ = MODELS[workload.model]
    examples = workload.examples()
    keras.utils.set_random_seed(0)
    model = load_model(str(path))
    dataset = training_dataset(family, examples, workload.batch_size, model)
    shapes = {tuple(tf.nest.flatten(x)[0].shape) for x, _, _ in dataset}
    timer = EpochTimer()
    with without_preprocessor(model):
        compile_for_training(model, create_optimizer(1e-5, 1000, 0, 0.0, model))
        model.fit(dataset, epochs=2, verbose=0, callbacks=[timer])
    return {"seconds": timer.seconds[1], "warmup_seconds": timer.seconds[0], "steps": timer.steps // 2,
            "shapes": len(shapes), "jit_compile": bool(model.jit_compile)}


def generation_throughput(workload, path, num_beams) -> dict:
    """Seconds to generate for every prompt with `Seq2SeqGenerator`, after one warm-up batch per shape."""
    from kerastune.generation.seq2seq import Seq2SeqGenerator
    from kerastune.models import load_model

    model = load_model(str(path))
    generator = Seq2SeqGenerator(model, model.preprocessor.tokenizer, max_new_tokens=workload.max_new_tokens,
                                 num_beams=num_beams)
    prompts = workload.prompt_ids()
    start = time.perf_counter()
    generator.generate_tokens(prompts, workload.batch_size)  # compiles each bucket's shape once
    first = time.perf_counter() - start
    compiled = generator.compilations
    start = time.perf_counter()
    outputs = generator.generate_tokens(prompts, workload.batch_size)
    return {"seconds": time.perf_counter() - start, "warmup_seconds": first, "compilations": compiled,
            "recompilations": generator.compilations - compiled,
            "outputs": [[int(t) for t in np.asarray(row)] for row in outputs]}


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
