"""`kerastune bench --memory`: peak memory and training speed of one ~0.5B causal LM under each memory lever.

The model is a transformers-written random Qwen2 of Qwen2.5-0.5B's published shape (494M parameters, a
151,936-token vocabulary, tied head), loaded as kerastune loads any HF checkpoint. Each lever trains in a
process of its own: the same batches (token ids drawn from a Zipf law over 4,000 ids, so there is something
to learn), the same number of optimizer updates, Adam. Measured per lever: the peak resident memory while
training (the kernel's high-water mark, reset after loading), tokens per second over the timed updates
(after one untimed update that compiles), and the eval loss on held-out batches after the updates, which
must equal the baseline's where the lever does not change the update (accumulation, remat, chunked loss).
Peak memory is the resident high-water mark, reset after the first (compiling) update, with glibc returning
large freed blocks to the system at once, so it follows the tensors training holds.
Results go to OUT/memory.json and OUT/memory.md.

Run: kerastune bench --memory [--quick] [--output-dir runs/memory]   (--quick: 4 layers, for tests)
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QWEN_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
                rms_norm_eps=1e-6, tie_word_embeddings=True)  # Qwen2.5-0.5B's config.json
LEVERS = {  # name -> settings; batch x accumulate is 4 rows of 128 tokens per update everywhere
    "baseline (float32, full fine-tuning)": {},
    "gradient accumulation (2 x 2 rows)": {"batch": 2, "accumulate": 2},
    "remat (each decoder layer)": {"remat": True},
    "chunked cross-entropy (32 positions)": {"chunk": 32},
    "accumulation + remat + chunked": {"batch": 2, "accumulate": 2, "remat": True, "chunk": 32},
    "bfloat16 weights and Adam state": {"precision": "bfloat16"},
    "LoRA r16 on q, v": {"lora": True},
    "int8 base + LoRA r16": {"lora": True, "quantize": "int8"},
    "int4 base + LoRA r16": {"lora": True, "quantize": "int4"},
}
LENGTH, ROWS_PER_UPDATE, UPDATES, EVAL_BATCHES = 128, 4, 4, 2


def write_checkpoint(path: Path, layers: int) -> Path:
    """The random Qwen2 (seed 0) in HF format, written once."""
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**{**QWEN_05B, "num_hidden_layers": layers}))
    model.save_pretrained(path)
    return path


def batches(count: int, rows: int, seed: int):
    """(x, y, weights) next-token batches of token ids drawn from a Zipf law over 4,000 ids."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        ids = (np.minimum(rng.zipf(1.3, size=(rows, LENGTH + 1)), 4000) + 10).astype("int32")
        x = {"token_ids": ids[:, :-1], "padding_mask": np.ones((rows, LENGTH), "int32")}
        yield x, ids[:, 1:], np.ones((rows, LENGTH), "float32")


def peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def measure(checkpoint: Path, lever: dict) -> dict:
    """One lever, in this process: load, adapt, train UPDATES updates, evaluate."""
    import keras
    import keras_hub

    from kerastune.models.causal_training import CausalLMForTraining
    from kerastune.models.hf_loader import from_hf_directory
    from kerastune.models.lora import count_parameters, enable_lora, quantize_base
    from kerastune.runtime import set_precision
    from kerastune.training.fit import compile_for_training
    from kerastune.training.optimizer import create_optimizer

    set_precision(lever.get("precision", "float32"))
    keras.utils.set_random_seed(0)
    model = keras_hub.models.QwenCausalLM(backbone=from_hf_directory(keras_hub.models.Backbone, checkpoint),
                                          preprocessor=None)  # token ids in: no tokenizer needed
    if lever.get("quantize"):
        quantize_base(model, lever["quantize"])
    if lever.get("lora"):
        enable_lora(model, rank=16, alpha=32, targets=["q_proj", "v_proj"])
    trainer = model
    if lever.get("remat") or lever.get("chunk"):
        trainer = CausalLMForTraining(model, remat=lever.get("remat", False), loss_chunk_size=lever.get("chunk", 0),
                                      max_length=LENGTH)
    accumulate, rows = lever.get("accumulate", 1), lever.get("batch", ROWS_PER_UPDATE)
    learning_rate = 1e-3 if lever.get("lora") else 1e-4
    compile_for_training(trainer, create_optimizer(learning_rate, UPDATES, 0, 0.0, model, accumulate))
    train = list(batches(UPDATES * accumulate, rows, seed=1))
    started = time.perf_counter()
    for x, y, w in train[:accumulate]:  # the first update compiles
        trainer.train_on_batch(x, y, sample_weight=w)
    compiled = time.perf_counter()
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on: training, not loading or compiling
    for x, y, w in train[accumulate:]:
        loss = trainer.train_on_batch(x, y, sample_weight=w)
    seconds = time.perf_counter() - compiled
    if not np.isfinite(np.asarray(loss, dtype="float64")).all():
        raise RuntimeError(f"the loss is not finite: {loss}")
    peak = peak_rss_gib()
    losses = [float(keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
        y, keras.ops.cast(model(x, training=False), "float32"), from_logits=True)).mean())
        for x, y, _ in batches(EVAL_BATCHES, ROWS_PER_UPDATE, seed=2)]
    trainable, total = count_parameters(model)
    return {"peak_rss_gib": peak, "tokens_per_second": (UPDATES - 1) * ROWS_PER_UPDATE * LENGTH / seconds,
            "first_update_seconds": compiled - started, "eval_loss": float(np.mean(losses)),
            "trainable_parameters": trainable, "parameters": total}


def run_memory_table(output_dir, quick: bool = False, backend: str = "tensorflow") -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = 4 if quick else QWEN_05B["num_hidden_layers"]
    checkpoint = write_checkpoint(out / f"qwen2-0.5b-shape-{layers}-layers", layers)
    rows = {}
    for name, lever in LEVERS.items():
        print(f"[memory] {name} ...", flush=True)
        # Blocks of 1 MiB and more are mmapped, so freed memory leaves the process and the peak resident
        # memory follows what training holds, not what the allocator kept.
        env = dict(os.environ, KERAS_BACKEND=backend, MALLOC_MMAP_THRESHOLD_="1048576")
        done = subprocess.run([sys.executable, "-m", "benchmarks.memory", str(checkpoint), json.dumps(lever)],
                              capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
        answer = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        rows[name] = json.loads(answer) if done.returncode == 0 and answer else {"error": done.stderr[-2000:]}
        print(f"[memory] {name}: {rows[name]}", flush=True)
    table = {"model": f"random Qwen2, Qwen2.5-0.5B's shape, {layers} layers", "backend": backend,
             "tokens_per_update": ROWS_PER_UPDATE * LENGTH, "updates": UPDATES, "rows": rows}
    (out / "memory.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "memory.md").write_text(markdown(table))
    return table


def markdown(table: dict) -> str:
    base = table["rows"].get(next(iter(LEVERS)), {})
    lines = ["| lever | peak memory (GiB) | tokens/s | eval loss after "
             f"{table['updates']} updates | trainable parameters |", "| --- | --- | --- | --- | --- |"]
    for name, row in table["rows"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'].strip().splitlines()[-1][:80]} | | | |")
            continue
        ratio = row["tokens_per_second"] / base["tokens_per_second"] if base.get("tokens_per_second") else 1.0
        lines.append(f"| {name} | {row['peak_rss_gib']:.1f} | {row['tokens_per_second']:.0f} ({ratio:.2f}x) | "
                     f"{row['eval_loss']:.4f} | {row['trainable_parameters'] / 1e6:.1f}M |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), json.loads(sys.argv[2]))))
