"""The repositories the local hub serves: tiny stand-ins under the recipes' real default ids, with the
real repositories' layouts (which files, which formats, which revisions), plus the awkward cases."""

import io
import json
import shutil

import numpy as np
import pandas as pd

from helpers.hf_checkpoints import write_bin, write_hf_roberta_classifier

# Each recipe's default model and dataset ids (recipes/*.toml), served with tiny contents.
GPT2 = "datificate/gpt2-small-spanish"
FLAN_SMALL, FLAN_BASE = "google/flan-t5-small", "google/flan-t5-base"
DISTILBERT = "distilbert/distilbert-base-uncased"
HATE = "facebook/roberta-hate-speech-dynabench-r4-target"
DECODERS = {"qwen2": "Qwen/Qwen2.5-0.5B", "llama": "unsloth/Llama-3.2-1B"}  # what causal_lm users pick today
INSTRUCT, NO_ROBOTS = "Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceH4/no_robots"  # chat_sft's defaults
PREFERENCES, PROMPTS = "trl-lib/ultrafeedback_binarized", "trl-lib/ultrafeedback-prompt"  # reward_model, dpo, grpo, ppo
ESCI, AG_NEWS, YAHOO, IMDB, DIALOGSUM = ("milistu/amazon-esci-data", "fancyzhx/ag_news",
                                         "community-datasets/yahoo_answers_topics", "stanfordnlp/imdb",
                                         "knkarthick/dialogsum")


def parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, row_group_size=500)
    return buffer.getvalue()


def card(configs: dict) -> bytes:
    """A dataset card whose YAML names each config's data files, as the hub's parquet datasets do."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {pattern}" for split, pattern in splits.items()]
    return ("\n".join(lines + ["---", "", "A test dataset."]) + "\n").encode()


def add_models(hub, root, gpt2, t5_dir, distilbert, roberta_dir):
    """gpt2 = (directory, torch model), the others directories written by transformers."""
    gpt2_dir, gpt2_model = gpt2
    # The Spanish GPT-2's layout: main has pytorch_model.bin, tf_model.h5 and flax_model.msgpack but no
    # safetensors; a safetensors conversion waits in the unmerged refs/pr/1.
    bin_dir = write_bin(gpt2_model, gpt2_dir, root / "gpt2_bin")
    hub.add_folder("models", GPT2, bin_dir)
    hub.repos[("models", GPT2)]["main"].update({"tf_model.h5": b"\x89HDF\r\n" + bytes(4000),
                                                "flax_model.msgpack": bytes(4000)})
    hub.add_folder("models", GPT2, gpt2_dir, revision="refs/pr/1")
    for repo in (FLAN_SMALL, FLAN_BASE):
        hub.add_folder("models", repo, t5_dir)
    hub.add_folder("models", DISTILBERT, write_bin(distilbert, root / "distilbert", root / "distilbert_bin", shards=2))
    hub.add_folder("models", HATE, roberta_dir)
    # The awkward cases.
    hub.add("models", "org/tf-only", {"config.json": (gpt2_dir / "config.json").read_bytes(),
                                      "tf_model.h5": b"\x89HDF\r\n" + bytes(100)})
    hub.add_folder("models", "org/gated-model", t5_dir)
    hub.gated.add(("models", "org/gated-model"))


def add_decoders(hub, root, texts):
    """Tiny transformers-written Qwen2 and Llama under today's ids: config.json, model.safetensors,
    tokenizer.json and tokenizer_config.json, as those repositories have them."""
    from helpers.hf_checkpoints import write_hf_decoder

    for family, repo in DECODERS.items():
        write_hf_decoder(root / family, family, texts)
        hub.add_folder("models", repo, root / family)


def add_instruct(hub, root, chat_template: str):
    """The tiny Qwen2 again under the instruct id, its chat template in tokenizer_config.json and `<|im_end|>` as
    the end token, as Qwen2.5 Instruct's repository has them (add_decoders first)."""
    folder = root / "qwen2-instruct"
    shutil.copytree(root / "qwen2", folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(chat_template=chat_template, eos_token="<|im_end|>")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    hub.add_folder("models", INSTRUCT, folder)


def add_datasets(hub, rows):
    """rows: name -> list of dicts from the project's sample-data generators."""
    # Real product rows carry long bullet-point texts; 1 kB of incompressible text each makes a shard
    # large enough (about 1 MB) that reading its footer is visibly less than reading it.
    rng = np.random.default_rng(0)
    products = [{**r, "product_bullet_point": rng.bytes(512).hex()} for r in rows["products"]]
    third = len(products) // 3
    esci = {f"products/train-0000{i}-of-00003.parquet": parquet(products[i * third : (i + 1) * third])
            for i in range(3)}
    esci["sessions/train-00000-of-00001.parquet"] = parquet([{"query": "q", "product_id": "p"}])
    esci["README.md"] = card({"products": {"train": "products/train-*"}, "sessions": {"train": "sessions/train-*"}})
    hub.add("datasets", ESCI, esci)
    news = rows["news"]
    hub.add("datasets", AG_NEWS, {"data/train-00000-of-00001.parquet": parquet(news[:-100]),
                                  "data/test-00000-of-00001.parquet": parquet(news[-100:])})
    hub.add("datasets", YAHOO, {
        "yahoo_answers_topics/train-00000-of-00001.parquet": parquet(rows["qa"]),
        "yahoo_answers_topics/test-00000-of-00001.parquet": parquet(rows["qa"][:20]),
    })
    reviews = rows["reviews"]
    hub.add("datasets", IMDB, {"plain_text/train-00000-of-00001.parquet": parquet(reviews[:-50]),
                               "plain_text/test-00000-of-00001.parquet": parquet(reviews[-50:]),
                               "README.md": card({"plain_text": {"train": "plain_text/train-*",
                                                                 "test": "plain_text/test-*"}})})
    hub.add("datasets", DIALOGSUM, {"train.csv": pd.DataFrame(rows["dialogues"]).to_csv(index=False).encode()})
    # no_robots: a messages column (a list of {role, content} structs) beside prompt, prompt_id and category.
    chats = [{"prompt": c[0]["content"], "prompt_id": f"{i:04d}", "messages": c, "category": "Chat"}
             for i, c in enumerate(rows["chats"])]
    hub.add("datasets", NO_ROBOTS, {"data/train-00000-of-00001.parquet": parquet(chats[:-20]),
                                    "data/test-00000-of-00001.parquet": parquet(chats[-20:])})
    # trl's UltraFeedback: whole conversations chosen and rejected (the prompt is what they share) with their
    # scores; and the prompts alone, as lists of messages.
    pairs = rows.get("pairs", [])
    binarized = [{"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"],
                  "score_chosen": 8.0, "score_rejected": 3.0} for p in pairs]
    hub.add("datasets", PREFERENCES, {"data/train-00000-of-00001.parquet": parquet(binarized[:-16]),
                                      "data/test-00000-of-00001.parquet": parquet(binarized[-16:])})
    prompts = [{"prompt": p["prompt"]} for p in pairs]
    hub.add("datasets", PROMPTS, {"data/train-00000-of-00001.parquet": parquet(prompts[:-16]),
                                  "data/test-00000-of-00001.parquet": parquet(prompts[-16:])})
    # A legacy bare id the hub redirects (not in kerastune's table of renamed ids).
    hub.add("datasets", "acme/movie-reviews", {"data/train-00000-of-00001.parquet": parquet(reviews[:50])})
    hub.redirects["movie-reviews"] = "acme/movie-reviews"
    # A dataset that is only a loading script, as yahoo_answers_qa is today.
    hub.add("datasets", "acme/qa-script", {"qa-script.py": b"import datasets\n", "README.md": b"# QA\n"})
    hub.add("datasets", "acme/private-data", {"data/train.csv": b"text\nhello\n"})
    hub.gated.add(("datasets", "acme/private-data"))


def qa_rows(pairs: list[dict]) -> list[dict]:
    """The sample's question/answer pairs in yahoo_answers_topics' columns (half with details)."""
    return [{"id": i, "topic": i % 10, "question_title": r["question"],
             "question_content": "Thanks in advance." if i % 2 else "", "best_answer": r["answer"]}
            for i, r in enumerate(pairs)]


def roberta_classifier(path, texts):
    """The hate-speech reward model's stand-in: 514 positions, as roberta-base has."""
    write_hf_roberta_classifier(path, texts, max_position_embeddings=514)
    (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    return path
