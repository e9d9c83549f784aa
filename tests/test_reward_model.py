"""The reward_model recipe: a causal LM with a score head and a one-label RoBERTa classifier learn to score the
held-out chosen answers above the rejected ones; the saved reward model reloads and scores new text; bad input.
Resume: test_kill_resume.py. The loss and statistics: test_reward_math.py."""

import json
from pathlib import Path

import pytest
from test_bad_input import check

from kerastune.cli import main
from kerastune.data.preference import Pair, encode_pairs, preference_dataset
from kerastune.generation.causal import start_token_id
from kerastune.models.chat_templates import load_chat_template
from kerastune.rl.pairs import run_on_pairs
from kerastune.rl.reward_model import load_reward_model

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "reward_model.toml"
SAMPLE = ROOT / "recipes" / "data" / "preference_sample.jsonl"

NEW_PAIRS = [  # questions and answers the sample does not hold word for word
    ("Hey there. How much is the cap?", "Of course, happy to help! The cap costs 15 euros. Anything else I can help "
     "with?", "Whatever. The cap costs 15 euros. Don't bother me again."),
    ("Which material is the umbrella?", "Happy to help! The umbrella is made of polyester. Anything else I can help "
     "with?", "with? made polyester. I umbrella else is Happy help help! the Anything of to The can"),
]


@pytest.mark.slow
def test_a_causal_reward_model_learns_the_preferences_and_scores_new_answers(tmp_path):
    """tiny-qwen + score head on the project's preference sample (seed 42, 360 pairs, 2 epochs): held-out accuracy
    from about chance to nearly 1; the saved model reloads and prefers the polite answer to new questions."""
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", f"output_dir={run_dir}"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_pairs"] == 40
    assert metrics["eval_accuracy_after"] >= 0.9 and metrics["eval_margin_after"] > 1.0, metrics
    assert metrics["eval_margin_after"] > metrics["eval_margin_before"] + 1.0, metrics

    reward_model = load_reward_model(run_dir / "model")
    model = reward_model.model
    chat = load_chat_template(str(run_dir / "model"), model)
    pairs = [Pair([{"role": "user", "content": q}], [{"role": "assistant", "content": c}],
                  [{"role": "assistant", "content": r}]) for q, c, r in NEW_PAIRS]
    encoded, _, _ = encode_pairs(pairs, model.preprocessor.tokenizer, 128, chat=chat, start_id=start_token_id(model))
    dataset = preference_dataset(encoded, 8, 128, shuffle=False, shift=False, extra={"index": [0, 1]})
    model.preprocessor = None
    (scores,) = run_on_pairs(reward_model, dataset)
    assert (scores[:, 0] > scores[:, 1]).all(), scores


@pytest.mark.slow
def test_a_one_label_roberta_learns_the_preferences_from_text(tmp_path):
    """Text pairs (trl's standard format) on tiny-roberta, one label: held-out accuracy above chance."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:240]]
    text_rows = [{"prompt": r["prompt"][0]["content"] + "\n", "chosen": r["chosen"][0]["content"],
                  "rejected": r["rejected"][0]["content"]} for r in rows]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in text_rows))
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", "model=tiny-roberta", f"dataset={tmp_path / 'pairs.jsonl'}",
                 f"output_dir={run_dir}"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_accuracy_after"] >= 0.8, metrics
    reloaded = load_reward_model(run_dir / "model")
    assert reloaded.score_head is None and reloaded.model.num_classes == 1


def test_bad_reward_model_input_gets_one_line(tmp_path, capsys):
    check(["run", str(DEMO), "--set", "model=tiny-roberta", f"output_dir={tmp_path / 'a'}"], capsys,
          "text classifier without a chat template")
    check(["run", str(DEMO), "--set", "model=tiny-t5", f"output_dir={tmp_path / 'b'}"], capsys,
          "reward_model needs a causal LM")
