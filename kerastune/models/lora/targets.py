"""Which layers take LoRA adapters, under PEFT's module names, and adapting them.

Every adaptable projection gets the full name PEFT gives the same module in
the transformers model (`model.layers.3.self_attn.q_proj`,
`decoder.block.1.layer.1.EncDecAttention.v`), so targets are chosen the way
PEFT users choose them: module names (`["q_proj", "v_proj"]`, PEFT's default
per family), `"all-linear"`, or a regex matched against the full name
(`target_regex`, PEFT's string form). GPT-2 has no such names in
transformers (its q, k and v are one fused `c_attn`), so it gets the Llama
names, and its adapters stay kerastune's.
"""

import contextlib
import dataclasses
import re

from kerastune.errors import KerastuneError
from kerastune.models.lora.layer import LoraAdapted

ALL_LINEAR = "all-linear"
# PEFT module name -> the attribute keras-hub gives that projection, per layer style.
CAUSAL_ATTENTION = {"q_proj": ("_query_dense", "query_dense", "q_proj"),
                    "k_proj": ("_key_dense", "key_dense", "k_proj"),
                    "v_proj": ("_value_dense", "value_dense", "v_proj"),
                    "o_proj": ("_output_dense", "output_dense", "o_proj")}
CAUSAL_MLP = {"gate_proj": ("_feedforward_gate_dense", "gating_ffw", "gate_proj"),
              "up_proj": ("_feedforward_intermediate_dense", "gating_ffw_2", "up_proj"),
              "down_proj": ("_feedforward_output_dense", "ffw_linear", "down_proj")}
T5_ATTENTION = {"q": "query_projector", "k": "key_projector", "v": "value_projector", "o": "output_projector"}
DEFAULT_TARGETS = {"t5": ("q", "v"), "causal": ("q_proj", "v_proj")}  # PEFT's defaults (GPT-2: c_attn's q and v)


@dataclasses.dataclass
class Target:
    """One adaptable projection: PEFT's full name, and where keras-hub keeps the layer."""

    name: str  # PEFT's full module name, e.g. model.layers.0.self_attn.q_proj
    parent: object  # the layer holding it as an attribute
    attribute: str

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def layer(self):
        return getattr(self.parent, self.attribute)


def family(model) -> str:
    backbone = _backbone(model)
    if hasattr(backbone, "encoder_transformer_layers"):
        return "t5"
    if hasattr(backbone, "transformer_layers"):
        return "causal"
    raise KerastuneError(f"LoRA has no layer map for {type(backbone).__name__}")


def _backbone(model):
    return model.backbone if hasattr(model, "backbone") else model


def targets(model) -> list[Target]:
    """Every projection LoRA can adapt, in layer order, named as PEFT names it."""
    backbone = _backbone(model)
    found = []
    if family(model) == "t5":
        for stack, layers in (("encoder", backbone.encoder_transformer_layers),
                              ("decoder", backbone.decoder_transformer_layers)):
            for i, layer in enumerate(layers):
                blocks = [(layer.self_attention, "0.SelfAttention")]
                if stack == "decoder":
                    blocks.append((layer.cross_attention, "1.EncDecAttention"))
                for attention, where in blocks:
                    found += [Target(f"{stack}.block.{i}.layer.{where}.{m}", attention, a)
                              for m, a in T5_ATTENTION.items()]
                ffn = f"{stack}.block.{i}.layer.{len(blocks)}.DenseReluDense"
                gated = getattr(layer, "gate_projector", None) is not None
                found += [Target(f"{ffn}.{m}", layer, a) for m, a in
                          ((("wi_0", "input_projector"), ("wi_1", "gate_projector")) if gated
                           else (("wi", "input_projector"),)) + (("wo", "output_projector"),)]
        return found
    for i, block in enumerate(backbone.transformer_layers):
        attention = next((getattr(block, a) for a in ("_self_attention_layer", "attention", "self_attn")
                          if hasattr(block, a)), None)
        mlp = getattr(block, "mlp", block)
        for parent, where, table in ((attention, "self_attn", CAUSAL_ATTENTION), (mlp, "mlp", CAUSAL_MLP)):
            if parent is None:
                continue
            for module, attributes in table.items():
                attribute = next((a for a in attributes if getattr(parent, a, None) is not None), None)
                if attribute is not None:
                    found.append(Target(f"model.layers.{i}.{where}.{module}", parent, attribute))
    return found


def select(model, names=(), regex: str = "") -> list[Target]:
    """The targets PEFT would adapt: full-name regex match, or module names ("all-linear": every projection)."""
    available = targets(model)
    if regex:
        try:
            chosen = [t for t in available if re.fullmatch(regex, t.name)]
        except re.error as error:
            raise KerastuneError(f"lora.target_regex '{regex}' is not a regular expression: {error}") from None
    else:
        names = tuple(names) or DEFAULT_TARGETS[family(model)]
        unknown = [n for n in names if n != ALL_LINEAR and not any(_matches(t.name, n) for t in available)]
        if unknown:
            known = sorted({t.module for t in available})
            raise KerastuneError(f"no module named {', '.join(unknown[:3])} in {type(_backbone(model)).__name__}: "
                                 f"its LoRA targets are {', '.join(known)} or {ALL_LINEAR}")
        chosen = [t for t in available if ALL_LINEAR in names or any(_matches(t.name, n) for n in names)]
    if not chosen:
        raise KerastuneError(f"lora targets {regex or names} match no layer: nothing to adapt")
    return chosen


def _matches(full_name: str, name: str) -> bool:
    """PEFT's list form: a module name, or any dotted tail of the full name, down to the full name itself."""
    return full_name == name or full_name.endswith("." + name)


def _replace(target: Target, layer):
    """Put `layer` where `target`'s layer is, keeping Keras's layer tracking right."""
    tracker = target.parent._tracker
    was_locked = tracker.locked
    tracker.unlock()
    tracker.untrack(target.layer)
    setattr(target.parent, target.attribute, layer)
    if was_locked:
        tracker.lock()


def enable_lora(model, rank: int, alpha: float | None = None, targets=(), target_regex: str = "",
                dropout: float = 0.0, rslora: bool = False, dora: bool = False, seed: int = 0) -> int:
    """Freeze the model and adapt the chosen projections (PEFT's initialisation: the model starts unchanged).

    Returns the number of adapted layers.
    """
    chosen = select(model, targets, target_regex)
    if lora_layers(model):
        raise KerastuneError("the model already has LoRA adapters")
    backbone = _backbone(model)
    backbone.trainable = True
    for layer in backbone._flatten_layers(include_self=False):
        layer.trainable = False
    for i, target in enumerate(chosen):
        base = target.layer
        base.trainable = False
        adapted = LoraAdapted(base, rank, alpha if alpha is not None else rank, dropout, rslora, dora, seed=seed + i)
        _replace(target, adapted)
    return len(chosen)


def lora_layers(model) -> dict:
    """{PEFT full name: LoraAdapted} of the adapted projections, in layer order."""
    try:
        available = targets(model)
    except KerastuneError:
        return {}
    return {t.name: t.layer for t in available if isinstance(t.layer, LoraAdapted)}


@contextlib.contextmanager
def adapters_disabled(model):
    """Run the base model: every adapter off inside the block (a traced function sees the flag at trace time)."""
    layers = list(lora_layers(model).values())
    for layer in layers:
        layer.enabled = False
    try:
        yield model
    finally:
        for layer in layers:
            layer.enabled = True


def merge_adapters(model) -> int:
    """Fold every adapter into its base kernel and put the plain layers back (for saving and export)."""
    merged = 0
    for target in targets(model):
        adapted = target.layer
        if isinstance(adapted, LoraAdapted):
            adapted.base.kernel.assign(adapted.merged_kernel())
            _replace(target, adapted.base)
            merged += 1
    return merged
