"""The dpo recipe: preference pairs tokenized as trl 1.16's DPOTrainer tokenizes them (conversational, standard
and implicit-prompt formats, checked by calling trl's own dataset preparation), the model learning to prefer
the held-out chosen answers, and bad input. Resume: test_kill_resume.py. The loss: test_dpo_math.py."""

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from test_bad_input import check
from test_chat_template import hf_tokenizer, split_tokenizer, trl_template
from trl.data_utils import extract_prompt as trl_extract_prompt
from trl.trainer.dpo_trainer import DPOTrainer

from kerastune.cli import main
from kerastune.data.chat import ChatTemplate
from kerastune.data.preference import encode_pairs, extract_prompt, read_pairs
from kerastune.models.chat_templates import SAVED_FILE

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "dpo.toml"
SAMPLE = ROOT / "recipes" / "data" / "preference_sample.jsonl"

CONVERSATIONAL = [
    {"prompt": [{"role": "user", "content": "How much is the mug?"}],
     "chosen": [{"role": "assistant", "content": "Happy to help! The mug costs 12 euros."}],
     "rejected": [{"role": "assistant", "content": "Ugh. 12."}]},
    {"prompt": [{"role": "system", "content": "You are the shop's assistant."},
                {"role": "user", "content": "Can I return the cap?"},
                {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "Within how many days?"}],
     "chosen": [{"role": "assistant", "content": "Within 30 days, for a full refund."}],
     "rejected": [{"role": "assistant", "content": "Read the page yourself."}]},
]
STANDARD = [{"prompt": "The mug costs", "chosen": " 12 euros.", "rejected": " whatever."},
            {"prompt": "Q: Can I return the cap?\nA:", "chosen": " Yes, within 30 days.", "rejected": " No"}]


def trl_tokens(rows, tokenizer, max_length=1024):
    """trl 1.16's DPOTrainer._prepare_dataset on these rows: (prompt_ids, chosen_ids, rejected_ids) per row."""
    trainer = SimpleNamespace(_tokenizer=tokenizer)
    args = SimpleNamespace(dataset_num_proc=None, max_length=max_length, truncation_mode="keep_start")
    prepared = DPOTrainer._prepare_dataset(trainer, datasets.Dataset.from_list(rows), tokenizer, args, "train")
    return [(r["prompt_ids"], r["chosen_ids"], r["rejected_ids"]) for r in prepared]


def as_trl(encoded):
    """kerastune's encoded pairs cut back into trl's (prompt, chosen answer, rejected answer) ids."""
    out = []
    for pair in encoded:
        prompt_length = pair.chosen_mask.index(1)
        assert pair.rejected_mask.index(1) == prompt_length
        out.append((pair.chosen_ids[:prompt_length], pair.chosen_ids[prompt_length:],
                    pair.rejected_ids[prompt_length:]))
    return out


@pytest.mark.parametrize("family,template", [("qwen", "qwen2_5"), ("llama", "llama3")])
def test_conversational_pairs_tokenize_as_trl(family, template, tmp_path):
    hf, _ = hf_tokenizer(tmp_path, family, trl_template(template))
    chat = ChatTemplate(trl_template(template), {k: v for k, v in hf.special_tokens_map.items()
                                                 if isinstance(v, str)}, hf.get_added_vocab())
    pairs, dropped = read_pairs(datasets.Dataset.from_list(CONVERSATIONAL), "train")
    encoded, cut, dropped = encode_pairs(pairs, split_tokenizer(hf), 1024, chat=chat)
    assert (cut, dropped) == (0, 0)
    assert as_trl(encoded) == trl_tokens(CONVERSATIONAL, hf)


def test_standard_and_implicit_prompt_pairs_tokenize_as_trl(tmp_path):
    """Plain text: the answers end with the end token, as trl adds it. Implicit prompt: the shared beginning, found
    as trl's extract_prompt finds it (text and messages)."""
    hf, _ = hf_tokenizer(tmp_path, "qwen", trl_template("qwen2_5"))
    end_id = hf.convert_tokens_to_ids(hf.eos_token)
    pairs, _ = read_pairs(datasets.Dataset.from_list(STANDARD), "train")
    encoded, _, _ = encode_pairs(pairs, split_tokenizer(hf), 1024, end_id=end_id)
    assert as_trl(encoded) == trl_tokens(STANDARD, hf)

    implicit = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in STANDARD]
    implicit += [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]}
                 for r in CONVERSATIONAL]
    for row in implicit:
        expected = trl_extract_prompt(row)
        got = extract_prompt(row["chosen"], row["rejected"])
        assert (got.prompt, got.chosen, got.rejected) == (expected["prompt"], expected["chosen"], expected["rejected"])
    pairs, _ = read_pairs(datasets.Dataset.from_list(implicit[:2]), "train")
    encoded, _, _ = encode_pairs(pairs, split_tokenizer(hf), 1024, end_id=end_id)
    assert as_trl(encoded) == trl_tokens(implicit[:2], hf)


def test_long_pairs_are_cut_keeping_the_start_and_full_prompts_dropped(tmp_path):
    hf, _ = hf_tokenizer(tmp_path, "qwen", trl_template("qwen2_5"))
    rows = [{"prompt": "Q:", "chosen": " Happy to help! The mug costs 12 euros.", "rejected": " No."},
            {"prompt": "Q: Can I return the cap within 30 days for a full refund?", "chosen": " Yes",
             "rejected": " No"}]
    pairs, _ = read_pairs(datasets.Dataset.from_list(rows), "train")
    limit = 6
    assert len(hf(rows[1]["prompt"])["input_ids"]) >= limit > len(hf(rows[0]["prompt"])["input_ids"])
    encoded, cut, dropped = encode_pairs(pairs, split_tokenizer(hf), limit, end_id=0)
    assert dropped == 1 and len(encoded) == 1  # the long prompt's pair dropped, as trl drops it
    whole, _, _ = encode_pairs(pairs[:1], split_tokenizer(hf), 1024, end_id=0)
    assert cut == (len(whole[0].chosen_ids) > limit) + (len(whole[0].rejected_ids) > limit) >= 1
    assert encoded[0].chosen_ids == whole[0].chosen_ids[:limit]
    assert encoded[0].rejected_mask == whole[0].rejected_mask[:limit]


@pytest.mark.slow
def test_dpo_learns_to_prefer_the_held_out_chosen_answers(tmp_path, capsys):
    """tiny-qwen on the project's preference sample (seed 42, 360 pairs, 2 epochs): on 40 held-out pairs the model
    starts preferring the chosen answer in about a quarter of them and ends preferring it in nearly all, with trl's
    reward accuracy and margin up; the statistics are in history.csv and the plots."""
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", f"output_dir={run_dir}", "epochs=2"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_pairs"] == 40 and metrics["train_pairs"] == 360
    assert metrics["eval_logps_accuracy_before"] < 0.5
    assert metrics["eval_logps_accuracy_after"] >= 0.9, metrics
    assert metrics["eval_logps_margin_after"] > metrics["eval_logps_margin_before"] + 10, metrics
    assert metrics["eval_rewards_accuracies_before"] == 0.0  # the policy is the reference: equal rewards
    assert metrics["eval_rewards_accuracies_after"] >= 0.9 and metrics["eval_rewards_margins_after"] > 1, metrics
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] == pytest.approx(np.log(2), abs=1e-5)
    with open(run_dir / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert {"rewards/accuracies", "val_rewards/margins", "val_logps/chosen"} <= set(history[0])
    assert any(p.name.startswith("rewards") for p in (run_dir / "plots").iterdir())
    assert "<|im_start|>" in json.loads((run_dir / "model" / SAVED_FILE).read_text())["chat_template"]


def test_bad_preference_input_gets_one_line(tmp_path, capsys):
    rows = [{"prompt": "Q?", "answer": "A."}] * 4
    (tmp_path / "no_rejected.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    check(["run", str(DEMO), "--set", f"dataset={tmp_path / 'no_rejected.jsonl'}", f"output_dir={tmp_path / 'a'}"],
          capsys, "has no 'chosen' column")
    check(["run", str(DEMO), "--set", "dpo.loss_type=kto", f"output_dir={tmp_path / 'b'}"], capsys,
          "dpo.loss_type must be one of sigmoid, hinge, ipo, robust")
    mixed = [{"prompt": "Q?", "chosen": [{"role": "assistant", "content": "A."}], "rejected": "B."}] * 4
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))
    check(["run", str(DEMO), "--set", f"dataset={tmp_path / 'mixed.jsonl'}", f"output_dir={tmp_path / 'c'}"],
          capsys, "must both be text or both messages")


@pytest.mark.slow
def test_dpo_trains_a_seq2seq_model_on_text_pairs(tmp_path):
    """tiny-t5 on the sample as text pairs (the prompt the encoder's input, each answer the decoder's labels, as
    trl 0.11's encoder-decoder DPO): on held-out pairs the chosen answer ends up with the higher log-prob."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:240]]
    text_rows = [{"prompt": r["prompt"][0]["content"], "chosen": r["chosen"][0]["content"],
                  "rejected": r["rejected"][0]["content"]} for r in rows]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in text_rows))
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", "model=tiny-t5", f"dataset={tmp_path / 'pairs.jsonl'}",
                 f"output_dir={run_dir}"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_pairs"] == 24
    assert metrics["eval_logps_accuracy_after"] >= 0.9 and metrics["eval_rewards_accuracies_after"] >= 0.9, metrics
    assert metrics["eval_logps_margin_after"] > metrics["eval_logps_margin_before"], metrics
