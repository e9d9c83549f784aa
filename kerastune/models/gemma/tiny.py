"""`tiny-gemma`: a small random Gemma 2 (grouped-query attention, rotary positions, GeGLU, pre- and
post-norms, soft-capped attention and final logits, a tied head scaled by sqrt(hidden)) with a
SentencePiece vocabulary trained on the run's texts in Gemma's layout (<pad> 0, <eos> 1, <bos> 2, <unk> 3,
then Gemma's chat markers `<start_of_turn>` and `<end_of_turn>`)."""

import keras
import keras_hub

from kerastune.models.t5.tiny import train_sentencepiece

CHAT_TOKENS = ("<start_of_turn>", "<end_of_turn>")
TINY_GEMMA_CONFIG = dict(num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=128, intermediate_dim=512,
                         head_dim=32, query_head_dim_normalize=True, use_post_ffw_norm=True,
                         use_post_attention_norm=True, final_logit_soft_cap=30.0, attention_logit_soft_cap=50.0,
                         use_sliding_window_attention=True, sliding_window_size=4096)


def tiny_gemma(texts=None, vocab_size=2000, sequence_length=128, seed=0):
    keras.utils.set_random_seed(seed)
    proto = train_sentencepiece(texts or [], vocab_size, eos_piece="<eos>", bos_piece="<bos>",
                                user_defined_symbols=CHAT_TOKENS)
    tokenizer = keras_hub.models.GemmaTokenizer(proto=proto)
    backbone = keras_hub.models.GemmaBackbone(vocabulary_size=tokenizer.vocabulary_size(), **TINY_GEMMA_CONFIG)
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(tokenizer=tokenizer, sequence_length=sequence_length)
    return keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=preprocessor)
