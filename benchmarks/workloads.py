"""What `kerastune bench` runs: model shapes, input lengths and batch sizes, for `--quick` and full runs.

Models have the published shapes of FLAN-T5-small, GPT-2 small,
DistilBERT-base and Qwen2.5-0.5B (as transformers configs), with random weights: throughput
does not depend on the values, and the hub is not reachable offline.
Input lengths are drawn from log-normal distributions standing in for the
seeds' datasets (AG News prompts, product descriptions, IMDb reviews) and of
chat data (templated exchanges):
medians and spreads chosen from the datasets' typical word counts, cut at the
recipes' maximum lengths. Each model's batches are what its recipe runs: T5
and GPT-2 rows of their own lengths in length buckets; DistilBERT's reviews
joined and cut into 128-token chunks, as the masked-LM notebook and recipe do.
Both sides get the very same token ids.
"""

import dataclasses

import numpy as np

T5_SMALL = dict(
    vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6,
    feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.1,
    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
)
GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                  bos_token_id=50256, eos_token_id=50256)
DISTILBERT_BASE = dict(vocab_size=30522, dim=768, hidden_dim=3072, n_layers=6, n_heads=12,
                       max_position_embeddings=512, pad_token_id=0)
# Qwen2.5-0.5B's config.json, but for the end token: the bench's small vocabulary file has it at id 0.
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
# Tiny shapes only check that the benchmark itself works (tests); their timings mean little.
T5_TINY = dict(T5_SMALL, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
               vocab_size=2000)
GPT2_TINY = dict(GPT2_SMALL, n_positions=256, n_embd=64, n_layer=2, n_head=4)
DISTILBERT_TINY = dict(DISTILBERT_BASE, dim=64, hidden_dim=128, n_layers=2, n_heads=4, vocab_size=2000)
QWEN2_TINY = dict(QWEN2_05B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  vocab_size=2000)
MODELS = {"flan-t5-small": ("t5", T5_SMALL), "gpt2-small": ("gpt2", GPT2_SMALL),
          "distilbert-base": ("distilbert", DISTILBERT_BASE), "qwen2.5-0.5b": ("qwen2", QWEN2_05B),
          "t5-tiny": ("t5", T5_TINY), "gpt2-tiny": ("gpt2", GPT2_TINY),
          "distilbert-tiny": ("distilbert", DISTILBERT_TINY), "qwen2-tiny": ("qwen2", QWEN2_TINY)}
SIZES = ("tiny", "quick", "full")


@dataclasses.dataclass(frozen=True)
class Lengths:
    """Token counts drawn log-normally around `median`, clipped to [low, high]."""

    median: int
    spread: float
    low: int
    high: int

    def draw(self, count: int, rng) -> np.ndarray:
        values = rng.lognormal(np.log(self.median), self.spread, count)
        return np.clip(np.round(values), self.low, self.high).astype(int)


@dataclasses.dataclass(frozen=True)
class TrainingWorkload:
    """Training throughput of one model: `batches` batches of `batch_size` examples, timed on a second pass."""

    model: str
    batch_size: int
    batches: int
    lengths: Lengths
    target_lengths: Lengths | None = None  # seq2seq only
    chunk_size: int = 0  # masked LM: texts joined and cut into rows of this many tokens (the remainder dropped)

    def examples(self, seed=0) -> dict:
        """Token ids for every example: `inputs` (and `targets`), lists of ints ending in the model's end token."""
        family, config = MODELS[self.model]
        rng = np.random.default_rng(seed)
        count = self.batch_size * self.batches
        vocab = config["vocab_size"]
        if family == "t5":  # ids 3.. (0 pad, 1 </s>, 2 unk), ending in </s>
            sources = [list(rng.integers(3, vocab, n - 1)) + [1] for n in self.lengths.draw(count, rng)]
            targets = [list(rng.integers(3, vocab, n - 1)) + [1] for n in self.target_lengths.draw(count, rng)]
            return {"inputs": _ints(sources), "targets": _ints(targets)}
        if family in ("gpt2", "qwen2"):  # text tokens, then the end token (GPT-2's last id, the bench Qwen's 0)
            eos = config["eos_token_id"]
            low, high = (0, eos) if family == "gpt2" else (eos + 1, vocab)
            return {"inputs": _ints([list(rng.integers(low, high, n - 1)) + [eos]
                                     for n in self.lengths.draw(count, rng)])}
        # DistilBERT: texts of [CLS] word pieces [SEP] (pieces drawn above the special and [unused] ids),
        # joined and cut into `chunk_size` rows until there are `count` of them; each piece is a word.
        ids, words = [], []
        while len(ids) < count * self.chunk_size:
            n = int(self.lengths.draw(1, rng)[0])
            ids += [101] + list(rng.integers(1000, vocab, n - 2)) + [102]
            words += [-1] + list(range(len(words), len(words) + n - 2)) + [-1]
        size = self.chunk_size
        return {"inputs": _ints([ids[i : i + size] for i in range(0, count * size, size)]),
                "word_ids": _ints([words[i : i + size] for i in range(0, count * size, size)])}


@dataclasses.dataclass(frozen=True)
class GenerationWorkload:
    """Evaluation-style generation with a T5: `prompts` prompts in batches, greedy or beam."""

    model: str
    prompts: int
    batch_size: int
    max_new_tokens: int
    lengths: Lengths

    def prompt_ids(self, seed=1) -> list[list[int]]:
        rng = np.random.default_rng(seed)
        vocab = MODELS[self.model][1]["vocab_size"]
        return _ints([list(rng.integers(3, vocab, n - 1)) + [1] for n in self.lengths.draw(self.prompts, rng)])


@dataclasses.dataclass(frozen=True)
class CausalGenerationWorkload(GenerationWorkload):
    """Greedy continuation of prompts by a decoder-only model, in batches of prompts of different lengths."""

    def prompt_ids(self, seed=1) -> list[list[int]]:
        rng = np.random.default_rng(seed)
        config = MODELS[self.model][1]
        return _ints([list(rng.integers(config["eos_token_id"] + 1, config["vocab_size"], n))
                      for n in self.lengths.draw(self.prompts, rng)])


@dataclasses.dataclass(frozen=True)
class PipelineWorkload:
    """The instruction-tuning notebook end to end against the recipe, on the project's news sample."""

    model: str
    train: int
    validation: int
    test: int
    epochs: int = 2


AG_NEWS_PROMPT = Lengths(median=75, spread=0.35, low=30, high=400)  # the seed's prompt + an AG News item
LABEL_NAME = Lengths(median=3, spread=0.3, low=2, high=5)  # "Sci/Tech</s>" and friends
PRODUCT_TEXT = Lengths(median=120, spread=0.7, low=8, high=512)
IMDB_REVIEW = Lengths(median=230, spread=0.6, low=16, high=512)
CHAT_TURN = Lengths(median=200, spread=0.6, low=16, high=512)  # a templated user + assistant exchange
CHAT_PROMPT = Lengths(median=40, spread=0.5, low=4, high=128)  # a templated user message


def short(lengths: Lengths, high: int) -> Lengths:
    """The same distribution cut at `high` tokens (quick runs)."""
    return dataclasses.replace(lengths, median=min(lengths.median, high // 2), high=high)


def workloads(size: str) -> dict:
    """The training, generation and pipeline workloads of a `tiny`, `quick` or `full` run."""
    if size == "tiny":
        return {
            "training": [
                TrainingWorkload("t5-tiny", 4, 2, short(AG_NEWS_PROMPT, 64), LABEL_NAME),
                TrainingWorkload("gpt2-tiny", 4, 2, short(PRODUCT_TEXT, 32)),
                TrainingWorkload("distilbert-tiny", 4, 2, short(IMDB_REVIEW, 32), chunk_size=32),
            ],
            "generation": GenerationWorkload("t5-tiny", prompts=8, batch_size=4, max_new_tokens=4,
                                             lengths=short(AG_NEWS_PROMPT, 64)),
            "causal_generation": CausalGenerationWorkload("qwen2-tiny", prompts=8, batch_size=4, max_new_tokens=4,
                                                          lengths=short(CHAT_PROMPT, 16)),
            "pipeline": PipelineWorkload("t5-tiny", train=16, validation=8, test=8, epochs=1),
        }
    if size == "quick":
        return {
            "training": [
                TrainingWorkload("flan-t5-small", 32, 3, AG_NEWS_PROMPT, LABEL_NAME),
                TrainingWorkload("gpt2-small", 8, 3, short(PRODUCT_TEXT, 128)),
                TrainingWorkload("distilbert-base", 32, 3, IMDB_REVIEW, chunk_size=128),
                TrainingWorkload("qwen2.5-0.5b", 4, 2, short(CHAT_TURN, 64)),
            ],
            "generation": GenerationWorkload("flan-t5-small", prompts=64, batch_size=32, max_new_tokens=16,
                                             lengths=AG_NEWS_PROMPT),
            "causal_generation": CausalGenerationWorkload("qwen2.5-0.5b", prompts=8, batch_size=8, max_new_tokens=16,
                                                          lengths=CHAT_PROMPT),
            "pipeline": PipelineWorkload("flan-t5-small", train=32, validation=16, test=16),
        }
    return {
        "training": [
            TrainingWorkload("flan-t5-small", 32, 12, AG_NEWS_PROMPT, LABEL_NAME),
            TrainingWorkload("gpt2-small", 8, 8, PRODUCT_TEXT),
            TrainingWorkload("distilbert-base", 32, 8, IMDB_REVIEW, chunk_size=128),
            # Both sides' processes live at once: 4 rows up to 128 tokens fit them in 24 GiB (512 did not).
            TrainingWorkload("qwen2.5-0.5b", 4, 4, short(CHAT_TURN, 128)),
        ],
        "generation": GenerationWorkload("flan-t5-small", prompts=128, batch_size=32, max_new_tokens=32,
                                         lengths=AG_NEWS_PROMPT),
        "causal_generation": CausalGenerationWorkload("qwen2.5-0.5b", prompts=16, batch_size=8, max_new_tokens=32,
                                                      lengths=CHAT_PROMPT),
        "pipeline": PipelineWorkload("flan-t5-small", train=128, validation=64, test=64),
    }


def _ints(rows):
    return [[int(t) for t in row] for row in rows]
