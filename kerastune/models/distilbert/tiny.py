"""`tiny-distilbert`: a small random DistilBERT masked LM with a WordPiece vocabulary trained offline."""

import keras_hub

from kerastune.models.distilbert.convert import match_head_epsilon

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_DISTILBERT_CONFIG = dict(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=256, max_sequence_length=512)


def train_wordpiece(texts, vocab_size=2000) -> list[str]:
    """An uncased WordPiece vocabulary from `texts`, specials first (BERT's layout)."""
    texts = [t for t in texts if t and t.strip()] or ["a tiny model for tests and demos"]
    import tensorflow as tf

    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts).batch(1000),
        vocabulary_size=vocab_size, lowercase=True, strip_accents=True, reserved_tokens=SPECIAL_TOKENS,
    )
    return list(vocabulary)


def tiny_distilbert(texts=None, vocab_size=2000, sequence_length=128, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    vocabulary = train_wordpiece(texts or [], vocab_size)
    tokenizer = keras_hub.models.DistilBertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.DistilBertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), **TINY_DISTILBERT_CONFIG
    )
    preprocessor = keras_hub.models.DistilBertMaskedLMPreprocessor(tokenizer=tokenizer, sequence_length=sequence_length)
    model = keras_hub.models.DistilBertMaskedLM(backbone=backbone, preprocessor=preprocessor)
    return match_head_epsilon(model)
