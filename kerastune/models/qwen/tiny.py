"""`tiny-qwen`: a small random Qwen 2.5 (grouped-query attention with q/k/v biases, rotary positions,
SwiGLU, tied head like Qwen2.5-0.5B) with a byte-level BPE vocabulary trained on the run's texts and
Qwen's special tokens (no start token; `<|im_start|>` / `<|im_end|>` for chat)."""

import keras
import keras_hub

from kerastune.models.gpt2.tokenizer import train_byte_level_bpe

END = "<|endoftext|>"
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
TINY_QWEN_CONFIG = dict(num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=128, intermediate_dim=256,
                        rope_max_wavelength=1000000, layer_norm_epsilon=1e-6, tie_word_embeddings=True)


def tiny_qwen(texts=None, vocab_size=2000, sequence_length=128, seed=0):
    keras.utils.set_random_seed(seed)
    vocabulary, merges = train_byte_level_bpe(texts or [], vocab_size, special_tokens=(END, *CHAT_TOKENS))
    tokenizer = keras_hub.models.QwenTokenizer(vocabulary=vocabulary, merges=merges,
                                               unsplittable_tokens=[END, *CHAT_TOKENS])  # as keras-hub converts Qwen
    backbone = keras_hub.models.QwenBackbone(vocabulary_size=tokenizer.vocabulary_size(), **TINY_QWEN_CONFIG)
    preprocessor = keras_hub.models.QwenCausalLMPreprocessor(tokenizer=tokenizer, sequence_length=sequence_length)
    return keras_hub.models.QwenCausalLM(backbone=backbone, preprocessor=preprocessor)
