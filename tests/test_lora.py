"""LoRA on T5: PEFT's parameter count, PEFT adapters loaded with the same logits and saved for PEFT, merge, on/off."""

import keras_hub
import numpy as np
import pytest
import torch
from helpers.hf_checkpoints import write_hf_t5

import kerastune
from kerastune.errors import KerastuneError
from kerastune.models.activations import gelu_new
from kerastune.models.lora import (
    adapters_disabled,
    count_parameters,
    enable_lora,
    load_adapters,
    lora_layers,
    merge_adapters,
    parameter_report,
    save_adapters,
)

IDS = np.array([[5, 9, 23, 44, 7, 1, 0, 0], [12, 30, 31, 8, 60, 71, 9, 1]], "int32")
DECODER = np.array([[0, 11, 17, 5, 1, 0], [0, 40, 8, 9, 3, 1]], "int32")


def inputs():
    return {"encoder_token_ids": IDS, "encoder_padding_mask": (IDS != 0).astype("int32"),
            "decoder_token_ids": DECODER, "decoder_padding_mask": np.ones_like(DECODER)}


def test_flan_t5_base_shaped_lora_r32_on_q_and_v_trains_peft_count():
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=512, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=2048, key_value_dim=64,
        activation=gelu_new, use_gated_activation=True, tie_embedding_weights=False,
    )
    # 12 encoder self-attention + 12 decoder self- and 12 cross-attention blocks, q and v each.
    assert enable_lora(backbone, rank=32, alpha=32) == 72
    trainable, total = count_parameters(backbone)
    assert trainable == 3_538_944  # PEFT's print_trainable_parameters for flan-t5-base, r=32, ["q", "v"]
    assert "trainable model parameters: 3538944" in parameter_report(backbone)
    assert list(lora_layers(backbone))[:2] == ["encoder.block.0.layer.0.SelfAttention.q",
                                               "encoder.block.0.layer.0.SelfAttention.v"]
    with pytest.raises(KerastuneError, match="no module named q_proj"):
        enable_lora(backbone, rank=4, targets=("q_proj",))


@pytest.fixture(scope="module")
def peft_adapter(tmp_path_factory, spiece_proto):
    """A random transformers T5, and a PEFT LoRA adapter on q and v with non-zero B (r=4, alpha=8)."""
    from peft import LoraConfig, get_peft_model

    path = tmp_path_factory.mktemp("peft")
    base = write_hf_t5(path / "base", spiece_proto, seed=5)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v"], lora_dropout=0.05,
                                                 task_type="SEQ_2_SEQ_LM"))
    torch.manual_seed(0)
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.2)
    peft_model.eval()
    peft_model.save_pretrained(path / "adapter")
    x = {k: torch.tensor(v, dtype=torch.long) for k, v in zip(
        ("input_ids", "attention_mask", "decoder_input_ids"), (IDS, (IDS != 0), DECODER))}
    with torch.no_grad():
        adapted = peft_model(**x).logits.numpy()
        with peft_model.disable_adapter():
            plain = peft_model(**x).logits.numpy()
    assert np.abs(adapted - plain).max() > 1e-2  # the adapter changes the outputs
    return path, adapted, plain


def test_peft_adapter_gives_the_same_logits_and_switches_off(peft_adapter):
    path, adapted, plain = peft_adapter
    model = kerastune.load_model(str(path / "base"))
    load_adapters(model, path / "adapter")
    assert len(lora_layers(model)) == 2 * 3 * 2  # 2 layers: encoder self, decoder self + cross; q and v
    assert np.abs(np.asarray(model(inputs())) - adapted).max() <= 1e-4
    with adapters_disabled(model):
        assert np.abs(np.asarray(model(inputs())) - plain).max() <= 1e-4
    assert np.abs(np.asarray(model(inputs())) - adapted).max() <= 1e-4  # on again


def test_adapters_save_load_and_merge(peft_adapter, tmp_path):
    from peft import PeftModel
    from transformers import T5ForConditionalGeneration

    path, adapted, _ = peft_adapter
    model = kerastune.load_model(str(path / "base"))
    load_adapters(model, path / "adapter")
    for layer in lora_layers(model).values():  # move the adapter, so the round trip carries kerastune's weights
        layer.lora_a.assign(np.asarray(layer.lora_a) * 1.5)
    ours = np.asarray(model(inputs()))
    saved = save_adapters(model, tmp_path / "adapters")
    assert (saved / "adapter_model.safetensors").stat().st_size < 200_000  # the adapters alone, not the model

    fresh = kerastune.load_model(str(path / "base"))
    load_adapters(fresh, tmp_path / "adapters")
    assert np.abs(np.asarray(fresh(inputs())) - ours).max() <= 1e-5
    peft_model = PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(str(path / "base")),
                                           str(saved)).eval()
    x = {k: torch.tensor(v, dtype=torch.long) for k, v in zip(
        ("input_ids", "attention_mask", "decoder_input_ids"), (IDS, (IDS != 0), DECODER))}
    with torch.no_grad():
        assert np.abs(peft_model(**x).logits.numpy() - ours).max() <= 1e-4

    # Merged, the model is a plain one with the adapted outputs, and saves as a plain preset.
    assert merge_adapters(model) == 12 and not lora_layers(model)
    assert np.abs(np.asarray(model(inputs())) - ours).max() <= 1e-4  # float rounding of W + s A B
    model.save_to_preset(str(tmp_path / "merged"))
    merged = kerastune.load_model(str(tmp_path / "merged"))
    assert not lora_layers(merged)
    assert np.abs(np.asarray(merged(inputs())) - ours).max() <= 1e-4
