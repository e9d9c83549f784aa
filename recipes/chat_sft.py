"""Chat SFT: tune a causal LM on conversations, in its own chat template, with the loss on the assistant's turns.

What TRL's `SFTTrainer` does for conversational data, with Keras models and
`model.fit`: rows of `messages` (a list of {role, content}, as chat datasets
on the hub have them) or prompt/completion pairs (a user turn and the
assistant's answer) are rendered with the model's own chat template, exactly
as transformers' `apply_chat_template` renders them, and tokenized; the loss
counts only the assistant's tokens (`data.loss_on = "assistant"`, with each
turn's end-of-turn token, so the model learns to stop), or every token
(`"all"`). Batches are bucketed by length and padded to the longest row, or
(`data.pack`) conversations are packed into full rows with attention kept
inside each one.
Before and after training it measures the eval loss on the held-out
conversations' assistant tokens and answers their prompts (greedy, stopping
at the template's end-of-turn token); the tuned model is saved with its
template, so `kerastune generate` and export apply the same one.

Run: kerastune run chat_sft [--config FILE] [--set key=value ...]
     python recipes/chat_sft.py [--config FILE] [--set key=value ...]
Settings: chat_sft.toml beside this file.
"""

import dataclasses
import json
import typing

import kerastune.quiet  # noqa: F401  (first: TensorFlow's load-time log lines only with --debug)
from kerastune.config import (
    DataConfig,
    DistributionConfig,
    EvalConfig,
    GenerationConfig,
    LMTrainConfig,
    LoraConfig,
    ModelConfig,
    RecipeConfig,
)
from kerastune.data import limit_rows, load_splits, require_rows, split_off
from kerastune.data.causal_lm import causal_lm_dataset
from kerastune.data.chat import read_conversations
from kerastune.data.packing import pack, packed_dataset
from kerastune.errors import KerastuneError
from kerastune.generation.chat import answer, chat_generator
from kerastune.metrics.perplexity import exp_loss, masked_cross_entropy
from kerastune.models import load_recipe_model
from kerastune.models.causal_training import CausalLMForTraining, check_packing
from kerastune.models.chat_templates import load_chat_template, save_chat_template
from kerastune.models.lora import adapt, merged_for_saving, parameter_report, save_adapters
from kerastune.runtime import set_precision, set_seed
from kerastune.training import BestMetric, count_batches, create_optimizer, fit, without_preprocessor
from kerastune.training.run_dir import start_run, write_metrics

RECIPE = "chat_sft"
LOSS_ON = ("assistant", "all")


@dataclasses.dataclass
class Data(DataConfig):
    split: str
    messages_column: str  # a list of {role, content} per row (or its JSON text)
    prompt_column: str  # used when there is no messages column: the user's turn ...
    completion_column: str  # ... and the assistant's answer
    loss_on: str  # assistant | all
    validation_size: float  # fraction held out when the dataset has no validation split
    max_train_samples: int  # 0 = all
    max_eval_samples: int
    max_length: int  # tokens per conversation; longer ones are cut (and counted)
    pack: bool  # join conversations into rows of max_length tokens, attention kept inside each

    def __post_init__(self):
        if self.loss_on not in LOSS_ON:
            raise KerastuneError(f"data.loss_on must be one of {', '.join(LOSS_ON)}, got '{self.loss_on}'")


@dataclasses.dataclass
class Chat:
    SECTION: typing.ClassVar[str] = "chat"
    template: str  # a .jinja file or a checkpoint folder holding one ("" = the model's own)


@dataclasses.dataclass
class Generation(GenerationConfig):
    num_prompts: int  # held-out conversations answered before and after training


@dataclasses.dataclass
class Config(RecipeConfig):
    model: ModelConfig
    lora: LoraConfig
    data: Data
    chat: Chat
    train: LMTrainConfig
    eval: EvalConfig
    generation: Generation
    distribution: DistributionConfig


def encode(chat, conversations, tokenizer, loss_on: str, max_length: int):
    """(ids, loss masks, conversations cut at max_length, dropped: nothing left to learn after the cut)."""
    rendered = []
    for conversation in conversations:
        if loss_on == "assistant":
            rendered.append(chat.assistant_spans(conversation))
        else:
            text = chat.render(conversation)
            rendered.append((text, [(0, len(text))]))
    examples, masks, cut, dropped = [], [], 0, 0
    for ids, mask in chat.encode(rendered, tokenizer):
        cut += len(ids) > max_length
        ids, mask = ids[:max_length], mask[:max_length]
        if sum(mask[1:]) == 0:  # no label left to learn (a label is a token after the first)
            dropped += 1
            continue
        examples.append(ids)
        masks.append(mask)
    return examples, masks, cut, dropped


def answer_prompts(generator, chat, conversations) -> list[dict]:
    """Each conversation up to its last assistant turn, answered by the model, beside the reference answer."""
    items = []
    for conversation in conversations:
        last = max(i for i, m in enumerate(conversation) if m["role"] == "assistant")
        items.append({"messages": conversation[:last], "reference": conversation[last]["content"]})
    answers = answer(generator, chat, [item["messages"] for item in items])
    return [{**item, "answer": text} for item, text in zip(items, answers)]


def show_answers(answers, when):
    print(f"\nAnswers {when} training ({len(answers)} held-out prompts):")
    for item in answers:
        question = str(item["messages"][-1].get("content", ""))
        print(f"--- user:      {question[:160]}\n    reference: {item['reference'][:160]}\n"
              f"    answer:    {item['answer'][:160]}")


def main(config: Config) -> dict:
    data, train_settings = config.data, config.train
    set_seed(config.seed)
    set_precision(config.model.precision)
    run_dir = start_run(config)

    # The conversations: a messages column, or prompt/completion pairs; 10% held out.
    splits = load_splits(data.dataset, data.config, data.split, data.revision)
    require_rows(splits["train"], "train")
    if "validation" not in splits:
        splits["train"], splits["validation"] = split_off(splits["train"], data.validation_size, config.seed,
                                                          "validation")
    train_chats, dropped_train = read_conversations(limit_rows(splits["train"], data.max_train_samples), data, "train")
    eval_chats, dropped_eval = read_conversations(limit_rows(splits["validation"], data.max_eval_samples), data,
                                                  "validation")
    print(f"{len(train_chats)} train / {len(eval_chats)} validation conversations; dropped "
          f"{dropped_train + dropped_eval} with no assistant text")

    # The model and its chat template; the conversations as tokens and loss masks.
    texts = [m["content"] for c in train_chats for m in c if isinstance(m.get("content"), str)]

    def load_base():
        return load_recipe_model(RECIPE, config.model.name, "causal_lm", texts=texts,
                                 vocab_size=config.model.tiny_vocab_size, sequence_length=data.max_length,
                                 revision=config.model.revision)

    model = load_base()
    adapted = adapt(model, config.lora, seed=config.seed)  # LoRA: only adapters train (on a quantized base)
    if adapted:
        print(parameter_report(model))
    tokenizer = model.preprocessor.tokenizer
    chat = load_chat_template(config.model.name, model, config.model.revision, config.chat.template)
    if data.pack:
        check_packing(model)
    max_length = min(data.max_length, getattr(model.backbone, "max_sequence_length", None) or data.max_length)
    train_ids, train_masks, train_cut, train_dropped = encode(chat, train_chats, tokenizer, data.loss_on, max_length)
    eval_ids, eval_masks, eval_cut, eval_dropped = encode(chat, eval_chats, tokenizer, data.loss_on, max_length)
    print(f"{len(train_ids)} train / {len(eval_ids)} validation sequences of at most {max_length} tokens; "
          f"loss on {'the assistant turns' if data.loss_on == 'assistant' else 'every token'}; "
          f"{train_cut + eval_cut} cut at max_length, {train_dropped + eval_dropped} dropped (no label left)")
    if not train_ids or not eval_ids:
        raise KerastuneError("no conversation has an assistant token to learn within max_length in one split")
    if data.pack:  # rows of whole conversations; attention and labels stay inside each (models/causal_training.py)
        rows, row_masks, segments = pack(train_ids, train_masks, max_length)
        print(f"packed the {len(train_ids)} train sequences into {len(rows)} rows")
        train_ds = packed_dataset(rows, row_masks, segments, train_settings.batch_size, max_length, seed=config.seed,
                                  static_shapes=data.static_shapes)
    else:
        train_ds = causal_lm_dataset(train_ids, train_settings.batch_size, max_length, seed=config.seed,
                                     static_shapes=data.static_shapes, loss_masks=train_masks)
    eval_ds = causal_lm_dataset(eval_ids, config.eval.batch_size, max_length, shuffle=False, loss_masks=eval_masks)
    trainer = model
    if data.pack or train_settings.remat or train_settings.loss_chunk_size:  # models/causal_training.py
        trainer = CausalLMForTraining(model, packed=data.pack, remat=train_settings.remat,
                                      loss_chunk_size=train_settings.loss_chunk_size, max_length=max_length)

    # Before: eval loss on the assistant tokens, and answers to held-out prompts.
    generator = chat_generator(model, chat, max_new_tokens=config.generation.max_new_tokens,
                               num_beams=config.generation.num_beams,
                               sampler="beam" if config.generation.num_beams > 1 else "greedy", seed=config.seed)
    prompts = [c for c in eval_chats if any(m["role"] == "assistant" for m in c)][: config.generation.num_prompts]
    loss_before = masked_cross_entropy(model, eval_ds)
    print(f"Eval loss before training: {loss_before:.4f} (perplexity {exp_loss(loss_before):.2f})")
    before = answer_prompts(generator, chat, prompts)
    show_answers(before, "before")

    # Fine-tune, evaluating every epoch; keep the best epoch's weights.
    accumulation = train_settings.gradient_accumulation_steps  # batches per update: the schedule counts updates
    optimizer = create_optimizer(train_settings.learning_rate,
                                 count_batches(train_ds) * train_settings.epochs // accumulation,
                                 train_settings.warmup_steps, train_settings.weight_decay, model, accumulation)
    best = BestMetric(run_dir / "best.json", monitor="val_loss", mode="min", weights_path=run_dir / "best.npz")
    fit(trainer, train_ds, epochs=train_settings.epochs, run_dir=run_dir, optimizer=optimizer,
        validation_data=eval_ds, callbacks=[best], resume=train_settings.resume,
        keep_checkpoints=train_settings.keep_checkpoints)
    with without_preprocessor(trainer):
        restored = best.restore_weights(trainer)
    if restored:
        print(f"Restored the best weights: epoch {best.best()['epoch']} (val_loss {best.best()['value']:.4f})")

    # After: the same measurements; the model is saved with its template.
    loss_after = masked_cross_entropy(model, eval_ds)
    print(f"Eval loss after training: {loss_after:.4f} (perplexity {exp_loss(loss_after):.2f})")
    after = answer_prompts(generator, chat, prompts)
    show_answers(after, "after")
    answers = [{**b, "answer_before": b["answer"], "answer_after": a["answer"]} for b, a in zip(before, after)]
    for item in answers:
        del item["answer"]
    (run_dir / "answers.json").write_text(json.dumps(answers, indent=2, ensure_ascii=False) + "\n")

    if adapted:  # the adapters alone (PEFT's files), and the model with them merged
        save_adapters(model, run_dir / "adapters", base_model=config.model.name)
        model = merged_for_saving(model, run_dir / "adapters", load_base)
    model.save_to_preset(str(run_dir / "model"))
    save_chat_template(run_dir / "model", chat)
    metrics = write_metrics(run_dir, config, {
        "eval_loss_before": loss_before, "perplexity_before": exp_loss(loss_before),
        "eval_loss": loss_after, "perplexity": exp_loss(loss_after),
        "eval_loss_after": loss_after, "perplexity_after": exp_loss(loss_after),
        "best_epoch": best.best().get("epoch", 0), "train_sequences": len(train_ids),
        "eval_sequences": len(eval_ids), "cut_at_max_length": train_cut + eval_cut,
        "dropped_no_label": train_dropped + eval_dropped,
    })
    print("\n" + "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return metrics


if __name__ == "__main__":
    from kerastune.cli import run_script

    run_script(__name__)
