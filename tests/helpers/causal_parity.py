"""What every causal-LM family's parity test asks of transformers: logits, and generated tokens."""

import numpy as np
import torch

import kerastune


def check_logits_and_reload(model, reference, low_id, high_id, preset_dir):
    """Logits within 1e-4 of the transformers `reference` on random ids in [low_id, high_id), one row
    right-padded (only real positions compared); then the model saved as a run's `model/` reloads with the
    very same logits. Returns the reloaded model."""
    ids = np.random.RandomState(0).randint(low_id, high_id, size=(2, 24)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 17:] = 0
    with torch.no_grad():
        expected = reference(torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)).logits.numpy()
    logits = np.asarray(model({"token_ids": ids, "padding_mask": mask}))
    assert np.abs(logits - expected)[mask.astype(bool)].max() <= 1e-4
    model.save_to_preset(str(preset_dir))
    again = kerastune.load_model(str(preset_dir))
    assert np.abs(np.asarray(again({"token_ids": ids, "padding_mask": mask})) - logits).max() == 0
    return again


def hf_continuations(model, prompts, max_new_tokens, num_beams) -> list[list[int]]:
    """transformers' new tokens for a batch of prompt ids of different lengths, left-padded into one
    `generate` call as transformers users batch them (the attention mask hides the padding and the
    positions count from each row's first real token); each up to and including the end token."""
    eos = model.config.eos_token_id
    width = max(map(len, prompts))
    ids = torch.tensor([[eos] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
                             do_sample=False, eos_token_id=eos, pad_token_id=eos)
    news = [row[width:] for row in out.tolist()]
    return [new[: new.index(eos) + 1] if eos in new else new for new in news]
