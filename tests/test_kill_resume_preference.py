"""The preference and RL recipes (reward_model, dpo, grpo, ppo) SIGKILLed at random points after their checkpoints and
rerun: the final weights and metrics equal an uninterrupted run's (TensorFlow: within 1e-6), as in
test_kill_resume.py (a file of its own, so the two run in parallel workers)."""

import keras
import pytest
from helpers.kill_resume import DATA, HELPERS, check_kills_change_nothing

RECIPES = {  # recipe -> (settings, the checkpoint counts after which the successive runs are killed)
    "dpo": ([  # LoRA: the reference is the model with its adapters off, computed again by each rerun
        "model=tiny-qwen", f"dataset={DATA / 'preference_sample.jsonl'}", "max_train_samples=96",
        "max_eval_samples=16", "epochs=2", "batch_size=8", "tiny_vocab_size=400", "lora.rank=8", "lora.dropout=0.1",
        'lora.targets=["all-linear"]', "learning_rate=1e-3"], (1,)),
    "reward_model": ([  # the score head and the adapters resume
        "model=tiny-qwen", f"dataset={DATA / 'preference_sample.jsonl'}", "max_train_samples=64",
        "max_eval_samples=16", "epochs=2", "batch_size=8", "tiny_vocab_size=400", "lora.rank=4",
        "lora.dropout=0.1"], (1,)),
    "grpo": ([  # LoRA with dropout and a KL term (the reference: adapters off); a reward function, no tiny stages
        "model=tiny-qwen", f"dataset={DATA / 'preference_sample.jsonl'}", "max_train_samples=64",
        "train.sft_epochs=0", "reward.model=", f"reward.functions=[\"{HELPERS / 'shop_rewards.py'}:shop_words\"]",
        "train.steps=4", "grpo.beta=0.04", "grpo.num_iterations=2", "grpo.steps_per_generation=2",
        "tiny_vocab_size=400", "lora.rank=4", "lora.dropout=0.1", "eval.num_prompts=2",
        "grpo.max_completion_length=12"], (2,)),
    "ppo": ([  # LoRA with dropout, the value head's dropout, the adaptive KL coefficient and the length sampler
        "model=tiny-qwen", f"dataset={DATA / 'preference_sample.jsonl'}", "max_train_samples=64",
        "train.sft_epochs=0", "reward.model=", f"reward.functions=[\"{HELPERS / 'shop_rewards.py'}:shop_words\"]",
        "ppo.steps=4", "ppo.batch_size=8", "ppo.epochs=2", "ppo.value_dropout=0.1", "ppo.output_min_length=6",
        "ppo.output_max_length=13", "tiny_vocab_size=400", "lora.rank=4", "lora.dropout=0.1", "eval.num_prompts=2"],
        (2,)),
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.config.backend() != "tensorflow",
                       reason="exact equality is asserted on TensorFlow; test_checkpoints covers resume on JAX"),
]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_a_run_killed_again_and_again_ends_where_an_uninterrupted_one_does(recipe, tmp_path):
    check_kills_change_nothing(recipe, *RECIPES[recipe], tmp_path)
