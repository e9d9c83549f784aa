"""Exports: a TF Serving SavedModel that answers exactly like `kerastune generate`, and HF format round trips."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from helpers.hf_checkpoints import trained_hf_t5, write_hf_t5

import kerastune
from kerastune.cli import main
from kerastune.export.hf_format import export_hf
from kerastune.training.fit import compile_for_training, without_preprocessor
from kerastune.training.optimizer import create_optimizer

ON_JAX = keras.config.backend() == "jax"
TENSORFLOW_ONLY = pytest.mark.skipif(ON_JAX, reason="the export graph is built on TensorFlow; the TF pass covers it")

PROMPTS = [
    "Reuters - The striker scored twice against the league leaders on Monday.",
    "Scientists discovered a rare bacterium.",
    "AP - Shares of the retailer rose sharply after analyst expectations, officials said.",
]

# Runs in a fresh interpreter that imports TensorFlow (and TensorFlow Text, to register the
# SentencePiece op as TF Serving's model server does) but neither keras nor kerastune.
SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    out = served(prompts=tf.constant(json.loads(sys.argv[2])))
    assert "kerastune" not in sys.modules and "keras_hub" not in sys.modules
    # a byte-level BPE piece may be partial UTF-8: U+FFFD, as transformers and `kerastune generate` show it
    print(json.dumps([t.decode("utf-8", errors="replace") for t in out["text"].numpy()]))
""")


@pytest.fixture(scope="module")
def run_dir(request, tmp_path_factory, spiece_proto):
    """A run directory (config.toml + model/) holding a T5 that emits varied text."""
    root = tmp_path_factory.mktemp("export_run")
    hf_dir, _ = trained_hf_t5(request, spiece_proto, seed=4, train_steps=150, copy_words=[3, 4])
    kerastune.load_model(str(hf_dir)).save_to_preset(str(root / "run" / "model"))
    (root / "run" / "config.toml").write_text("max_new_tokens = 10\nnum_beams = 1\nmax_source_length = 128\n")
    return root / "run"


@pytest.fixture(scope="module")
def greedy_export(run_dir):
    """`kerastune export` of the run (greedy, its config's num_beams), once for the tests that read it."""
    out = run_dir.parent / "export_greedy"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    return out


def generated(run_dir, capsys, *flags):
    assert main(["generate", str(run_dir), *PROMPTS, *flags]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [line[3:] for line in lines if line.startswith("-> ")]


@pytest.mark.slow
@pytest.mark.parametrize("num_beams", ["1", pytest.param("4", marks=TENSORFLOW_ONLY)])
def test_saved_model_answers_exactly_like_generate(run_dir, tmp_path, capsys, num_beams, request):
    if num_beams == "1":
        out = request.getfixturevalue("greedy_export")
    else:
        out = tmp_path / f"export_{num_beams}"
        assert main(["export", str(run_dir), "--out", str(out), "--num-beams", num_beams]) == 0
    expected = generated(run_dir, capsys, "--num-beams", num_beams)
    served = subprocess.run([sys.executable, "-c", SERVE, str(out), json.dumps(PROMPTS)],
                            capture_output=True, text=True)
    assert served.returncode == 0, served.stderr[-2000:]
    texts = json.loads(served.stdout.strip().splitlines()[-1])
    assert texts == expected
    assert len(set(texts)) > 1 and all(texts)


@pytest.mark.slow
@TENSORFLOW_ONLY
def test_saved_model_cli_shows_signatures_and_runs(greedy_export):
    out = greedy_export
    saved_model_cli = str(Path(sys.executable).parent / "saved_model_cli")
    shown = subprocess.run([saved_model_cli, "show", "--dir", str(out), "--all"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for expected in ("signature_def['serving_default']", "signature_def['logits']", "inputs['prompts']",
                     "outputs['text']", "outputs['token_ids']", "outputs['logits']", "DT_STRING"):
        assert expected in shown.stdout
    cli = "import sys, tensorflow_text; from tensorflow.python.tools.saved_model_cli import main; sys.exit(main())"
    ran = subprocess.run(
        [sys.executable, "-c", cli, "run", "--dir", str(out), "--tag_set", "serve", "--signature_def",
         "serving_default", "--input_exprs", f"prompts={json.dumps(PROMPTS[:1])}"],
        capture_output=True, text=True,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Result for output key text" in ran.stdout


@pytest.mark.slow
@TENSORFLOW_ONLY
def test_logits_signature_matches_the_model(run_dir, greedy_export):
    import tensorflow as tf

    out = greedy_export
    served = tf.saved_model.load(str(out)).signatures["logits"]
    result = served(prompts=tf.constant(PROMPTS[:2]), targets=tf.constant(["a b", "the river rose"]))
    model = kerastune.load_model(str(run_dir / "model"))
    ids = result["decoder_token_ids"].numpy()
    expected = model({
        "encoder_token_ids": result["encoder_token_ids"].numpy(),
        "encoder_padding_mask": (result["encoder_token_ids"].numpy() != 0).astype("int32"),
        "decoder_token_ids": ids,
        "decoder_padding_mask": result["decoder_padding_mask"].numpy(),
    })
    np.testing.assert_allclose(result["logits"].numpy(), np.asarray(expected), atol=1e-4)


@pytest.mark.parametrize("config", [dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
                                    dict(feed_forward_proj="relu", tie_word_embeddings=True)])
def test_hf_round_trip_after_a_training_step(tmp_path, spiece_proto, config):
    from transformers import T5ForConditionalGeneration

    write_hf_t5(tmp_path / "in", spiece_proto, seed=6, **config)
    model = kerastune.load_model(str(tmp_path / "in"))
    x = {"encoder_token_ids": np.array([[5, 9, 12, 1], [7, 8, 1, 0]]),
         "encoder_padding_mask": np.array([[1, 1, 1, 1], [1, 1, 1, 0]]),
         "decoder_token_ids": np.array([[0, 5, 6], [0, 9, 1]]),
         "decoder_padding_mask": np.ones((2, 3), "int32")}
    before = np.asarray(model(x))
    with without_preprocessor(model):
        compile_for_training(model, create_optimizer(1e-2, 1))
        model.train_on_batch(x, np.array([[5, 6, 1], [9, 1, 0]]), sample_weight=np.array([[1, 1, 1], [1, 1, 0]]))
    after = np.asarray(model(x))
    assert np.abs(after - before).max() > 1e-3  # the step changed the model
    export_hf(model, tmp_path / "out")
    reloaded = T5ForConditionalGeneration.from_pretrained(str(tmp_path / "out")).eval()
    with torch.no_grad():
        theirs = reloaded(
            input_ids=torch.tensor(x["encoder_token_ids"]), attention_mask=torch.tensor(x["encoder_padding_mask"]),
            decoder_input_ids=torch.tensor(x["decoder_token_ids"]),
        ).logits.numpy()
    assert np.abs(theirs - after).max() <= 1e-4
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    ours = [list(np.asarray(t)) for t in model.preprocessor.tokenizer(PROMPTS)]
    assert [ids[:-1] for ids in tokenizer(PROMPTS).input_ids] == ours  # transformers appends </s>


@pytest.mark.slow
@TENSORFLOW_ONLY
@pytest.mark.parametrize("source, num_beams", [  # beam search, no start token; greedy, a start token, rotary
    ("hf_gpt2", 3), ("tiny-llama", 1)])
def test_causal_saved_model_continues_prompts_exactly_like_generate(source, num_beams, request, product_texts,
                                                                     tmp_path, capsys):
    """Prompts of different lengths (and an empty one) in one request: beam search runs once per prompt length,
    each prompt at its own positions, as `kerastune generate` batches them."""
    run_dir = tmp_path / "run"
    if source == "hf_gpt2":
        model = kerastune.load_model(str(request.getfixturevalue("hf_gpt2")[0]))
    else:
        model = kerastune.load_model(source, texts=product_texts, vocab_size=400)
    model.save_to_preset(str(run_dir / "model"))
    (run_dir / "config.toml").write_text(f"max_new_tokens = 10\nnum_beams = {num_beams}\n")
    prompts = ["Esta mochila", "La nueva lámpara de escritorio de Casa Nova es", "Resiste", "Resiste", ""]
    assert main(["export", str(run_dir), "--out", str(tmp_path / "export")]) == 0
    assert main(["generate", str(run_dir), *prompts]) == 0
    expected = [line[3:] for line in capsys.readouterr().out.splitlines() if line.startswith("-> ")]
    served = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "export"), json.dumps(prompts)],
                            capture_output=True, text=True)
    assert served.returncode == 0, served.stderr[-2000:]
    texts = json.loads(served.stdout.strip().splitlines()[-1])
    assert texts == expected and texts[1].startswith(prompts[1]) and len(set(texts)) == 4 and texts[2] == texts[3]


def printed_answers(out: str, prompts) -> list[str]:
    """What `kerastune generate` printed for each prompt ("PROMPT\n-> TEXT" blocks; a text may span lines)."""
    starts = [out.index(f"{p}\n-> ") for p in prompts] + [len(out)]
    return [out[s + len(p) + 4 : end - 1] for p, s, end in zip(prompts, starts, starts[1:])]


@pytest.mark.slow
@TENSORFLOW_ONLY
@pytest.mark.parametrize("source, num_beams", [  # byte-level BPE, no stripping, greedy; SentencePiece, strips, beams
    ("tiny-qwen", 1), ("tiny-gemma", 2)])
def test_chat_saved_model_answers_exactly_like_generate_chat(source, num_beams, product_texts, tmp_path, capsys):
    """A chat run's model: the SavedModel applies its chat template to each user message, stops at the end of the
    turn and serves the answer alone, exactly what `kerastune generate --chat` prints."""
    from kerastune.models.chat_templates import load_chat_template, save_chat_template

    run_dir = tmp_path / "run"
    model = kerastune.load_model(source, texts=product_texts, vocab_size=400)
    # A random model's logits are nearly flat, and greedy search would pick between near-ties that the served
    # graph's float rounding can flip; a wider (tied) embedding spreads the logits so the choice is clear.
    embeddings = model.backbone.token_embedding.embeddings
    embeddings.assign(embeddings * 30.0)
    model.save_to_preset(str(run_dir / "model"))
    save_chat_template(run_dir / "model", load_chat_template(source, model))
    (run_dir / "config.toml").write_text(f"max_new_tokens = 10\nnum_beams = {num_beams}\n")
    prompts = ["Esta mochila", "  ¿Cuánto cuesta la lámpara de escritorio?  ", "Resiste"]
    assert main(["export", str(run_dir), "--out", str(tmp_path / "export")]) == 0
    assert main(["generate", str(run_dir), "--chat", *prompts]) == 0
    expected = printed_answers(capsys.readouterr().out, prompts)
    served = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "export"), json.dumps(prompts)],
                            capture_output=True, text=True)
    assert served.returncode == 0, served.stderr[-2000:]
    texts = json.loads(served.stdout.strip().splitlines()[-1])
    assert texts == expected and len(expected) == 3
