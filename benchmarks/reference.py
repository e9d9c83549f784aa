"""The transformers + PyTorch way, measured by `kerastune bench` against kerastune.

Checkpoints: transformers models with seeded random weights, saved with
`save_pretrained` beside small offline tokenizer files, so kerastune loads
the same weights with `load_model(dir)`. Training is a plain PyTorch loop
with dynamic padding (pad each batch to its longest row, labels -100 on
padding: what Trainer's collators do; the masked-LM notebook's chunks need none).
Generation is `model.generate` on batches padded to their longest prompt (left-padded
for the decoder-only model).
Items follow worker.py's protocol, as keras_side.py's do. The notebook pipeline is the
instruction-tuning seed's own code path: padding to 400, `Seq2SeqTrainer`,
then batched beam-5 `generate` with max_length 50.
"""

import time
from pathlib import Path

import torch

from benchmarks.workloads import MODELS


def write_checkpoint(model: str, path, texts) -> Path:
    """A transformers checkpoint of `model`'s shape (seed 0) and tokenizer files trained on `texts`."""
    from transformers import (
        DistilBertConfig,
        DistilBertForMaskedLM,
        GPT2Config,
        GPT2LMHeadModel,
        Qwen2Config,
        Qwen2ForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    family, config = MODELS[model]
    torch.manual_seed(0)
    if family == "t5":
        from kerastune.models.t5.tiny import train_sentencepiece

        (path / "spiece.model").write_bytes(train_sentencepiece(texts, vocab_size=2000))
        network = T5ForConditionalGeneration(T5Config(**config))
    elif family == "gpt2":
        from kerastune.models.gpt2.tokenizer import train_byte_level_bpe, write_vocabulary

        write_vocabulary(*train_byte_level_bpe(texts, vocab_size=1000), path)
        network = GPT2LMHeadModel(GPT2Config(**config))
    elif family == "qwen2":
        _write_qwen_tokenizer(path, texts)
        network = Qwen2ForCausalLM(Qwen2Config(**config))
    else:  # a WordPiece vocabulary with BERT's special ids and the model's full size
        special = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
        words = [special.get(i, f"[unused{i}]" if i < 1000 else f"w{i}") for i in range(config["vocab_size"])]
        (path / "vocab.txt").write_text("\n".join(words) + "\n")
        (path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
        network = DistilBertForMaskedLM(DistilBertConfig(**config))
    network.save_pretrained(path)
    return path


def _write_qwen_tokenizer(path: Path, texts):
    """Qwen's tokenizer files (tokenizer.json, tokenizer_config.json): a byte-level BPE trained on `texts`, with
    Qwen's special tokens, `<|endoftext|>` (id 0) the end token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                            pad_token="<|endoftext|>").save_pretrained(path)


def matmul_peak(size=2048, repeats=10) -> float:
    """Best fp32 GFLOP/s of a (size x size) matmul in PyTorch."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _pad(rows, value):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _training_batch(family, rows, targets=None, collator=None):
    """One dynamically padded batch, as transformers' collators build it."""
    if family == "t5":
        ids = _pad(rows, 0)
        return dict(input_ids=ids, attention_mask=(ids != 0).long(), labels=_pad(targets, -100))
    if family in ("gpt2", "qwen2"):
        ids, mask = _pad(rows, rows[0][-1]), _pad([[1] * len(r) for r in rows], 0)  # padded with the end token
        return dict(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
    return collator([{"input_ids": r} for r in rows])  # DataCollatorForLanguageModeling: pad, then mask 15%


class Training:
    """A plain PyTorch loop over the workload's batches: a warm-up pass, then each `repeat` times one pass."""

    def __init__(self, workload, path):
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForMaskedLM,
            DataCollatorForLanguageModeling,
            DistilBertTokenizerFast,
            T5ForConditionalGeneration,
        )

        started = time.perf_counter()
        self.family, _ = MODELS[workload.model]
        self.examples, self.size = workload.examples(), workload.batch_size
        torch.manual_seed(0)
        self.collator = None
        if self.family == "t5":
            self.model = T5ForConditionalGeneration.from_pretrained(path)
        elif self.family in ("gpt2", "qwen2"):
            self.model = AutoModelForCausalLM.from_pretrained(path)
        else:  # the masked-LM notebook's collator: 15% of tokens, 80/10/10
            self.model = AutoModelForMaskedLM.from_pretrained(path)
            tokenizer = DistilBertTokenizerFast(vocab_file=str(Path(path) / "vocab.txt"))
            self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")
        self.model.train()
        # No weight decay, as kerastune's side (the same arithmetic; it costs PyTorch next to nothing).
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5, eps=1e-8, weight_decay=0.0)
        self.load_seconds = time.perf_counter() - started

    def _pass(self) -> float:
        started, self.first_step = time.perf_counter(), None
        inputs = self.examples["inputs"]
        for first in range(0, len(inputs), self.size):
            rows = inputs[first : first + self.size]
            targets = self.examples["targets"][first : first + self.size] if self.family == "t5" else None
            loss = self.model(**_training_batch(self.family, rows, targets, self.collator)).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
            if self.first_step is None:
                self.first_step = time.perf_counter() - started
        return time.perf_counter() - started

    def setup(self) -> dict:
        warmup = self._pass()
        return {"load_seconds": self.load_seconds, "first_step_seconds": self.first_step, "warmup_seconds": warmup,
                "steps": -(-len(self.examples["inputs"]) // self.size)}

    def repeat(self) -> dict:
        return {"seconds": self._pass()}

    def finish(self) -> dict:
        return {}


class Generation:
    """`model.generate` on batches padded to their longest prompt: a warm-up pass, then timed passes."""

    def __init__(self, workload, path, num_beams):
        from transformers import T5ForConditionalGeneration

        started = time.perf_counter()
        self.model = T5ForConditionalGeneration.from_pretrained(path).eval()
        self.workload, self.num_beams = workload, num_beams
        self.prompts = workload.prompt_ids()
        self.load_seconds = time.perf_counter() - started

    @torch.no_grad()
    def _batch(self, batch):
        ids = _pad(batch, 0)
        beam = dict(num_beams=self.num_beams, early_stopping=True) if self.num_beams > 1 else {}
        out = self.model.generate(input_ids=ids, attention_mask=(ids != 0).long(), do_sample=False,
                                  max_new_tokens=self.workload.max_new_tokens, **beam)
        return [[int(t) for t in row[1:]] for row in out]

    def _pass(self) -> float:
        started, size = time.perf_counter(), self.workload.batch_size
        self.outputs = []
        for first in range(0, len(self.prompts), size):
            self.outputs += self._batch(self.prompts[first : first + size])
        return time.perf_counter() - started

    def setup(self) -> dict:
        return {"load_seconds": self.load_seconds, "warmup_seconds": self._pass()}

    def repeat(self) -> dict:
        return {"seconds": self._pass()}

    def finish(self) -> dict:
        return {"outputs": self.outputs}


class CausalGeneration(Generation):
    """Greedy `model.generate` on batches of prompts left-padded to their longest (how transformers batches a
    decoder-only model's prompts): a warm-up pass, then timed passes."""

    def __init__(self, workload, path):
        from transformers import AutoModelForCausalLM

        started = time.perf_counter()
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.workload, self.prompts = workload, workload.prompt_ids()
        self.eos = self.model.config.eos_token_id
        self.load_seconds = time.perf_counter() - started

    @torch.no_grad()
    def _batch(self, batch):
        width = max(map(len, batch))
        ids = torch.tensor([[self.eos] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        out = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                                  max_new_tokens=self.workload.max_new_tokens, eos_token_id=self.eos,
                                  pad_token_id=self.eos)
        news = [row[width:] for row in out.tolist()]
        return [new[: new.index(self.eos) + 1] if self.eos in new else new for new in news]


def notebook_pipeline(workload, path, splits, prompt, labels, output_dir) -> dict:
    """The instruction-tuning seed, cell by cell: tokenize padding to 400 (labels -100), Seq2SeqTrainer
    (batch 32, lr 1e-5, eval loss every epoch), then exact match of beam-5, max_length-50 generations
    in batches of 12 on validation and test (the seed also scores train; left out, as the recipe does not)."""
    import datasets
    from transformers import (
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        T5ForConditionalGeneration,
    )

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = T5ForConditionalGeneration.from_pretrained(path)

    def with_prompts(rows):
        return datasets.Dataset.from_dict({
            "prompt": [prompt.format(text=r["text"].replace("\\", " ")) for r in rows],
            "labelText": [labels[int(r["label"])] for r in rows],
        })

    data = datasets.DatasetDict({name: with_prompts(rows) for name, rows in splits.items()})

    def preprocess_function(sample, padding="max_length"):
        model_inputs = tokenizer(sample["prompt"], max_length=400, padding=padding, truncation=True)
        targets = tokenizer(text_target=sample["labelText"], max_length=400, padding=padding, truncation=True)
        targets["input_ids"] = [[(t if t != tokenizer.pad_token_id else -100) for t in label]
                                for label in targets["input_ids"]]
        model_inputs["labels"] = targets["input_ids"]
        return model_inputs

    tokenized = data.map(preprocess_function, batched=True, remove_columns=["prompt", "labelText"])
    # The seed's batch 32 at 416 tokens (400, then the collator's multiple of 32) needs more than this
    # CPU machine's 24 GiB: the kernel kills the process, which auto_find_batch_size (CUDA OOM) cannot catch.
    # 4 accumulated batches of 8 do the same arithmetic per optimizer step.
    args = Seq2SeqTrainingArguments(
        do_train=True, do_eval=True, eval_strategy="epoch", logging_strategy="epoch", save_strategy="no",
        per_device_train_batch_size=8, per_device_eval_batch_size=32, auto_find_batch_size=True,
        dataloader_pin_memory=False,
        gradient_accumulation_steps=4, learning_rate=1e-5, num_train_epochs=workload.epochs,
        output_dir=str(output_dir), report_to="none", disable_tqdm=True,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=32)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=tokenized["train"],
                             eval_dataset=tokenized["validation"], data_collator=collator)
    model.config.use_cache = False
    trainer.train()
    trained = time.perf_counter()

    model.eval()
    accuracy = {}
    for name in ("validation", "test"):
        split, matches = data[name], 0
        for first in range(0, len(split), 12):
            batch = split[first : first + 12]
            inputs = tokenizer(batch["prompt"], return_tensors="pt", padding=True, truncation=True)
            with torch.no_grad():
                out = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                     max_length=50, num_beams=5, early_stopping=True, return_dict_in_generate=True)
            texts = [tokenizer.decode(seq, skip_special_tokens=True) for seq in out.sequences]
            matches += sum(g.strip() == t.strip() for g, t in zip(texts, batch["labelText"]))
        accuracy[f"{name}_accuracy"] = matches / len(split)
    ended = time.perf_counter()
    return {"seconds": ended - started, "train_seconds": trained - started, "evaluate_seconds": ended - trained,
            **accuracy}

