"""How long each recipe's real run should take, estimated from FLOPs (not run): `python -m benchmarks.estimate`.

Training time = model FLOPs of the run (`flops.py`, counted from the real
checkpoints' shapes and the workload below) / (peak x MFU). The workloads'
example counts are the recipes' defaults; the mean token lengths are
assumptions about the datasets (stated in the table), since no dataset can
be read here. MFU: this CPU measured 51-67% of its matmul peak in
`kerastune bench`; the accelerators are given 35%, a usual figure for
models this small (short sequences, small matmuls). Generation (ROUGE and
accuracy evaluation, PPO rollouts) is bound by per-step latency, not FLOPs:
it is counted in sequential decoder steps at an assumed 8 ms per step on an
accelerator (51 ms was measured on this CPU for a 32-row FLAN-T5-small step).
"""

import dataclasses

from benchmarks.flops import distilbert_forward, gpt2_forward, t5_forward

# The real checkpoints' shapes (their config.json).
FLAN_T5_SMALL = dict(d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8, vocab_size=32128,
                     feed_forward_proj="gated-gelu")
FLAN_T5_BASE = dict(d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12, vocab_size=32128,
                    feed_forward_proj="gated-gelu")
DISTILBERT_BASE = dict(dim=768, hidden_dim=3072, n_layers=6, vocab_size=30522)
GPT2_SMALL = dict(n_embd=768, n_layer=12, vocab_size=50257)

HARDWARE = {  # dense bfloat16 peak FLOP/s, and the MFU assumed
    "this CPU (2 cores, fp32, measured)": (206e9, 0.55),
    "1x NVIDIA A100 (bf16)": (312e12, 0.35),
    "1x NVIDIA H100 SXM (bf16)": (989e12, 0.35),
    "Cloud TPU v5e-8 (bf16)": (8 * 197e12, 0.35),
}
SECONDS_PER_DECODE_STEP = 0.008


@dataclasses.dataclass
class Workload:
    recipe: str
    assumptions: str
    train_flops: float
    decode_steps: int  # sequential generation steps (batches x tokens), evaluation and rollouts


def t5_training(config, examples, source, target, epochs, frozen=False):
    """`frozen`: LoRA training computes no weight gradients for the base, about 2x forward instead of 3x."""
    return (2.0 if frozen else 3.0) * examples * epochs * t5_forward(config, source, target)


def workloads() -> list[Workload]:
    return [
        Workload("instruction_tuning", "10,000 train x 2 epochs; source 80 tokens, target 3; eval 3,000 + 3,000 "
                 "rows, beam 5, batch 32, 4 steps", t5_training(FLAN_T5_SMALL, 10_000, 80, 3, 2),
                 decode_steps=(2 * 3000 + 3000) // 32 * 4),
        Workload("seq2seq_qa", "61,153 train (70% of 87,362) x 3 epochs; source 60 tokens, target 110; ROUGE "
                 "on 1,000 rows per epoch, batch 4, up to 128 steps",
                 t5_training(FLAN_T5_BASE, 61_153, 60, 110, 3), decode_steps=3 * 1000 // 4 * 128),
        Workload("lora_ppo_detox", "adapter: 6,400 dialogues x 1 epoch, source 200 tokens, target 30; PPO 10 x 16 "
                 "responses of up to 400 tokens (mean 250), then 2 forward/backward passes",
                 t5_training(FLAN_T5_BASE, 6_400, 200, 30, 1, frozen=True)
                 + 10 * 16 * 4 * t5_forward(FLAN_T5_BASE, 200, 250),
                 decode_steps=10 * 400 + 2 * 11 * 100),
        Workload("mlm_domain_adaptation", "10,000 chunks of 128 tokens x 1 epoch; perplexity before/after on "
                 "1,000", 3.0 * 10_000 * distilbert_forward(DISTILBERT_BASE, 128)
                 + 2 * 1_000 * distilbert_forward(DISTILBERT_BASE, 128), decode_steps=0),
        Workload("causal_lm", "7,500 descriptions (1% of products, 90%, non-empty) x 10 epochs, 250 tokens "
                 "each; eval on 830 per epoch", 3.0 * 7_500 * 10 * gpt2_forward(GPT2_SMALL, 250)
                 + 11 * 830 * gpt2_forward(GPT2_SMALL, 250), decode_steps=2 * 6 * 100),
    ]


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def table() -> str:
    names = list(HARDWARE)
    lines = ["| recipe | workload (assumed) | training PFLOP | " + " | ".join(names) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for work in workloads():
        cells = []
        for name in names:
            peak, mfu = HARDWARE[name]
            train = work.train_flops / (peak * mfu)
            decode = work.decode_steps * (0.051 if "CPU" in name else SECONDS_PER_DECODE_STEP)
            cells.append(duration(train + decode))
        lines.append(f"| `{work.recipe}` | {work.assumptions} | {work.train_flops / 1e15:.1f} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
