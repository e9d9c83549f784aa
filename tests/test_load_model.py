"""`load_model`: where models come from, and the T5 tokenizer from a `tokenizer.json`."""

import numpy as np
import pytest
from helpers.hf_checkpoints import write_hf_t5

import kerastune
from kerastune.errors import KerastuneError
from kerastune.models import load as load_module
from kerastune.models.t5.convert import proto_from_tokenizer_json


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, spiece_proto):
    path = tmp_path_factory.mktemp("hf_t5")
    write_hf_t5(path, spiece_proto, seed=2)
    return path


def test_hub_ids_are_downloaded_then_converted(hf_dir, monkeypatch):
    asked = []

    def fake_download(repo_id, revision):
        asked.append((repo_id, revision))
        return hf_dir

    monkeypatch.setattr(load_module, "download_model", fake_download)
    for name in ("hf://google/flan-t5-small", "google/flan-t5-small", "t5-small"):
        assert type(kerastune.load_model(name, revision="v1" if name == "t5-small" else "")).__name__ == "T5Seq2SeqLM"
    assert asked == [("google/flan-t5-small", ""), ("google/flan-t5-small", ""), ("t5-small", "v1")]


def test_saved_run_model_loads_back_with_the_same_outputs(hf_dir, tmp_path):
    model = kerastune.load_model(str(hf_dir))
    model.save_to_preset(str(tmp_path / "model"))
    again = kerastune.load_model(str(tmp_path / "model"))
    x = {"encoder_token_ids": np.array([[5, 6, 7, 1]]), "encoder_padding_mask": np.ones((1, 4), "int32"),
         "decoder_token_ids": np.array([[0, 5]]), "decoder_padding_mask": np.ones((1, 2), "int32")}
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(again(x)), atol=1e-6)
    assert again.preprocessor.tokenizer.vocabulary_size() == model.preprocessor.tokenizer.vocabulary_size()


def test_fast_tokenizer_json_gives_the_same_ids_as_spiece(hf_dir, tmp_path):
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(hf_dir)).save_pretrained(str(tmp_path))  # writes tokenizer.json only
    assert not (tmp_path / "spiece.model").exists()
    proto = proto_from_tokenizer_json(tmp_path / "tokenizer.json")
    import keras_hub

    text = ["Reuters - The striker scored twice, officials said.", "Researchers discovered a planet"]
    ours = keras_hub.models.T5Tokenizer(proto=proto)(text)
    reference = keras_hub.models.T5Tokenizer(proto=(hf_dir / "spiece.model").read_bytes())(text)
    assert [list(np.asarray(a)) for a in ours] == [list(np.asarray(b)) for b in reference]


@pytest.mark.parametrize("name", ["./no/such/dir", "tiny-mamba", "not a model"])
def test_unknown_models_are_clear_errors(name):
    with pytest.raises(KerastuneError):
        kerastune.load_model(name)
