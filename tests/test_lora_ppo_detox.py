"""The lora_ppo_detox recipe end to end on tiny models (every stage, every output file), and bad input."""

import keras
import pytest
from helpers.detox_run import check_detox_run
from make_dialogues_sample import make_rows, write_csv
from make_toxicity_sample import make_rows as make_labelled_rows

from kerastune.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("detox_data")
    write_csv(path / "dialogues.csv", make_rows(80, seed=5))
    write_csv(path / "toxicity.csv", make_labelled_rows(160, seed=5))
    return path


def run(data, run_dir, *settings):
    return main(["run", "lora_ppo_detox", "--set", "model=tiny-t5", f"dataset={data / 'dialogues.csv'}",
                 "dataset_split=''", "reward_model=tiny-roberta", f"reward_dataset={data / 'toxicity.csv'}",
                 f"output_dir={run_dir}", "tiny_vocab_size=400", "pretrain_epochs=0", "sft_epochs=1",
                 "reward_epochs=1", "ppo_steps=2", "rouge_samples=8", "toxicity_samples=8", "compare_samples=5",
                 "output_min_length=6", "output_max_length=12", "toxicity_max_new_tokens=12", *settings])


@pytest.mark.slow
@pytest.mark.skipif(keras.config.backend() == "tensorflow",
                    reason="CI time: on TensorFlow test_kill_resume_detox's uninterrupted run is checked the same way")
def test_every_stage_runs_and_writes_its_outputs(data, tmp_path):
    run_dir = tmp_path / "run"
    assert run(data, run_dir) == 0
    check_detox_run(run_dir, ppo_steps=2, compare_samples=5)


def test_bad_input_is_named_before_any_training(data, tmp_path, capsys):
    rows = make_labelled_rows(40, seed=1)
    rows[3]["label"] = "offensive"
    write_csv(tmp_path / "labels.csv", rows)
    assert run(data, tmp_path / "a", f"reward_dataset={tmp_path / 'labels.csv'}") == 2
    assert "unknown label(s) ['offensive']" in capsys.readouterr().err
    assert run(data, tmp_path / "b", "dialogue_column=conversation") == 2
    assert "conversation" in capsys.readouterr().err
    assert run(data, tmp_path / "c", "reward_model=tiny-t5") == 2
    assert "must be a text classifier" in capsys.readouterr().err
