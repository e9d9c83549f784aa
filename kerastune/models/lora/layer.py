"""One LoRA-adapted layer: a frozen Dense / EinsumDense plus PEFT's low-rank update, with dropout, rsLoRA and DoRA.

Keras's own `enable_lora` shapes its factors after the kernel: for an
attention projection whose kernel is (hidden, heads, head_dim) it makes
A (hidden, heads, r) and B (r, head_dim), which is not PEFT's LoRA and cannot
hold a PEFT adapter. Here A is (inputs, r) and B is (r, outputs) over the
flattened input and output axes, which is PEFT's `lora_A.weight.T` and
`lora_B.weight.T` for every kernel layout keras-hub uses (Gemma's
(heads, hidden, head_dim) included), so adapters move to and from PEFT as they
are. The output is PEFT's:

    base(x) + scale * B A dropout(x),   scale = alpha / r   (rsLoRA: alpha / sqrt(r))

and with DoRA, PEFT's magnitude-rescaled form, its weight norm held constant
in the gradient as the DoRA paper and PEFT do.
"""

import math

import keras
import numpy as np
from keras import ops

from kerastune.errors import KerastuneError


def _float_policy(policy):
    """The base's dtype policy without its quantization: the adapter computes and keeps its factors in float."""
    if policy.compute_dtype == policy.variable_dtype:
        return keras.DTypePolicy(policy.variable_dtype)
    return keras.DTypePolicy(f"mixed_{policy.compute_dtype}")


class KernelAxes:
    """How a Dense / EinsumDense kernel splits into input and output axes, and its (inputs, outputs) matrix."""

    def __init__(self, layer):
        if isinstance(layer, keras.layers.Dense):
            x, kernel, out = "...i", "io", "...o"
        else:
            (x, kernel), out = layer.equation.split("->")[0].split(","), layer.equation.split("->")[1]
        self.inputs = "".join(c for c in x if c in kernel)
        self.outputs = "".join(c for c in out if c in kernel)
        if (not x.endswith(self.inputs) or not out.endswith(self.outputs)
                or sorted(self.inputs + self.outputs) != sorted(kernel)):
            raise KerastuneError(f"{layer.name}: LoRA needs a kernel of input and output axes only, "
                                 f"not {layer.equation}")
        self.kernel = kernel
        sizes = dict(zip(kernel, layer.kernel.shape))
        self.input_shape = tuple(sizes[c] for c in self.inputs)
        self.output_shape = tuple(sizes[c] for c in self.outputs)
        self.fan_in = math.prod(self.input_shape)
        self.fan_out = math.prod(self.output_shape)

    def to_matrix(self, kernel):
        """The kernel as an (inputs, outputs) matrix, axes flattened in PEFT's (row-major) order."""
        matrix = ops.einsum(f"{self.kernel}->{self.inputs}{self.outputs}", kernel)
        return ops.reshape(matrix, (self.fan_in, self.fan_out))

    def from_matrix(self, matrix):
        """The inverse of `to_matrix`: an (inputs, outputs) matrix in the kernel's own layout."""
        matrix = ops.reshape(matrix, self.input_shape + self.output_shape)
        return ops.einsum(f"{self.inputs}{self.outputs}->{self.kernel}", matrix)


class LoraAdapted(keras.layers.Layer):
    """`base(x)` plus a trainable low-rank update; `base` stays frozen. `enabled = False` gives the base alone."""

    def __init__(self, base, rank: int, alpha: float, dropout: float = 0.0, rslora: bool = False,
                 dora: bool = False, seed: int = 0, **kwargs):
        super().__init__(name=f"{base.name}_lora", dtype=_float_policy(base.dtype_policy), **kwargs)
        self.base = base
        self.rank, self.alpha, self.rslora, self.dora = rank, alpha, rslora, dora
        self.scale = alpha / math.sqrt(rank) if rslora else alpha / rank
        self.axes = KernelAxes(base)
        self.dropout = keras.layers.Dropout(dropout, seed=seed) if dropout > 0 else None
        self.enabled = True
        bound = 1.0 / math.sqrt(self.axes.fan_in)  # PEFT: kaiming_uniform_(a=sqrt(5)) on A
        self.lora_a = self.add_weight(name="lora_a", shape=(self.axes.fan_in, rank),
                                      initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed))
        self.lora_b = self.add_weight(name="lora_b", shape=(rank, self.axes.fan_out), initializer="zeros")
        if dora:  # PEFT: the magnitude starts as each output's weight norm, so the model starts unchanged
            norm = np.linalg.norm(keras.ops.convert_to_numpy(self.base_matrix()), axis=0)
            self.magnitude = self.add_weight(name="lora_magnitude", shape=(self.axes.fan_out,),
                                             initializer=keras.initializers.Constant(norm))
        self.built = True

    def base_matrix(self):
        return self.axes.to_matrix(ops.cast(self.base.kernel, self.lora_a.dtype))

    def delta(self):
        """scale * A B: the update to the (inputs, outputs) matrix."""
        return self.scale * ops.matmul(self.lora_a, self.lora_b)

    def call(self, x, training=None):
        y = self.base(x)
        if not self.enabled:
            return y
        h = self.dropout(x, training=training) if self.dropout is not None else x
        # Plain matmuls over the flattened axes: einsum's gradient with leading "..." axes is several times slower.
        flat = ops.reshape(h, (-1, self.axes.fan_in))
        low_rank = ops.reshape(ops.matmul(ops.matmul(flat, self.lora_a), self.lora_b), ops.shape(y))
        if not self.dora:
            return y + self.scale * low_rank
        # DoRA (PEFT's form): (m / |W + dW| - 1) * W x + m / |W + dW| * scale * B A x, the norm held constant.
        norm = ops.stop_gradient(ops.norm(self.base_matrix() + ops.stop_gradient(self.delta()), axis=0))
        ratio = ops.reshape(ops.cast(self.magnitude / norm, y.dtype), self.axes.output_shape)
        if self.dropout is not None and training:  # PEFT runs the base again on the dropped-out input
            base_out = self.base(h)
        else:
            base_out = y
        if getattr(self.base, "bias", None) is not None:
            base_out = base_out - ops.cast(self.base.bias, y.dtype)
        return y + (ratio - 1) * base_out + ratio * self.scale * low_rank

    def merged_kernel(self):
        """The base kernel with this adapter folded in (DoRA: rescaled to its magnitudes), in the kernel's layout."""
        matrix = self.base_matrix() + self.delta()
        if self.dora:
            matrix = matrix * (self.magnitude / ops.norm(matrix, axis=0))
        return ops.cast(self.axes.from_matrix(matrix), self.base.kernel.dtype)
