"""T5 under `mixed_float16`: keep the residual stream in float32, as transformers does.

T5's residual stream grows past float16's range (65,504), most of all in the
feed-forward output `wo`; transformers keeps `wo` in float32
(`_keep_in_fp32_modules`) and so its residual additions promote to float32.
Keras adds tensors of one dtype only, so here every layer that writes to or
reads the residual stream runs in float32: each transformer layer, its
attention blocks, layer norms and `output_projector`. The feed-forward input
and gate projections (about half of the FLOPs) stay in float16.
"""

import keras_hub
from keras_hub.src.models.t5.t5_transformer_layer import T5TransformerLayer


def keep_residual_in_float32(model):
    """Make a T5 `Seq2SeqLM` (or backbone) safe to run under the `mixed_float16` policy. Returns it."""
    backbone = model.backbone if isinstance(model, keras_hub.models.Seq2SeqLM) else model
    for layer in backbone._flatten_layers(include_self=False):
        if isinstance(layer, T5TransformerLayer):
            half = (layer.input_projector, layer.gate_projector)
            for sublayer in layer._flatten_layers():
                if sublayer not in half:
                    sublayer.dtype_policy = "float32"
    for name in ("encoder_output_layer_norm", "decoder_output_layer_norm"):
        backbone.get_layer(name).dtype_policy = "float32"
    return model

