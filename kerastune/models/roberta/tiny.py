"""`tiny-roberta`: a small random RoBERTa classifier with a byte-level BPE vocabulary trained offline.

Its default labels are the hate-speech reward model's (`nothate`, `hate`), so
the detox demo can train it on a small labelled sample and use it as the
reward model.
"""

import keras
import keras_hub

from kerastune.models.gpt2.tokenizer import train_byte_level_bpe
from kerastune.models.roberta.convert import roberta_tokenizer, text_classifier

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..3; <mask> after them
TINY_ROBERTA_CONFIG = dict(num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128, max_sequence_length=512)


def tiny_roberta(texts=None, vocab_size=1000, sequence_length=256, labels=("nothate", "hate"), seed=0):
    keras.utils.set_random_seed(seed)
    tokenizer = roberta_tokenizer(*train_byte_level_bpe(texts or [], vocab_size, special_tokens=SPECIAL_TOKENS))
    backbone = keras_hub.models.RobertaBackbone(vocabulary_size=tokenizer.vocabulary_size(), **TINY_ROBERTA_CONFIG)
    return text_classifier(backbone, tokenizer, dict(enumerate(labels)), sequence_length)
