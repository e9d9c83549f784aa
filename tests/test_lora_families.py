"""LoRA on Llama, Qwen2 and Gemma 2 against PEFT: a PEFT adapter (plain, rsLoRA, DoRA; dropout set) loads with
PEFT's logits and trainable-parameter count; kerastune's saved adapter loads in PEFT with the same logits; merging
gives a plain model with the adapted outputs; switching adapters off gives the base model; bad targets get a line."""

import numpy as np
import pytest
import torch
from helpers.hf_checkpoints import cached_checkpoint, write_hf_decoder

import kerastune
from kerastune.errors import KerastuneError
from kerastune.models.lora import (
    adapters_disabled,
    count_parameters,
    enable_lora,
    load_adapters,
    lora_layers,
    merge_adapters,
    save_adapters,
)

IDS = np.random.RandomState(0).randint(3, 150, size=(2, 16)).astype("int32")
MASK = np.ones_like(IDS)
MASK[1, 11:] = 0
# (family, PEFT target_modules, rsLoRA, DoRA, adapted layers in the 2-layer model)
CASES = [("llama", ["q_proj", "v_proj"], False, False, 4), ("gemma2", "all-linear", True, False, 14),
         ("qwen2", ["q_proj", "k_proj", "o_proj", "down_proj"], False, True, 8)]


def hf_logits(model):
    with torch.no_grad():
        return model(torch.tensor(IDS, dtype=torch.long), attention_mask=torch.tensor(MASK)).logits.numpy()


def keras_logits(model):
    return np.asarray(model({"token_ids": IDS, "padding_mask": MASK}))


def close(a, b, tolerance=1e-4):
    return np.abs(a - b)[MASK.astype(bool)].max() <= tolerance


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def peft_adapter(request, product_texts, tmp_path_factory):
    """A random transformers model and a PEFT adapter on it with non-zero B (and, for DoRA, moved magnitudes)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    family, modules, rslora, dora, count = request.param
    base_dir = cached_checkpoint(request, f"hf_{family}_random", {"family": family, "seed": 3},
                                 "\n".join(product_texts).encode(),
                                 lambda path: write_hf_decoder(path, family, product_texts, seed=3))
    base = AutoModelForCausalLM.from_pretrained(str(base_dir)).eval()
    plain = hf_logits(base)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=modules, lora_dropout=0.1,
                                                 use_rslora=rslora, use_dora=dora, task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name or "magnitude" in name:
            with torch.no_grad():
                weight.add_(torch.randn_like(weight) * 0.2)
    trainable = peft_model.get_nb_trainable_parameters()[0]
    peft_model.eval()
    adapter_dir = tmp_path_factory.mktemp("peft") / "adapter"
    peft_model.save_pretrained(adapter_dir)
    adapted = hf_logits(peft_model)
    assert np.abs(adapted - plain).max() > 1e-2  # the adapter changes the outputs
    return base_dir, adapter_dir, adapted, plain, trainable, count


def test_peft_adapter_loads_with_peft_logits_and_count(peft_adapter):
    base_dir, adapter_dir, adapted, plain, trainable, count = peft_adapter
    model = kerastune.load_model(str(base_dir))
    load_adapters(model, adapter_dir)
    assert len(lora_layers(model)) == count
    assert count_parameters(model)[0] == trainable
    assert close(keras_logits(model), adapted)
    with adapters_disabled(model):
        assert close(keras_logits(model), plain)
    assert close(keras_logits(model), adapted)  # on again


def test_saved_adapter_loads_in_peft_and_merges(peft_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir, adapted, _, _, count = peft_adapter
    model = kerastune.load_model(str(base_dir))
    load_adapters(model, adapter_dir)
    for layer in lora_layers(model).values():  # move the adapter, so the round trip carries kerastune's weights
        layer.lora_b.assign(np.asarray(layer.lora_b) * 1.5)
    ours = keras_logits(model)
    save_adapters(model, tmp_path / "adapter", base_model=str(base_dir))
    reference = AutoModelForCausalLM.from_pretrained(str(base_dir)).eval()
    peft_model = PeftModel.from_pretrained(reference, str(tmp_path / "adapter")).eval()
    assert close(hf_logits(peft_model), ours)
    assert not close(ours, adapted)

    assert merge_adapters(model) == count and not lora_layers(model)
    assert close(keras_logits(model), ours)
    model.save_to_preset(str(tmp_path / "merged"))
    assert close(keras_logits(kerastune.load_model(str(tmp_path / "merged"))), ours)


def test_targets_by_name_regex_and_bad_targets():
    model = kerastune.load_model("tiny-llama", texts=["a b c"] * 20, vocab_size=300)
    assert enable_lora(model, rank=2, targets=["all-linear"]) == 2 * 7
    with pytest.raises(KerastuneError, match="already has LoRA adapters"):
        enable_lora(model, rank=2)
    model = kerastune.load_model("tiny-gemma", texts=["a b c"] * 20, vocab_size=300)
    assert list(lora_layers(model)) == []
    assert enable_lora(model, rank=2, target_regex=r"model\.layers\.0\.self_attn\.(q|v)_proj") == 2
    assert list(lora_layers(model)) == ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]
    with pytest.raises(KerastuneError, match="no module named query_projector.*q_proj"):
        enable_lora(kerastune.load_model("tiny-qwen", texts=["a b c"] * 20, vocab_size=300), 2,
                    targets=["query_projector"])
    with pytest.raises(KerastuneError, match="match no layer"):
        enable_lora(kerastune.load_model("tiny-gpt2", texts=["a b c"] * 20, vocab_size=300), 2, target_regex="x")
