"""`tiny-llama`: a small random Llama 3 (grouped-query attention, rotary positions, SwiGLU, RMS norm, tied
head like Llama 3.2 1B) with a byte-level BPE vocabulary trained on the run's texts and Llama 3's special
tokens, so chat markup and the start / end tokens behave as in the real tokenizer."""

import keras
import keras_hub

from kerastune.models.gpt2.tokenizer import train_byte_level_bpe

BEGIN, END = "<|begin_of_text|>", "<|end_of_text|>"
CHAT_TOKENS = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
TINY_LLAMA_CONFIG = dict(num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=128, intermediate_dim=256,
                         rope_max_wavelength=500000, layer_norm_epsilon=1e-5, tie_word_embeddings=True)


def tiny_llama(texts=None, vocab_size=2000, sequence_length=128, seed=0):
    keras.utils.set_random_seed(seed)
    vocabulary, merges = train_byte_level_bpe(texts or [], vocab_size, special_tokens=(BEGIN, END, *CHAT_TOKENS))
    tokenizer = keras_hub.models.Llama3Tokenizer(vocabulary=vocabulary, merges=merges, bos_token=BEGIN,
                                                 eos_token=END, misc_special_tokens=set(CHAT_TOKENS[:2]))
    backbone = keras_hub.models.Llama3Backbone(vocabulary_size=tokenizer.vocabulary_size(), **TINY_LLAMA_CONFIG)
    preprocessor = keras_hub.models.Llama3CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=sequence_length)
    return keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=preprocessor)
