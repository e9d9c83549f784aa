"""Through the real `huggingface_hub` and `datasets` code, against a local hub (tests/local_hub.py).

The hub serves tiny stand-ins under each recipe's real default ids, laid out
as the real repositories are (the Spanish GPT-2 with only `pytorch_model.bin`
on main and safetensors in `refs/pr/1`, amazon-esci's parquet shards,
DialogSum's CSVs, ...), plus a script-only dataset, a gated repository, a
TensorFlow-only one and a redirected bare id. Hub code does not depend on
the Keras backend, so these run on TensorFlow only.
"""

import json
import random
import time

import keras
import numpy as np
import pytest
from helpers import hub_repos
from helpers.hf_checkpoints import write_hf_distilbert, write_hf_gpt2, write_hf_t5
from test_chat_template import trl_template

import kerastune
from kerastune.cli import main
from kerastune.data import load_splits

pytestmark = pytest.mark.skipif(keras.config.backend() != "tensorflow",
                                reason="the hub boundary is backend-independent; tested once, on TensorFlow")


@pytest.fixture(scope="module")
def hub(local_hub, tmp_path_factory, product_texts, spiece_proto):
    from make_chat_sample import make_conversation
    from make_dialogues_sample import make_rows as dialogues
    from make_news_sample import make_rows as news
    from make_preference_sample import make_pair
    from make_products_sample import make_rows as products
    from make_qa_sample import make_rows as qa
    from make_reviews_sample import make_rows as reviews

    root = tmp_path_factory.mktemp("hub")
    gpt2 = write_hf_gpt2(root / "gpt2", product_texts, seed=1)
    write_hf_t5(root / "t5", spiece_proto, seed=2)
    bert = write_hf_distilbert(root / "distilbert", [r["text"] for r in reviews(200, seed=3)])
    roberta = hub_repos.roberta_classifier(root / "roberta", [r["text"] for r in reviews(200, seed=3)])
    hub_repos.add_models(local_hub, root, (root / "gpt2", gpt2), root / "t5", bert, roberta)
    hub_repos.add_decoders(local_hub, root, product_texts)
    hub_repos.add_instruct(local_hub, root, trl_template("qwen2_5"))
    rng = random.Random(6)
    hub_repos.add_datasets(local_hub, {
        "products": products(3000, seed=5), "news": news(400, seed=1), "qa": hub_repos.qa_rows(qa(300, seed=2)),
        "reviews": reviews(300, seed=3), "dialogues": dialogues(120, seed=4),
        "chats": [make_conversation(rng) for _ in range(100)], "pairs": [make_pair(rng) for _ in range(80)],
    })
    return local_hub


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_the_best_format_is_downloaded_and_nothing_else(hub, capsys):
    hub.requests.clear()
    model = kerastune.load_model(hub_repos.GPT2)  # main: pytorch_model.bin, tf_model.h5, flax_model.msgpack
    out = capsys.readouterr().out
    assert "downloading model datificate/gpt2-small-spanish@main" in out and "pytorch_model.bin (" in out
    fetched = [r for r in hub.requests if r.startswith("GET") and "/resolve/" in r]
    assert any(r.endswith("/pytorch_model.bin") for r in fetched)
    assert not any(r.endswith(("tf_model.h5", "flax_model.msgpack")) for r in fetched), fetched
    # refs/pr/1 holds the safetensors conversion: same weights, same logits.
    converted = kerastune.load_model(hub_repos.GPT2, revision="refs/pr/1")
    assert "model.safetensors (" in capsys.readouterr().out
    x = {"token_ids": np.array([[5, 9, 30, 2]]), "padding_mask": np.ones((1, 4), "int32")}
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(converted(x)), atol=1e-6)
    assert main(["generate", hub_repos.GPT2, "Esta mochila", "--revision", "refs/pr/1", "--max-new-tokens", "3"]) == 0
    assert "Esta mochila" in capsys.readouterr().out
    # A second load comes from the cache, and so does one with the network down.
    hub.requests.clear()
    kerastune.load_model(hub_repos.GPT2)
    assert not [r for r in hub.requests if r.startswith("GET") and "/resolve/" in r]
    hub.offline = True
    try:
        kerastune.load_model(hub_repos.GPT2)
    finally:
        hub.offline = False
    assert "no network: using the cached copy" in capsys.readouterr().out


def test_a_slice_streams_only_the_rows_it_needs(hub, capsys):
    files = hub.repos[("datasets", hub_repos.ESCI)]["main"]
    shards = sorted(name for name in files if name.startswith("products/"))
    hub.served.clear()
    splits = load_splits(hub_repos.ESCI, "products", "train[:1%]")
    assert len(splits["train"]) == 30  # 1% of 3,000 rows, as datasets rounds it
    read = {shard: hub.served[shard] / len(files[shard]) for shard in shards}
    assert all(read[shard] < 0.2 for shard in shards[1:]), read  # the later shards: their footers only
    out = capsys.readouterr().out
    assert "streaming the first 1% of train: 30 of 3000 rows" in out and "3 data files" in out
    reference = load_splits(hub_repos.ESCI, "products")["train"]  # the whole config, through datasets
    assert splits["train"][:]["product_description"] == reference.select(range(30))[:]["product_description"]
    again = load_splits(hub_repos.ESCI, "products", "train[:40]")
    assert len(again["train"]) == 40


def test_bare_ids_are_resolved_and_said(hub, capsys):
    assert len(load_splits("imdb")["train"]) == 250  # kerastune's table of renamed ids
    assert len(load_splits("movie-reviews")["train"]) == 50  # the hub's redirect
    out = capsys.readouterr().out
    assert "'imdb' is now 'stanfordnlp/imdb'" in out and "'movie-reviews' is now 'acme/movie-reviews'" in out
    hub.offline = True  # what an earlier run downloaded still loads, from the cache
    try:
        assert len(load_splits("stanfordnlp/imdb")["test"]) == 50
    finally:
        hub.offline = False
    assert "no network: using the cached copy of dataset stanfordnlp/imdb" in capsys.readouterr().out


SMALL = {
    "instruction_tuning": ["epochs=1", "max_train_samples=48", "validation_size=16", "max_eval_samples=16",
                           "max_test_samples=16", "max_new_tokens=4", "num_beams=1", "show_examples=0",
                           "max_source_length=96"],
    "seq2seq_qa": ["epochs=1", "max_train_samples=48", "max_eval_samples=8", "max_new_tokens=8",
                   "max_target_length=48"],
    "mlm_domain_adaptation": ["epochs=1", "train_chunks=48", "test_chunks=16", "precision=float32"],
    "causal_lm": ["epochs=1", "max_train_samples=24", "max_length=64", "max_new_tokens=6", "decoders=greedy",
                  "trace_steps=2"],
    "lora_ppo_detox": ["sft_epochs=1", "ppo_steps=1", "ppo_batch_size=4", "mini_batch_size=2", "rouge_samples=4",
                       "toxicity_samples=4", "compare_samples=2", "output_min_length=4", "output_max_length=8",
                       "toxicity_max_new_tokens=6", "max_target_length=16", "max_source_length=256"],
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(SMALL))
def test_each_recipe_runs_from_its_default_hub_ids(hub, recipe, tmp_path, capsys):
    """The recipe's own default model and dataset ids, downloaded and converted through the real clients."""
    code = main(["run", recipe, "--set", f"output_dir={tmp_path}", *SMALL[recipe]])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["recipe"] == recipe and not any(isinstance(v, float) and np.isnan(v) for v in metrics.values())
    assert "model.name: " in out and "data.dataset: " in out  # the preflight said what comes from the hub


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(hub_repos.DECODERS))
def test_causal_lm_runs_todays_models_from_the_hub(hub, family, tmp_path, capsys):
    """`model=Qwen/Qwen2.5-0.5B` (or a Llama 3.2): downloaded, converted by keras-hub, fine-tuned, reloaded."""
    repo = hub_repos.DECODERS[family]
    code = main(["run", "causal_lm", "--set", f"model={repo}", f"output_dir={tmp_path}", *SMALL["causal_lm"]])
    assert code == 0, capsys.readouterr().err[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert np.isfinite(metrics["eval_loss_before"]) and np.isfinite(metrics["eval_loss_after"])
    assert main(["generate", str(tmp_path), "Esta mochila", "--max-new-tokens", "4"]) == 0
    assert "-> Esta mochila" in capsys.readouterr().out


def test_chat_sft_runs_its_defaults_from_the_hub(hub, tmp_path, capsys):
    """chat_sft's own defaults (Qwen2.5 Instruct, no_robots) from the hub: the chat template comes from the
    checkpoint's tokenizer_config.json, the conversations from no_robots' messages column; the run keeps the
    template and `generate --chat` answers with it."""
    code = main(["run", "chat_sft", "--set", f"output_dir={tmp_path}", "epochs=1", "max_length=128",
                 "num_prompts=1", "max_new_tokens=4"])
    assert code == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    assert "72 train / 8 validation conversations" in out and "loss on the assistant turns" in out
    saved = json.loads((tmp_path / "model" / "chat_template.json").read_text())
    assert saved["chat_template"] == trl_template("qwen2_5") and saved["added_tokens"]["<|im_end|>"] >= 0
    assert main(["generate", str(tmp_path), "--chat", "How much is the mug?"]) == 0
    assert "How much is the mug?\n-> " in capsys.readouterr().out


def test_the_preference_recipes_run_their_defaults_from_the_hub(hub, tmp_path, capsys):
    """reward_model, dpo, grpo and ppo on their own defaults (Qwen2.5 Instruct; trl's UltraFeedback pairs, whose
    prompt is what chosen and rejected share, and its prompts as conversations), one after the other as the README
    runs them: grpo's and ppo's reward is the reward_model run's model."""
    small = ["max_train_samples=32", "max_eval_samples=8", "max_length=512"]
    assert main(["run", "reward_model", "--set", f"output_dir={tmp_path / 'rm'}", "epochs=1", *small]) == 0
    out = capsys.readouterr().out
    assert "32 train / 8 test pairs; dropped 0" in out and "in the chat template" in out
    assert main(["run", "dpo", "--set", f"output_dir={tmp_path / 'dpo'}", "epochs=1", *small]) == 0
    assert "32 train / 8 test pairs in the chat template" in capsys.readouterr().out
    assert main(["run", "grpo", "--set", f"output_dir={tmp_path / 'grpo'}", f"reward.model={tmp_path / 'rm' / 'model'}",
                 "train.steps=1", "max_train_samples=8", "prompts_per_step=2", "num_generations=2",
                 "max_completion_length=4", "eval.num_prompts=2"]) == 0
    assert "8 train / 2 test prompts" in capsys.readouterr().out
    assert json.loads((tmp_path / "grpo" / "metrics.json").read_text())["steps"] == 1
    assert main(["run", "ppo", "--set", f"output_dir={tmp_path / 'ppo'}", f"reward.model={tmp_path / 'rm' / 'model'}",
                 "ppo.steps=1", "max_train_samples=8", "ppo.batch_size=4", "ppo.mini_batch_size=2",
                 "ppo.output_min_length=2", "ppo.output_max_length=5", "eval.num_prompts=2"]) == 0
    assert "8 train / 2 test prompts" in capsys.readouterr().out
    assert json.loads((tmp_path / "ppo" / "metrics.json").read_text())["ppo_steps"] == 1


def test_dry_run_resolves_everything_and_downloads_nothing(hub, capsys):
    hub.requests.clear()
    assert main(["run", "causal_lm", "--dry-run", "--set", "model_revision=refs/pr/1"]) == 0
    out = capsys.readouterr().out
    assert '[model]\nname = "datificate/gpt2-small-spanish"\nrevision = "refs/pr/1"\n' in out
    assert "model.name: model datificate/gpt2-small-spanish@refs/pr/1" in out and "model.safetensors (" in out
    assert "data.dataset: dataset milistu/amazon-esci-data@main" in out and "config 'products'" in out
    assert not [r for r in hub.requests if r.startswith("GET") and r.endswith((".bin", ".safetensors"))]


HUB_ERRORS = {
    "offline": (["model=google/flan-t5-small"], "no network, and the "),
    "missing repo": (["model=acme/no-such-model"], "no model 'acme/no-such-model' on the Hugging Face Hub"),
    "gated model": (["model=org/gated-model"], "is gated or private"),
    "gated dataset": (["dataset=acme/private-data"], "is gated or private"),
    "script-only dataset": (["dataset=acme/qa-script"], "only a loading script"),
    "script-only default": (["dataset=yahoo_answers_qa"], "use 'community-datasets/yahoo_answers_topics'"),
    "bad model revision": (["model_revision=v9.9"], "has no revision 'v9.9'"),
    "bad dataset revision": (["dataset_revision=v9.9"], "has no revision 'v9.9'"),
    "bad dataset config": (["dataset=milistu/amazon-esci-data", "dataset_config=reviews"], "has no config 'reviews'"),
    "no readable weights": (["model=org/tf-only"], "no weights kerastune can read (it has tf_model.h5)"),
    "bare id the hub does not know": (["model=nonexistent-model-xyz"], "no model 'nonexistent-model-xyz'"),
}


@pytest.mark.parametrize("case", sorted(HUB_ERRORS))
@pytest.mark.parametrize("dry_run", [True, False])
def test_hub_errors_are_one_line_and_exit_2(hub, case, dry_run, capsys, tmp_path):
    overrides, expected = HUB_ERRORS[case]
    if case == "offline" and dry_run is False:
        overrides = overrides + ["model_revision=v-never-cached"]
    hub.offline = case == "offline"
    started = time.time()
    try:
        code = main(["run", "instruction_tuning", *(["--dry-run"] if dry_run else []),
                     "--set", f"output_dir={tmp_path}", *overrides])
    finally:
        hub.offline = False
    assert code == 2
    line = one_line_error(capsys)
    assert expected in line, line
    assert time.time() - started < 15  # no retry storm (datasets alone retries for about 20 s)
