"""What GRPO and causal PPO start from: the rewards, and the causal LM that answers the prompts (LoRA applied, its
chat template when the prompts are conversations), its generators and the prompts' token ids."""

import dataclasses
from pathlib import Path

from kerastune.data.prompt_only import Prompts, prompt_tokens
from kerastune.generation.causal import CausalLMGenerator, start_token_id
from kerastune.generation.chat import answer_generators
from kerastune.models import load_recipe_model
from kerastune.models.chat_templates import load_chat_template, save_chat_template
from kerastune.models.lora import adapt, merged_for_saving, parameter_report, save_adapters
from kerastune.rl.rewards import Rewards
from kerastune.rl.stand_ins import tiny_policy_sft, tiny_reward_model


@dataclasses.dataclass
class AnsweringPolicy:
    model: object  # a keras-hub causal LM
    load_base: object  # () -> a fresh copy of the starting model (to merge the adapters into for saving)
    adapted: bool  # LoRA: only the adapters train
    chat: object  # the chat template, or None for text prompts
    sampler: CausalLMGenerator  # samples answers (training)
    greedy: CausalLMGenerator  # the before / after answers
    train_ids: list
    held_out_ids: list


def load_rewards(config, run_dir: Path, decode) -> Rewards:
    """[reward]'s functions and / or model (a tiny-* model trained here first), `decode` turning answer ids into
    text."""
    reward = config.reward
    model = tiny_reward_model(config, run_dir) if reward.model.startswith("tiny-") else reward.model
    return Rewards(reward.functions, [model] if model else [], reward.weights, decode=decode,
                   batch_size=reward.batch_size)


def load_answering_policy(recipe: str, config, prompts: Prompts, run_dir: Path, max_new_tokens: int,
                          **sampling) -> AnsweringPolicy:
    """The model a recipe trains on its own answers to `prompts` (a tiny-* one first tuned by chat_sft when
    `train.sft_epochs` > 0), with `[lora]` applied; answers of up to `max_new_tokens`, sampled with `sampling`
    (temperature, top_k, top_p)."""
    data = config.data
    texts = [m["content"] for p in prompts.train for m in (p if isinstance(p, list) else [{"content": p}])]
    model_name = config.model.name
    if model_name.startswith("tiny-") and config.train.sft_epochs:
        model_name = tiny_policy_sft(config, run_dir, prompts.train_split)

    def load_base():
        return load_recipe_model(recipe, model_name, "causal_lm", texts=texts, vocab_size=config.model.tiny_vocab_size,
                                 sequence_length=(data.max_prompt_length or 512) + max_new_tokens,
                                 revision=config.model.revision)

    model = load_base()
    adapted = adapt(model, config.lora, seed=config.seed)
    if adapted:
        print(parameter_report(model))
    chat = load_chat_template(model_name, model, config.model.revision, config.chat.template) \
        if isinstance(prompts.train[0], list) else None
    sampler, greedy = answer_generators(model, chat, max_new_tokens, config.seed, **sampling)
    tokenizer, start_id = model.preprocessor.tokenizer, start_token_id(model)
    return AnsweringPolicy(model, load_base, adapted, chat, sampler, greedy,
                           prompt_tokens(prompts.train, chat, tokenizer, start_id, data.max_prompt_length),
                           prompt_tokens(prompts.held_out, chat, tokenizer, start_id, data.max_prompt_length))


def save_answering_policy(policy: AnsweringPolicy, run_dir: Path, base_model: str):
    """The trained model as the run's model/ (adapters merged in; they are also kept in adapters/ in PEFT's
    format), with its chat template."""
    model = policy.model
    if policy.adapted:
        save_adapters(model, run_dir / "adapters", base_model=base_model)
        model = merged_for_saving(model, run_dir / "adapters", policy.load_base)
    model.save_to_preset(str(run_dir / "model"))
    if policy.chat is not None:
        save_chat_template(run_dir / "model", policy.chat)
