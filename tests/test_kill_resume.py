"""SIGKILL a recipe at random points after its checkpoints, rerun the same command each time: the final
weights and metrics equal an uninterrupted run's (TensorFlow: within 1e-6).

The kill comes a random 0-1.5 s after the k-th checkpoint is complete, so it lands mid-epoch, during
evaluation or during the next checkpoint's write. lora_ppo_detox, killed three times (once in each stage):
test_kill_resume_detox.py; reward_model, dpo and grpo: test_kill_resume_preference.py."""

import keras
import pytest
from helpers.kill_resume import DATA, check_kills_change_nothing

RECIPES = {  # recipe -> (settings, the checkpoint counts after which the successive runs are killed)
    "instruction_tuning": ([
        "model=tiny-t5", f"dataset={DATA / 'news_sample'}", "max_train_samples=192", "validation_size=32",
        "max_eval_samples=32", "max_test_samples=32", "epochs=2", "batch_size=32", "max_source_length=96",
        "max_new_tokens=4", "tiny_vocab_size=400"], (1,)),
    "seq2seq_qa": ([
        "model=tiny-t5", f"dataset={DATA / 'qa_sample.csv'}", "question_column=question", "question_detail_column=",
        "answer_column=answer", "max_train_samples=96", "max_eval_samples=16",
        "epochs=2", "batch_size=16", "max_new_tokens=8", "tiny_vocab_size=400"], (1,)),
    "causal_lm": ([
        "model=tiny-gpt2", f"dataset={DATA / 'products_sample.csv'}", "max_train_samples=96",
        "max_eval_samples=16", "epochs=2", "max_length=48", "max_new_tokens=6", "trace_steps=3", "trace_top_n=2",
        "decoders=greedy"], (1,)),
    "chat_sft": ([  # packed rows and LoRA with dropout: the wrapper's, the adapters' and dropout's state resume
        "model=tiny-llama", f"dataset={DATA / 'chat_sample.jsonl'}", "max_train_samples=96", "max_eval_samples=16",
        "epochs=2", "batch_size=4", "pack=true", "max_length=128", "num_prompts=1", "max_new_tokens=4",
        "tiny_vocab_size=400", "lora.rank=8", "lora.dropout=0.1", 'lora.targets=["all-linear"]',
        "learning_rate=1e-3"], (1,)),
    "mlm_domain_adaptation": ([
        "model=tiny-distilbert", f"dataset={DATA / 'reviews_sample'}", "train_chunks=96", "test_chunks=16",
        "epochs=2", "masking=whole_word"], (1,)),
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.config.backend() != "tensorflow",
                       reason="exact equality is asserted on TensorFlow; test_checkpoints covers resume on JAX"),
]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_a_run_killed_again_and_again_ends_where_an_uninterrupted_one_does(recipe, tmp_path):
    check_kills_change_nothing(recipe, *RECIPES[recipe], tmp_path)
