"""Gemma and Gemma 2 backbones as transformers checkpoints: `config.json` and the weight map.

keras-hub's Gemma exporter writes Gemma 1 only, and keeps one key/value head
(`key_dense.weights[0][0]`), so a grouped-query Gemma or any Gemma 2 would
reload wrong. This is the inverse of keras-hub's importer (convert_gemma.py)
for both: every key/value head, Gemma 2's post-attention and post-feed-forward
norms, its soft caps, query scaling and sliding window. Gemma's norms keep
`scale` with the +1 applied at run time on both sides, so they copy as they are.
"""

import keras
import numpy as np


def hf_config(backbone, tokenizer) -> dict:
    gemma2 = bool(backbone.use_post_ffw_norm)
    config = {
        "architectures": ["Gemma2ForCausalLM" if gemma2 else "GemmaForCausalLM"],
        "model_type": "gemma2" if gemma2 else "gemma",
        "vocab_size": backbone.vocabulary_size, "hidden_size": backbone.hidden_dim,
        "intermediate_size": backbone.intermediate_dim // 2, "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_query_heads, "num_key_value_heads": backbone.num_key_value_heads,
        "head_dim": backbone.head_dim, "rms_norm_eps": backbone.layer_norm_epsilon,
        "hidden_activation": "gelu_pytorch_tanh", "rope_theta": 10000.0, "attention_bias": False,
        "max_position_embeddings": 8192, "tie_word_embeddings": backbone.token_embedding.tie_weights,
        "pad_token_id": tokenizer.token_to_id("<pad>"), "bos_token_id": tokenizer.token_to_id("<bos>"),
        "eos_token_id": tokenizer.token_to_id("<eos>"), "torch_dtype": "float32",
    }
    if gemma2:
        config.update({
            "query_pre_attn_scalar": (backbone.head_dim if backbone.query_head_dim_normalize
                                      else backbone.hidden_dim // backbone.num_query_heads),
            "final_logit_softcapping": backbone.final_logit_soft_cap,
            "attn_logit_softcapping": backbone.attention_logit_soft_cap,
            "sliding_window": backbone.sliding_window_size,
        })
    return config


def backbone_to_hf_weights(backbone) -> dict:
    """transformers' names -> float32 arrays (Linear weights are (out, in))."""
    def array(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable), "float32")

    def heads_in(kernel):  # (heads, hidden, head_dim) -> (heads * head_dim, hidden)
        return array(kernel).transpose(0, 2, 1).reshape(-1, kernel.shape[1])

    weights = {"model.embed_tokens.weight": array(backbone.token_embedding.embeddings),
               "model.norm.weight": array(backbone.layer_norm.scale)}
    if not backbone.token_embedding.tie_weights:
        weights["lm_head.weight"] = array(backbone.token_embedding.reverse_embeddings).T
    for i, block in enumerate(backbone.transformer_layers):
        prefix = f"model.layers.{i}"
        attention = block.attention
        output = array(attention.output_dense.kernel)  # (heads, head_dim, hidden)
        weights.update({
            f"{prefix}.input_layernorm.weight": array(block.pre_attention_norm.scale),
            f"{prefix}.self_attn.q_proj.weight": heads_in(attention.query_dense.kernel),
            f"{prefix}.self_attn.k_proj.weight": heads_in(attention.key_dense.kernel),
            f"{prefix}.self_attn.v_proj.weight": heads_in(attention.value_dense.kernel),
            f"{prefix}.self_attn.o_proj.weight": output.reshape(-1, output.shape[-1]).T,
            f"{prefix}.mlp.gate_proj.weight": array(block.gating_ffw.kernel).T,
            f"{prefix}.mlp.up_proj.weight": array(block.gating_ffw_2.kernel).T,
            f"{prefix}.mlp.down_proj.weight": array(block.ffw_linear.kernel).T,
        })
        if block.use_post_ffw_norm:  # Gemma 2: a norm after attention and after the feed-forward block too
            weights[f"{prefix}.post_attention_layernorm.weight"] = array(block.post_attention_norm.scale)
            weights[f"{prefix}.pre_feedforward_layernorm.weight"] = array(block.pre_ffw_norm.scale)
            weights[f"{prefix}.post_feedforward_layernorm.weight"] = array(block.post_ffw_norm.scale)
        else:  # Gemma 1 calls its pre-feed-forward norm post_attention_layernorm
            weights[f"{prefix}.post_attention_layernorm.weight"] = array(block.pre_ffw_norm.scale)
    return weights
