"""lora_ppo_detox killed in its PPO stage and rerun: the final weights and metrics equal an uninterrupted
run's (see test_kill_resume)."""

import keras
import pytest
from helpers.detox_run import check_detox_run
from helpers.kill_resume import check_kills_change_nothing
from make_dialogues_sample import make_rows, write_csv
from make_toxicity_sample import make_rows as make_labelled_rows


@pytest.mark.slow
@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="exact equality is asserted on TensorFlow; test_checkpoints covers resume on JAX")
def test_detox_killed_in_every_stage_ends_where_an_uninterrupted_run_does(tmp_path):
    write_csv(tmp_path / "dialogues.csv", make_rows(80, seed=5))
    write_csv(tmp_path / "toxicity.csv", make_labelled_rows(160, seed=5))
    settings = [
        "model=tiny-t5", f"dataset={tmp_path / 'dialogues.csv'}", "dataset_split=''", "reward_model=tiny-roberta",
        f"reward_dataset={tmp_path / 'toxicity.csv'}", "tiny_vocab_size=400", "pretrain_epochs=0", "sft_epochs=1",
        "reward_epochs=1", "ppo_steps=2", "rouge_samples=4", "toxicity_samples=4", "compare_samples=3",
        "output_min_length=4", "output_max_length=8", "toxicity_max_new_tokens=8"]
    # checkpoints: summarization epoch-0001 (1), ppo-0001..2 (2, 3): the kill lands in PPO's second step. A kill
    # inside a `fit` stage with LoRA and dropout, like the summarization adapter's, is test_kill_resume.py's
    # (chat_sft); the stand-in pretraining stage is a plain `fit` (the default for real checkpoints skips it)
    whole = check_kills_change_nothing("lora_ppo_detox", settings, (2,), tmp_path)
    check_detox_run(whole, ppo_steps=2, compare_samples=3)  # every stage's outputs (as test_lora_ppo_detox)
