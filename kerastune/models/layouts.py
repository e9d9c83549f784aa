"""How `distribution=model_parallel` shards the weights of T5, GPT-2, DistilBERT and RoBERTa.

Megatron-style: the projections into attention heads and into the feed-forward
layer are split by output column (heads, d_ff), the projections back to the
model width by input row, so each device holds 1/n of every big kernel and one
all-reduce per block joins the halves. Embeddings are split along the model
width rather than the vocabulary: GPT-2's 50,257 tokens divide by nothing.

Keys are regular expressions that Keras matches against each variable's whole
path (keras-hub's layer names, hence the leading `.*`); a path may match at
most one. Everything unmatched (layer norms, small biases, LoRA adapters,
heads) is replicated.
"""

from keras.distribution import LayoutMap

MODEL = "model"

LAYOUTS = {
    # Embeddings: (vocab, width) and T5's untied output head (width, vocab).
    r".*token_embedding/embeddings": (None, MODEL),
    r".*token_embedding/reverse_embeddings": (MODEL, None),
    r".*position_embedding/embeddings": (None, MODEL),
    # T5: Dense kernels (width, heads * head_dim) in, (heads * head_dim, width) out.
    r".*(query|key|value)_projector/kernel": (None, MODEL),
    r".*attention/output_projector/kernel": (MODEL, None),
    r".*(input|gate)_projector/kernel": (None, MODEL),
    r".*layer_\d+/output_projector/kernel": (MODEL, None),
    # GPT-2, DistilBERT, RoBERTa: EinsumDense (width, heads, head_dim) in, (heads, head_dim, width) out.
    r".*attention(_layer)?/(query|key|value)/kernel": (None, MODEL, None),
    r".*attention(_layer)?/(query|key|value)/bias": (MODEL, None),
    r".*attention(_layer)?/attention_output/kernel": (MODEL, None, None),
    r".*feedforward_intermediate_dense/kernel": (None, MODEL),
    r".*feedforward_intermediate_dense/bias": (MODEL,),
    r".*feedforward_output_dense/kernel": (MODEL, None),
}


def layout_map(device_mesh) -> LayoutMap:
    """The LAYOUTS above on `device_mesh` (axes `batch` and `model`)."""
    layouts = LayoutMap(device_mesh)
    for pattern, axes in LAYOUTS.items():
        layouts[pattern] = axes
    return layouts
