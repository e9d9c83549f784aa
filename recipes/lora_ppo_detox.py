"""LoRA + PPO detoxification: make FLAN-T5's dialogue summaries less toxic against a hate-speech reward model.

The steps of the PEFT + PPO detox lab, in Keras: keep
DialogSum dialogues of 200 < chars <= 1000, wrap them in the summarization
prompt, split 80/20 without shuffling; put LoRA adapters (r 32, alpha 32)
on the attention query and value projections; (stage 1) fine-tune the
adapter for summarization and score ROUGE before/after (the notebook
downloaded such an adapter); measure toxicity = P(hate) of `query + " " +
response` from the RoBERTa hate-speech classifier; (stage 2) run PPO with
reward = the classifier's `nothate` logit of `query + response`; measure
toxicity again and compare responses before and after.
What changed: rollouts are sampled for the whole batch in one compiled call
(the notebook generated one prompt at a time), the reference model is the
policy with its adapters off (no copy), and every PPO step is logged,
plotted and checkpointed so an interrupted run resumes.

Run: kerastune run lora_ppo_detox [--config FILE] [--set key=value ...]
"""

import dataclasses
import math
import time

from kerastune.config import BaseConfig
from kerastune.data import load_splits, prepare_tf_dataset, render, require_columns, require_rows
from kerastune.errors import KerastuneError
from kerastune.generation.seq2seq import Seq2SeqGenerator
from kerastune.metrics import rouge
from kerastune.metrics.toxicity import ToxicityScorer, improvement_pct, toxicity_summary
from kerastune.models import load_model, load_recipe_model
from kerastune.models.labels import save_labels
from kerastune.models.load import model_kind
from kerastune.models.lora import enable_lora, import_peft_adapter, load_adapters, parameter_report, save_adapters
from kerastune.rl.evaluation import comparison_table, sampled_toxicity
from kerastune.rl.loop import run_ppo
from kerastune.rl.policy import Seq2SeqValuePolicy
from kerastune.rl.ppo_trainer import PPOTrainer
from kerastune.runtime import set_precision, set_seed
from kerastune.training import create_optimizer, fit
from kerastune.training.callbacks import plot_history
from kerastune.training.classifier import train_classifier
from kerastune.training.run_dir import start_run, write_metrics

# Tiny random models learn from scratch and ramble: a stand-in for pretraining, a faster adapter, short responses.
TINY_MODEL_DEFAULTS = {
    "pretrain_epochs": 2, "sft_learning_rate": 3e-3, "sft_epochs": 6, "ppo_learning_rate": 1e-3,
    "output_min_length": 16, "output_max_length": 40, "toxicity_max_new_tokens": 40, "max_target_length": 48,
    "tiny_vocab_size": 800,
}

PROMPT = "\nSummarize the following conversation.\n\n{dialogue}\n\nSummary:\n"
PPO_PLOTS = ["objective/kl", "objective/kl_coef", "objective/entropy", "ppo/mean_scores", "ppo/returns/mean",
             "ppo/policy/advantages_mean", "ppo/loss/policy", "ppo/loss/value", "ppo/policy/clipfrac"]


@dataclasses.dataclass
class Config(BaseConfig):
    recipe: str = "lora_ppo_detox"
    model: str = "google/flan-t5-base"
    dataset: str = "knkarthick/dialogsum"
    dataset_split: str = "train"
    output_dir: str = "runs/lora_ppo_detox"
    dialogue_column: str = "dialogue"
    summary_column: str = "summary"
    min_dialogue_chars: int = 200  # keep 200 < len(dialogue) <= 1000, as the seed
    max_dialogue_chars: int = 1000
    test_size: float = 0.2
    prompt: str = PROMPT
    max_source_length: int = 512
    max_target_length: int = 128
    tiny_vocab_size: int = 4000
    # tiny-* models only: PPO's reference is the base model, which for a random model is no summarizer at
    # all (KL in the hundreds); these epochs train all its weights on the summaries first, standing in for
    # FLAN-T5's pretraining. 0 for pretrained checkpoints.
    pretrain_epochs: int = 0
    pretrain_learning_rate: float = 3e-3
    # LoRA (the seed's LoraConfig: r 32, alpha 32, q and v, dropout 0.05 - see README: Keras LoRA has no dropout).
    lora_rank: int = 32
    lora_alpha: float = 32.0
    lora_targets: list[str] = dataclasses.field(default_factory=lambda: ["query_projector", "value_projector"])
    adapter: str = ""  # start from a PEFT adapter directory or a kerastune adapters file
    # Stage 1: the summarization adapter.
    sft_epochs: int = 1
    sft_learning_rate: float = 1e-3
    sft_batch_size: int = 8
    rouge_samples: int = 100
    # The reward model.
    reward_model: str = "facebook/roberta-hate-speech-dynabench-r4-target"
    reward_model_revision: str = ""
    reward_dataset: str = ""  # text,label CSV; needed only to train a tiny-* reward model
    reward_epochs: int = 8
    reward_learning_rate: float = 2e-3
    toxic_label: str = "hate"
    reward_label: str = "nothate"
    reward_batch_size: int = 16
    # Stage 2: PPO (trl 0.11's PPOConfig as the seed set it).
    ppo_steps: int = 10
    ppo_learning_rate: float = 1.41e-5
    ppo_batch_size: int = 16
    mini_batch_size: int = 4
    ppo_epochs: int = 1
    init_kl_coef: float = 0.2
    adaptive_kl: bool = True
    kl_target: float = 6.0
    kl_horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    value_dropout: float = 0.1
    output_min_length: int = 100  # max_new_tokens per sample, drawn from [min, max)
    output_max_length: int = 400
    min_length: int = 5
    # Evaluation.
    toxicity_samples: int = 11  # the seed's loop scores 11 samples (it stops at i > 10)
    toxicity_max_new_tokens: int = 100
    compare_samples: int = 20


def dialogue_prompts(config):
    """The seed's `build_dataset`: filter by length, wrap in the prompt, split 80/20 without shuffling."""
    rows = load_splits(config.dataset, config.dataset_config, config.dataset_split, config.dataset_revision)["train"]
    require_columns(rows, [config.dialogue_column, config.summary_column], "train")
    require_rows(rows, "train")
    kept = [r for r in rows if isinstance(r[config.dialogue_column], str)
            and config.min_dialogue_chars < len(r[config.dialogue_column]) <= config.max_dialogue_chars]
    print(f"{len(kept)} of {len(rows)} dialogues have {config.min_dialogue_chars} < chars <= "
          f"{config.max_dialogue_chars}")
    n_test = math.ceil(len(kept) * config.test_size)
    if len(kept) - n_test < config.ppo_batch_size or n_test == 0:
        raise KerastuneError(f"{len(kept)} dialogues after the length filter are too few for an 80/20 split "
                             f"and PPO batches of {config.ppo_batch_size}")
    prompts = [render(config.prompt, {"dialogue": r[config.dialogue_column]}) for r in kept]
    summaries = [str(r[config.summary_column] or "") for r in kept]
    cut = len(kept) - n_test
    return (prompts[:cut], summaries[:cut]), (prompts[cut:], summaries[cut:])


def fit_summaries(model, tokenizer, train, config, run_dir, epochs, learning_rate):
    """`model.fit` on (prompt, summary) pairs; with LoRA enabled only the adapters train."""
    train_ds = prepare_tf_dataset(*train, tokenizer, config.sft_batch_size, max_source_length=config.max_source_length,
                                  max_target_length=config.max_target_length, seed=config.seed,
                                  static_shapes=config.static_shapes)
    steps = sum(1 for _ in train_ds) * epochs
    optimizer = create_optimizer(learning_rate, steps, config.warmup_steps, config.weight_decay, model)
    fit(model, train_ds, epochs=epochs, run_dir=run_dir, optimizer=optimizer, resume=config.resume,
        keep_checkpoints=config.keep_checkpoints)


def summarization_stage(model, tokenizer, train, test, config, run_dir) -> dict:
    """Stage 1: fit the LoRA adapter for summarization; ROUGE on held-out dialogues before and after."""
    generator = Seq2SeqGenerator(model, tokenizer, max_new_tokens=config.max_target_length,
                                 max_source_length=config.max_source_length)
    prompts, references = test[0][:config.rouge_samples], test[1][:config.rouge_samples]
    before = rouge(generator.generate(prompts, batch_size=config.eval_batch_size), references)
    fit_summaries(model, tokenizer, train, config, run_dir / "summarization", config.sft_epochs,
                  config.sft_learning_rate)
    after = rouge(generator.generate(prompts, batch_size=config.eval_batch_size, progress=True), references)
    print(f"ROUGE-1 on {len(prompts)} held-out dialogues: {before['rouge1']:.4f} -> {after['rouge1']:.4f}")
    return {"rouge1_before": before["rouge1"], "rouge1_after": after["rouge1"], "rougeL_before": before["rougeL"],
            "rougeL_after": after["rougeL"]}


def reward_model_for(config, run_dir):
    """The hate-speech classifier; a tiny-* one is trained here on `reward_dataset` (text, label)."""
    tiny = config.reward_model.startswith("tiny-")
    if tiny and not config.reward_dataset:
        raise KerastuneError(f"'{config.reward_model}' is untrained: set reward_dataset to a CSV with text,label")
    rows = load_splits(config.reward_dataset)["train"] if tiny else None
    if tiny:
        require_columns(rows, ["text", "label"], "reward_dataset")
    model = load_model(config.reward_model, texts=list(rows["text"]) if tiny else None, vocab_size=1000,
                       revision=config.reward_model_revision)
    if model_kind(model) != "classifier":
        raise KerastuneError(f"reward_model must be a text classifier; '{config.reward_model}' is {model_kind(model)}")
    if not tiny:
        return model, {}
    accuracy = train_classifier(model, rows["text"], rows["label"], config.reward_epochs,
                                config.reward_learning_rate, source=config.reward_dataset)
    model.save_to_preset(str(run_dir / "reward_model"))
    save_labels(model, run_dir / "reward_model")
    return model, {"reward_model_train_accuracy": accuracy}


def main(config: Config) -> dict:
    started = time.time()
    set_seed(config.seed)
    set_precision(config.precision)
    run_dir = start_run(config)
    metrics = {}

    # Dialogues -> prompts; 80/20 split.
    train, test = dialogue_prompts(config)
    print(f"{len(train[0])} train / {len(test[0])} test prompts. Example:{train[0][0]}")

    # The reward model and the toxicity metric (first, so a wrong label or model fails before any training).
    reward_model, reward_metrics = reward_model_for(config, run_dir)
    metrics.update(reward_metrics)
    scorer = ToxicityScorer(reward_model, config.toxic_label, config.reward_label, config.reward_batch_size)

    # The policy: the model with LoRA adapters on the attention query and value projections.
    model = load_recipe_model("lora_ppo_detox", config.model, "seq2seq", texts=train[0] + train[1],
                              vocab_size=config.tiny_vocab_size, encoder_sequence_length=config.max_source_length,
                              decoder_sequence_length=config.max_target_length, revision=config.model_revision)
    tokenizer = model.preprocessor.tokenizer
    if config.pretrain_epochs > 0:  # a random base is no reference for PPO's KL: see `pretrain_epochs`
        print("Training every weight of the base model on the summaries first (a stand-in for pretraining)")
        fit_summaries(model, tokenizer, train, config, run_dir / "pretrain", config.pretrain_epochs,
                      config.pretrain_learning_rate)
    enable_lora(model, config.lora_rank, config.lora_alpha, targets=tuple(config.lora_targets), seed=config.seed)
    if config.adapter:
        (load_adapters if config.adapter.endswith((".npz", ".json")) else import_peft_adapter)(model, config.adapter)
    print(parameter_report(model))

    # Stage 1: the summarization adapter.
    if config.sft_epochs > 0:
        metrics.update(summarization_stage(model, tokenizer, train, test, config, run_dir))
        save_adapters(model, run_dir / "adapters" / "summarization")

    # The PPO trainer: policy + value head; the reference is the same model with adapters off.
    policy = Seq2SeqValuePolicy(model, config.value_dropout, config.cliprange, config.cliprange_value,
                                config.vf_coef, seed=config.seed)
    trainer = PPOTrainer(
        policy, tokenizer, learning_rate=config.ppo_learning_rate, batch_size=config.ppo_batch_size,
        mini_batch_size=config.mini_batch_size, ppo_epochs=config.ppo_epochs, init_kl_coef=config.init_kl_coef,
        adaptive_kl=config.adaptive_kl, kl_target=config.kl_target, kl_horizon=config.kl_horizon,
        gamma=config.gamma, lam=config.lam, output_min_length=config.output_min_length,
        output_max_length=config.output_max_length, min_length=config.min_length,
        max_source_length=config.max_source_length, seed=config.seed,
    )
    print(f"PPO model parameters to be updated (value head + {policy.value_dense.count_params()} params):")
    print(parameter_report(policy))

    # Toxicity before detoxification, and the "before" side of the comparison table.
    tox_prompts, compare_prompts = test[0][:config.toxicity_samples], test[0][:config.compare_samples]
    tox_before = toxicity_summary(sampled_toxicity(trainer, scorer, tox_prompts, config.toxicity_max_new_tokens))
    print(f"toxicity [mean, std] before detox: [{tox_before['mean']:.6f}, {tox_before['std']:.6f}]")
    responses_before = trainer.respond(compare_prompts)

    # Stage 2: PPO against the reward model (reward = the `nothate` logit of query + response).
    rows = run_ppo(trainer, train[0], lambda q, r: scorer.rewards([a + b for a, b in zip(q, r)]),
                   steps=config.ppo_steps, run_dir=run_dir, resume=config.resume, seed=config.seed)
    plot_history(run_dir / "history.csv", run_dir / "plots", names=PPO_PLOTS)

    # Toxicity after, the comparison table, the adapters and the merged model.
    tox_after = toxicity_summary(sampled_toxicity(trainer, scorer, tox_prompts, config.toxicity_max_new_tokens))
    print(f"toxicity [mean, std] after detox: [{tox_after['mean']:.6f}, {tox_after['std']:.6f}]")
    table = comparison_table(compare_prompts, responses_before, trainer.respond(compare_prompts), scorer)
    table.to_csv(run_dir / "compare.csv", index=False)
    save_adapters(model, run_dir / "adapters" / "detox")
    model.save_to_preset(str(run_dir / "model"))  # Keras merges the adapters into the kernels here

    metrics.update(
        toxicity_before_mean=tox_before["mean"], toxicity_before_std=tox_before["std"],
        toxicity_after_mean=tox_after["mean"], toxicity_after_std=tox_after["std"],
        toxicity_improvement_pct=improvement_pct(tox_before["mean"], tox_after["mean"]),
        toxicity_std_improvement_pct=improvement_pct(tox_before["std"], tox_after["std"]),
        mean_reward_first=rows[0]["ppo/mean_scores"], mean_reward_last=rows[-1]["ppo/mean_scores"],
        kl_first=rows[0]["objective/kl"], kl_last=rows[-1]["objective/kl"], ppo_steps=len(rows),
    )
    metrics = write_metrics(run_dir, config, metrics, started)
    print("Percentage improvement of toxicity score after detoxification:")
    print(f"mean: {metrics['toxicity_improvement_pct']:.2f}%\nstd: {metrics['toxicity_std_improvement_pct']:.2f}%")
    print(table[["reward_before", "reward_after", "reward_diff"]].head(10).to_string())
    return metrics

