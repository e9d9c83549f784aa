"""`tiny-gpt2`: a small random GPT-2 with a byte-level BPE vocabulary trained on the run's texts."""

import keras
import keras_hub

from kerastune.models.gpt2.convert import causal_lm
from kerastune.models.gpt2.tokenizer import gpt2_tokenizer, train_byte_level_bpe

TINY_GPT2_CONFIG = dict(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512, dropout=0.1,
                        max_sequence_length=512)


def tiny_gpt2(texts=None, vocab_size=2000, sequence_length=128, seed=0):
    keras.utils.set_random_seed(seed)
    tokenizer = gpt2_tokenizer(*train_byte_level_bpe(texts or [], vocab_size))
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=tokenizer.vocabulary_size(), **TINY_GPT2_CONFIG)
    return causal_lm(backbone, tokenizer, sequence_length)
