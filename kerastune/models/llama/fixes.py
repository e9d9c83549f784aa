"""A keras-hub 0.32 gap, mended where kerastune imports keras-hub's Llama.

`LlamaBackbone.get_config` leaves out `tie_word_embeddings`, so a tied Llama
(Llama 3.2 1B and 3B, `tiny-llama`) saved with `save_to_preset` comes back
untied and its weights fail to load ("expected 2 variables ... received 0").
The saved config now carries the setting, which `__init__` already accepts.
"""

from keras_hub.src.models.llama.llama_backbone import LlamaBackbone

_get_config = LlamaBackbone.get_config


def _get_config_with_tying(self):
    return {**_get_config(self), "tie_word_embeddings": self.tie_word_embeddings}


LlamaBackbone.get_config = _get_config_with_tying  # harmless once keras-hub saves it too: the same value
