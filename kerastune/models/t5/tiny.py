"""`tiny-t5`: a small random FLAN-T5-shaped model with a vocabulary trained offline.

The SentencePiece vocabulary is trained on the run's own training texts, so a
tiny model can learn any dataset with no hub access. Demos and tests use it.
"""

import io

import keras_hub
import sentencepiece as spm

from kerastune.models.activations import gelu_new
from kerastune.models.t5.init import initialize_like_transformers

TINY_T5_CONFIG = dict(
    num_layers=2,
    num_heads=4,
    hidden_dim=128,
    intermediate_dim=256,
    key_value_dim=32,
    dropout=0.1,
    activation=gelu_new,
    use_gated_activation=True,
    tie_embedding_weights=False,  # FLAN-T5 style: untied head, no output scaling
)

DEFAULT_TEXTS = [
    "Given the following text: a tiny model for tests and demos.",
    "World Sports Business Sci/Tech news of the day.",
]


def train_sentencepiece(texts, vocab_size=4000, eos_piece="</s>", bos_piece=None, user_defined_symbols=()) -> bytes:
    """Train a Unigram SentencePiece model: T5's layout by default (pad=0, eos=1, unk=2, no bos); with
    `bos_piece`, Gemma's (pad=0, eos=1, bos=2, unk=3). `user_defined_symbols` (Gemma's `<start_of_turn>`,
    `<end_of_turn>`) come next and are always one piece, wherever they appear in a text.

    Deterministic for the same texts, so a resumed run rebuilds the same
    vocabulary. The size shrinks to what the texts support.
    """
    texts = [t for t in texts if t and t.strip()] or DEFAULT_TEXTS
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        bos_id=2 if bos_piece else -1,
        unk_id=3 if bos_piece else 2,
        pad_piece="<pad>",
        eos_piece=eos_piece,
        bos_piece=bos_piece or "<s>",
        unk_piece="<unk>",
        user_defined_symbols=list(user_defined_symbols),
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        input_sentence_size=0,
        minloglevel=2,
    )
    return model.getvalue()


def tiny_t5(texts=None, vocab_size=4000, encoder_sequence_length=512, decoder_sequence_length=128, seed=0):
    """A tiny T5Seq2SeqLM, initialised like transformers (identically on every backend)."""
    tokenizer = keras_hub.models.T5Tokenizer(proto=train_sentencepiece(texts or [], vocab_size))
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), **TINY_T5_CONFIG
    )
    initialize_like_transformers(backbone, seed)
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=tokenizer,
        encoder_sequence_length=encoder_sequence_length,
        decoder_sequence_length=decoder_sequence_length,
    )
    return keras_hub.models.T5Seq2SeqLM(backbone=backbone, preprocessor=preprocessor)
