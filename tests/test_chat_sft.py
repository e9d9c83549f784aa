"""The chat_sft recipe end to end on tiny models: the loss on the assistant's tokens falls, held-out questions get
answers in the sample's style, the run keeps its chat template and `kerastune generate --chat` answers with it;
prompt/completion data; bad input."""

import csv
import json
import random
from pathlib import Path

import pytest
from make_chat_sample import make_conversation
from test_bad_input import check

from kerastune.cli import main
from kerastune.models.chat_templates import SAVED_FILE

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "chat_sft.toml"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("model,packed", [("tiny-llama", True)])
def test_chat_sft_learns_the_sample_style_and_answers_in_its_template(model, packed, tmp_path, capsys):
    """Packed rows on tiny-llama (4 rows of 256 tokens a batch: about the tokens of 16 conversations). Bucketed
    batches train tiny-qwen in the prompt/completion test below, and Qwen from the hub in test_hub.py."""
    run_dir = tmp_path / "run"
    settings = [f"model={model}", f"output_dir={run_dir}", f"pack={str(packed).lower()}"]
    settings += ["batch_size=4"] if packed else []
    assert main(["run", str(DEMO), "--set", *settings]) == 0
    out = capsys.readouterr().out
    assert ("packed the" in out) == packed
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_loss_after"] < 0.4 * metrics["eval_loss_before"], metrics
    assert metrics["dropped_no_label"] == 0 and metrics["cut_at_max_length"] == 0
    assert "loss on the assistant turns" in out

    # Held-out questions: before training the answers are noise; after, they take the sample's style.
    answers = json.loads((run_dir / "answers.json").read_text())
    assert len(answers) == 3
    for item in answers:
        assert item["messages"][-1]["role"] == "user" and item["reference"].endswith("Anything else I can help with?")
        assert "happy to help!" in item["answer_after"].lower(), item
        assert "happy to help!" not in item["answer_before"].lower(), item
    assert sum(item["answer_after"].endswith("Anything else I can help with?") for item in answers) >= 2, answers

    # The run's model keeps the template; generate --chat renders a question with it and stops at the turn's end.
    saved = json.loads((run_dir / "model" / SAVED_FILE).read_text())
    assert ("<|im_start|>" if model == "tiny-qwen" else "<|start_header_id|>") in saved["chat_template"]
    assert main(["generate", str(run_dir), "--chat", "How much is the backpack?", "Can I return the mug?"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("-> ")]
    assert len(lines) == 2 and all("happy to help" in line.lower() for line in lines), lines
    assert not any("<|" in line or "assistant" in line for line in lines), lines


@pytest.mark.slow
def test_prompt_completion_pairs_and_loss_on_every_token(tmp_path):
    """Prompt/completion columns (text) become a user turn and the assistant's answer; `loss_on = all` counts every
    token, so the eval loss covers more tokens than the assistant's."""
    rng = random.Random(5)
    pairs = [make_conversation(rng)[:2] for _ in range(120)]
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "completion"])
        writer.writerows([[p["content"], c["content"]] for p, c in pairs] + [["Is this row empty?", ""]])
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", f"output_dir={run_dir}", f"dataset={tmp_path / 'pairs.csv'}",
                 "epochs=1", "loss_on=all", "num_prompts=1", "max_new_tokens=4"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train_sequences"] + metrics["eval_sequences"] == 120  # the empty completion is dropped
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"]


@pytest.mark.slow
def test_qlora_int4_trains_adapters_and_saves_them_for_peft_and_merged(tmp_path, capsys):
    """LoRA on every projection of an int4-quantized tiny-qwen (QLoRA's idea): only the adapters train, the loss
    falls, the adapters are saved as PEFT files, and the saved model is the float base with them merged."""
    run_dir = tmp_path / "run"
    assert main(["run", str(DEMO), "--set", f"output_dir={run_dir}", "epochs=2", "num_prompts=1", "max_new_tokens=4",
                 "max_train_samples=96", "learning_rate=5e-3", "lora.rank=8", "lora.alpha=16",
                 'lora.targets=["all-linear"]', "lora.quantize=int4"]) == 0
    out = capsys.readouterr().out
    trainable = int(out.split("trainable model parameters: ")[1].split()[0])
    # tiny-qwen: 2 layers x (q, o: 128 -> 128; k, v: 128 -> 64; gate, up: 128 -> 256; down: 256 -> 128), rank 8
    assert trainable == 2 * 8 * ((128 + 128) * 2 + (128 + 64) * 2 + (128 + 256) * 3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] - 0.2, metrics
    config = json.loads((run_dir / "adapters" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["task_type"]) == (8, 16.0, "CAUSAL_LM")
    assert sorted(config["target_modules"]) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj",
                                                "v_proj"]
    assert main(["generate", str(run_dir), "--chat", "How much is the backpack?"]) == 0  # the merged float model


def test_bad_chat_data_gets_one_line(tmp_path, capsys):
    write_jsonl(tmp_path / "no_columns.jsonl", [{"text": "hello"}] * 20)
    check(["run", str(DEMO), "--set", f"dataset={tmp_path / 'no_columns.jsonl'}", f"output_dir={tmp_path / 'a'}"],
          capsys, "neither a 'messages' column nor 'prompt' and 'completion'", "text")
    write_jsonl(tmp_path / "bad_message.jsonl", [{"messages": [{"content": "no role"}]}] * 20)
    check(["run", str(DEMO), "--set", f"dataset={tmp_path / 'bad_message.jsonl'}", f"output_dir={tmp_path / 'b'}"],
          capsys, "row 1", "needs a 'role' and a 'content'")
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello."}]
    write_jsonl(tmp_path / "system.jsonl", [{"messages": system}] * 20)
    check(["run", str(DEMO), "--set", "model=tiny-gemma", f"dataset={tmp_path / 'system.jsonl'}",
           f"output_dir={tmp_path / 'c'}"], capsys, "chat template refused", "System role not supported")
    check(["run", str(DEMO), "--set", "model=tiny-gpt2", f"output_dir={tmp_path / 'd'}"], capsys,
          "'tiny-gpt2' has no chat template", "chat.template")
    check(["run", str(DEMO), "--set", "loss_on=prompt", f"output_dir={tmp_path / 'e'}"], capsys, "data.loss_on")
