"""lora_ppo_detox killed in each of its stages (the pretraining stand-in, the summarization adapter, PPO)
and rerun each time: the final weights and metrics equal an uninterrupted run's (see test_kill_resume)."""

import keras
import pytest
from helpers.kill_resume import DATA, check_kills_change_nothing

SETTINGS = [
    "model=tiny-t5", f"dataset={DATA / 'dialogues_sample.csv'}", "dataset_split=''", "reward_model=tiny-roberta",
    f"reward_dataset={DATA / 'toxicity_sample.csv'}", "tiny_vocab_size=400", "pretrain_epochs=2", "sft_epochs=2",
    "reward_epochs=1", "ppo_steps=3", "rouge_samples=4", "toxicity_samples=4", "compare_samples=3",
    "output_min_length=4", "output_max_length=8", "toxicity_max_new_tokens=8"]


@pytest.mark.slow
@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="exact equality is asserted on TensorFlow; test_checkpoints covers resume on JAX")
def test_detox_killed_in_every_stage_ends_where_an_uninterrupted_run_does(tmp_path):
    # checkpoints: pretrain epoch-0001..2 (1, 2), summarization epoch-0001..2 (3, 4), ppo-0001..3 (5..7)
    whole = check_kills_change_nothing("lora_ppo_detox", SETTINGS, (1, 3, 5), tmp_path)
    assert (whole / "checkpoints" / "ppo-0003" / "manifest.json").is_file()
