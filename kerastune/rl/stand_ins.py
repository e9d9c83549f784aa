"""Stand-ins for what a real run starts from, when the model is a tiny random one (GRPO, PPO): a reward model
trained here first, and a policy tuned first to write answers worth choosing between. Each is a run of another
recipe in a sub-folder of the run, so it resumes and is logged like any run."""

import json
from pathlib import Path

from kerastune.errors import KerastuneError


def tiny_reward_model(config, run_dir: Path) -> str:
    """A tiny-* `config.reward.model` trained by the reward_model recipe on `reward.dataset`; its model/ folder."""
    from kerastune.recipes import resolve, run

    reward = config.reward
    if not reward.dataset:
        raise KerastuneError(f"'{reward.model}' is untrained: set reward.dataset to preference pairs to train it on")
    out = run_dir / "reward_model"
    print(f"Training the tiny reward model '{reward.model}' on {reward.dataset} first")
    resolved = resolve("reward_model", (), [f"model.name={reward.model}", f"data.dataset={reward.dataset}",
                                            f"output_dir={out}", f"train.epochs={reward.epochs}",
                                            f"seed={config.seed}", f"train.resume={str(config.train.resume).lower()}"])
    run(resolved.recipe, resolved.config)
    return str(out / "model")


def tiny_policy_sft(config, run_dir: Path, split) -> str:
    """A tiny-* policy tuned first by the chat_sft recipe on the data's chosen and rejected answers, both, so that
    it writes answers of either kind and the RL recipe has something to choose from (a stand-in for an instruct
    model; a random one writes noise that every reward scores alike). Its model/ folder."""
    from kerastune.models.load import TINY_CAUSAL
    from kerastune.recipes import resolve, run

    if config.model.name not in TINY_CAUSAL:  # before the tuning, which would name chat_sft, not this recipe
        raise KerastuneError(f"{config.recipe} needs a causal LM (GPT-2, Llama, Qwen, Gemma, ...); "
                             f"'{config.model.name}' is not one (tiny causal models: {', '.join(TINY_CAUSAL)})")
    missing = [c for c in ("chosen", "rejected") if c not in split.column_names]
    if missing:
        raise KerastuneError(f"train.sft_epochs needs 'chosen' and 'rejected' answers in the data (missing "
                             f"'{missing[0]}'): set train.sft_epochs = 0")
    column = config.data.prompt_column
    rows = [{"prompt": prompt, "completion": answer} for prompt, chosen, rejected in
            zip(split[column], split["chosen"], split["rejected"]) for answer in (chosen, rejected)]
    out = run_dir / "sft"
    out.mkdir(parents=True, exist_ok=True)
    (out / "answers.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"Tuning the tiny policy on {len(rows)} chosen and rejected answers first (chat_sft)")
    resolved = resolve("chat_sft", (), [f"model.name={config.model.name}", f"data.dataset={out / 'answers.jsonl'}",
                                        f"output_dir={out}", f"train.epochs={config.train.sft_epochs}",
                                        f"seed={config.seed}", f"train.resume={str(config.train.resume).lower()}",
                                        f"model.tiny_vocab_size={config.model.tiny_vocab_size}",
                                        "generation.num_prompts=1", "generation.max_new_tokens=8"])
    run(resolved.recipe, resolved.config)
    return str(out / "model")
