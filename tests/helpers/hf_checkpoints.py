"""HF checkpoints in the weight formats hub repositories have, written from a transformers model.

transformers 5 saves only safetensors; the `.bin` files here are what
transformers 4 (and every checkpoint from before safetensors) wrote:
`torch.save(model.state_dict())`, in torch's zip format or its legacy
(pre-1.6) one, whole or cut into shards with a `pytorch_model.bin.index.json`.
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def copy_side_files(source, target):
    """Config and tokenizer files, without weights."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for file in Path(source).iterdir():
        if file.is_file() and file.name not in WEIGHT_FILES and not file.name.startswith(("model-", "pytorch_model")):
            shutil.copy(file, target / file.name)
    return target


def _shards(state: dict, count: int) -> list[dict]:
    names = list(state)
    size = -(-len(names) // count)
    return [{n: state[n] for n in names[i : i + size]} for i in range(0, len(names), size)]


def write_bin(model, source, target, legacy=False, shards=1):
    """`pytorch_model.bin` (or `count` shards and an index) from the model's full state dict (tied weights
    share a storage, as in real checkpoints)."""
    target = copy_side_files(source, target)
    state = model.state_dict()
    options = {"_use_new_zipfile_serialization": False} if legacy else {}
    if shards == 1:
        torch.save(state, target / "pytorch_model.bin", **options)
        return target
    parts = _shards(state, shards)
    weight_map = {}
    for i, part in enumerate(parts, 1):
        name = f"pytorch_model-{i:05d}-of-{len(parts):05d}.bin"
        torch.save(part, target / name, **options)
        weight_map.update(dict.fromkeys(part, name))
    (target / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return target


def write_safetensors(model, source, target, dtype=torch.float32, shards=1):
    """Safetensors in another dtype (bfloat16, float16) or cut into shards with an index."""
    target = copy_side_files(source, target)
    state, seen = {}, {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # safetensors refuses shared storage: keep the first (tied weights)
            continue
        seen[tensor.data_ptr()] = name
        state[name] = tensor.detach().to(dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
    if shards == 1:
        save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
        return target
    parts = _shards(state, shards)
    weight_map = {}
    for i, part in enumerate(parts, 1):
        name = f"model-{i:05d}-of-{len(parts):05d}.safetensors"
        save_file(part, str(target / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (target / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return target


# Per family: (special tokens, the start token or None, the end token). Llama 3's tokenizer puts
# <|begin_of_text|> before every text; Qwen's puts nothing.
DECODER_TOKENS = {
    "llama": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
              "<|begin_of_text|>", "<|end_of_text|>"),
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|endoftext|>"),
}


def write_hf_decoder(path, family, texts, vocab_size=300, seed=0, train_steps=0, initializer_range=0.2):
    """A tiny transformers `LlamaForCausalLM`, `Qwen2ForCausalLM` or `Gemma2ForCausalLM` (grouped-query
    attention, rotary positions) with the tokenizer files keras-hub's converters read: a byte-level BPE
    `tokenizer.json` (Llama, Qwen) or a SentencePiece `tokenizer.model` in Gemma's layout, trained on `texts`.

    Random weights repeat a few tokens and never stop; `train_steps` of next-token training on the texts' first
    words (each ending with the end token) give varied continuations that stop at different steps, which
    generation parity needs. The initialisation is wider than transformers' by default (std 0.2, not 0.02) so the top
    logits are not near-ties that float rounding could swap.
    """
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    encode, ids = (_write_sentencepiece if family == "gemma2" else _write_byte_level_bpe)(path, family, texts,
                                                                                            vocab_size)
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256, initializer_range=initializer_range)
    torch.manual_seed(seed)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**ids, **shape, rms_norm_eps=1e-5, rope_theta=500000.0,
                                             tie_word_embeddings=False))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**ids, **shape, rms_norm_eps=1e-6, rope_theta=1000000.0,
                                             tie_word_embeddings=False))
    else:  # Gemma 2: head size 16 = query_pre_attn_scalar, soft caps, a tied head
        model = Gemma2ForCausalLM(Gemma2Config(**ids, **shape, head_dim=16, query_pre_attn_scalar=16,
                                               final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                                               sliding_window=4096))
    if train_steps:  # on the first 3 to 8 words of each text, so the end token comes early and at varied steps
        snippets = [" ".join(t.split()[: 3 + i % 6]) for i, t in enumerate(texts)]
        _train_causal(model, [encode(t) + [ids["eos_token_id"]] for t in snippets], train_steps, seed)
    model.eval()
    model.save_pretrained(path)
    return model


def _write_byte_level_bpe(path, family, texts, vocab_size):
    """tokenizer.json (+ tokenizer_config.json) with the family's special tokens; (encode, token ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special, start, end = DECODER_TOKENS[family]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if start:
        start_id = tokenizer.token_to_id(start)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{start} $A", pair=f"{start} $A {start} $B", special_tokens=[(start, start_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=start, eos_token=end, pad_token=end)
    fast.save_pretrained(path)
    ids = {"vocab_size": tokenizer.get_vocab_size(), "eos_token_id": tokenizer.token_to_id(end),
           "bos_token_id": tokenizer.token_to_id(start) if start else None, "pad_token_id": None}
    return (lambda text: fast(text)["input_ids"]), ids


def _write_sentencepiece(path, family, texts, vocab_size):
    """tokenizer.model in Gemma's layout (<pad> 0, <eos> 1, <bos> 2, <unk> 3); (encode with <bos>, ids)."""
    import sentencepiece as spm

    from kerastune.models.t5.tiny import train_sentencepiece

    proto = train_sentencepiece(texts, vocab_size, eos_piece="<eos>", bos_piece="<bos>")
    (path / "tokenizer.model").write_bytes(proto)
    processor = spm.SentencePieceProcessor(model_proto=proto)
    ids = {"vocab_size": processor.get_piece_size(), "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
    return (lambda text: [2] + processor.encode(text)), ids


def _train_causal(model, sequences, steps, seed, batch_size=8, length=40):
    """`steps` AdamW steps (lr 3e-3) of next-token training on `sequences` cut at `length` tokens."""
    import random

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        rows = [s[:length] for s in rng.sample(sequences, batch_size)]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def write_hf_qwen2(path, texts, vocab_size=300, seed=0):
    """An untrained tiny Qwen2 (`write_hf_decoder`), standing for the families loaded through keras-hub."""
    return write_hf_decoder(path, "qwen2", texts, vocab_size=vocab_size, seed=seed, initializer_range=0.02)


def write_hf_distilbert(path, texts, vocab_size=300, seed=0):
    """A tiny transformers `DistilBertForMaskedLM` with a WordPiece `vocab.txt` trained on `texts`."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    from kerastune.models.distilbert.tiny import train_wordpiece

    path = Path(path)
    vocab = train_wordpiece(texts, vocab_size=vocab_size)
    torch.manual_seed(seed)
    config = DistilBertConfig(vocab_size=len(vocab), dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                              max_position_embeddings=128)
    model = DistilBertForMaskedLM(config).eval()
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return model


def write_hf_roberta_classifier(path, texts, max_position_embeddings=130, seed=0):
    """A tiny transformers `RobertaForSequenceClassification` (labels nothate / hate, like the detox reward
    model) with a byte-level BPE `vocab.json` + `merges.txt` trained on `texts`."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from kerastune.models.gpt2.tokenizer import train_byte_level_bpe, write_vocabulary
    from kerastune.models.roberta.tiny import SPECIAL_TOKENS

    vocabulary, merges = train_byte_level_bpe(texts, 400, special_tokens=SPECIAL_TOKENS)
    write_vocabulary(vocabulary, merges, path)
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=len(vocabulary), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=128, max_position_embeddings=max_position_embeddings, type_vocab_size=1,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2,
                           id2label={0: "nothate", 1: "hate"}, label2id={"nothate": 0, "hate": 1})
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(path)
    return model


PROMPT = "Given the following text:{text}\nPredict its corresponding category (World, Sports, Business, Sci/Tech):"


def cached_checkpoint(request, kind: str, settings: dict, data: bytes, write) -> Path:
    """`write(path)` once per test session pair: the directory goes into pytest's cache, keyed by the
    settings and the data, so the JAX pass reuses what the TensorFlow pass trained (minutes of PyTorch)."""
    import hashlib

    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode() + data).hexdigest()[:16]
    path = Path(request.config.cache.mkdir(f"{kind}_{key}"))
    if not (path / "done").is_file():
        write(path)
        (path / "done").write_text("")
    return path


def trained_hf_t5(request, proto, **kwargs):
    """`write_hf_t5`, cached: (directory, transformers model loaded from it)."""
    from transformers import T5ForConditionalGeneration

    path = cached_checkpoint(request, "hf_t5", kwargs, proto, lambda path: write_hf_t5(path, proto, **kwargs))
    return path, T5ForConditionalGeneration.from_pretrained(str(path)).eval()


def trained_hf_gpt2(request, texts, **kwargs):
    """`write_hf_gpt2`, cached: (directory, transformers model loaded from it)."""
    from transformers import GPT2LMHeadModel

    data = "\n".join(texts).encode()
    path = cached_checkpoint(request, "hf_gpt2", kwargs, data, lambda path: write_hf_gpt2(path, texts, **kwargs))
    return path, GPT2LMHeadModel.from_pretrained(str(path)).eval()


def write_hf_t5(path, proto, seed=0, train_steps=0, copy_words=(1, 6), **config):
    """A transformers T5 saved with `save_pretrained`, plus `spiece.model`.

    Random weights make a T5 repeat one token forever; `train_steps` of a
    copy-the-first-words task make it emit varied tokens and stop at
    different steps, which is what generation parity needs to be tested on.
    """
    import random

    import sentencepiece as spm
    from make_news_sample import make_rows

    from helpers import hf_reference

    sp = spm.SentencePieceProcessor(model_proto=proto)
    model = hf_reference.tiny_hf_t5(sp.get_piece_size(), seed=seed, **config)
    if train_steps:
        rng = random.Random(seed)
        rows = make_rows(train_steps * 16, seed=seed)
        sources = [r["text"] for r in rows]
        targets = [" ".join(t.split()[2 : 2 + rng.randint(*copy_words)]) for t in sources]
        hf_reference.train(
            model, hf_reference.encode(sp, sources), hf_reference.encode(sp, targets),
            epochs=1, lr=3e-3, batch_size=16, seed=seed,
        )
    model.eval()
    model.save_pretrained(path)
    Path(path, "spiece.model").write_bytes(proto)
    return model


def write_hf_gpt2(path, texts, vocab_size=400, seed=0, train_steps=0, **config):
    """A transformers GPT2LMHeadModel saved with `save_pretrained`, plus `vocab.json` / `merges.txt`.

    `train_steps` of next-token training on single sentences ending in
    `<|endoftext|>` give peaked distributions and outputs that stop at
    different steps, which generation parity needs.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from kerastune.models.gpt2.tokenizer import train_byte_level_bpe, write_vocabulary

    vocabulary, merges = train_byte_level_bpe(texts, vocab_size)
    write_vocabulary(vocabulary, merges, path)
    torch.manual_seed(seed)
    settings = dict(n_positions=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocabulary), **{**settings, **config}))
    model.config.save_pretrained(path)  # AutoTokenizer reads model_type from config.json
    if train_steps:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        sentences = [s.strip() + "." for t in texts for s in t.split(".") if s.strip()]
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(train_steps):
            ids = tokenizer(sentences[step % len(sentences)])["input_ids"] + [0]
            batch = torch.tensor([ids])
            model(batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    model.save_pretrained(path)
    return model
