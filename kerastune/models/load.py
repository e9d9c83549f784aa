"""`load_model(id_or_path)`: one entry point for every place a model can come from.

- `tiny-t5`, `tiny-gpt2`, `tiny-llama`, `tiny-qwen`, `tiny-gemma`,
  `tiny-distilbert`, `tiny-roberta`: small random models with a vocabulary
  trained on `texts`.
- a local Hugging Face directory (`config.json` with `model_type`): T5 goes
  through kerastune's converter, GPT-2 through keras-hub's plus kerastune's
  checks and tokenizer, DistilBERT masked LMs and RoBERTa sequence
  classifiers through keras-hub's plus their heads, others through keras-hub's.
- a local Keras preset directory (`metadata.json`, e.g. a run's `model/`).
- `hf://org/name` or `org/name` (at `revision`): the best weight format the
  repository has, downloaded with huggingface_hub (`kerastune.hub.models`),
  then as above. A bare legacy id (`gpt2`) is resolved to its namespaced one.
- a keras-hub preset name or `kaggle://` handle: passed to keras-hub.
"""

import inspect
import json
from pathlib import Path

import keras
import keras_hub

from kerastune.errors import KerastuneError
from kerastune.hub.ids import is_hub_id, looks_local
from kerastune.hub.models import download_model
from kerastune.models.distilbert.convert import (
    load_distilbert_masked_lm,
    masked_lm_head_in_float32,
    match_head_epsilon,
)
from kerastune.models.distilbert.tiny import tiny_distilbert
from kerastune.models.gemma.tiny import tiny_gemma
from kerastune.models.gpt2.convert import load_gpt2
from kerastune.models.gpt2.tiny import tiny_gpt2
from kerastune.models.hf_files import read_config
from kerastune.models.hf_loader import from_hf_directory
from kerastune.models.labels import read_labels, set_labels
from kerastune.models.llama import fixes  # noqa: F401  (tied Llamas save and reload)
from kerastune.models.llama.tiny import tiny_llama
from kerastune.models.qwen.tiny import tiny_qwen
from kerastune.models.roberta.convert import load_roberta_classifier
from kerastune.models.roberta.tiny import tiny_roberta
from kerastune.models.t5.convert import load_t5
from kerastune.models.t5.precision import keep_residual_in_float32
from kerastune.models.t5.tiny import tiny_t5

TINY_MODELS = {
    "tiny-t5": tiny_t5, "tiny-gpt2": tiny_gpt2, "tiny-llama": tiny_llama, "tiny-qwen": tiny_qwen,
    "tiny-gemma": tiny_gemma, "tiny-distilbert": tiny_distilbert, "tiny-roberta": tiny_roberta,
}

TINY_CAUSAL = ("tiny-gpt2", "tiny-llama", "tiny-qwen", "tiny-gemma")

# Task classes tried, in order, for Keras presets and keras-hub converters.
TASK_CLASSES = ("Seq2SeqLM", "CausalLM", "MaskedLM", "TextClassifier")


def load_model(id_or_path: str, texts=None, vocab_size=4000, revision: str = "", **kwargs):
    """A keras-hub task with its preprocessor attached.

    Args:
        id_or_path: see the module docstring.
        texts, vocab_size: only `tiny-*` models use them, to train a
            vocabulary on the run's own texts.
        revision: for hub ids, a branch, tag, commit or `refs/pr/N`.
        **kwargs: passed to the builder, e.g. `encoder_sequence_length`.
    """
    model = _load(str(id_or_path), texts, vocab_size, revision, **kwargs)
    policy = keras.config.dtype_policy().name
    if policy == "mixed_float16" and isinstance(model, keras_hub.models.T5Seq2SeqLM):
        keep_residual_in_float32(model)
    if policy.startswith("mixed") and isinstance(model, keras_hub.models.MaskedLM):
        masked_lm_head_in_float32(model)
    return model


def model_source(name: str) -> str:
    """Where `load_model` takes `name` from: "tiny", "local", "keras-hub preset", "hub", or "" (nowhere)."""
    if name.startswith("tiny-"):
        return "tiny"
    if Path(name).expanduser().is_dir():
        return "local"
    if looks_local(name):
        return "missing path"
    if name.startswith("hf://"):
        return "hub"
    if name.startswith("kaggle://") or ("/" not in name and name in _keras_hub_presets()):
        return "keras-hub preset"
    return "hub" if is_hub_id(name) else ""


def _load(name: str, texts, vocab_size, revision, **kwargs):
    source = model_source(name)
    if source == "tiny":
        if name not in TINY_MODELS:
            raise KerastuneError(f"unknown tiny model '{name}'; available: {', '.join(TINY_MODELS)}")
        return _call(TINY_MODELS[name], texts=texts, vocab_size=vocab_size, **kwargs)
    if source == "local":
        return _load_directory(Path(name).expanduser(), **kwargs)
    if source == "keras-hub preset":
        return _load_keras_preset(name)
    if source == "hub":
        return _load_directory(download_model(name.removeprefix("hf://"), revision), **kwargs)
    if source == "missing path":
        raise KerastuneError(f"model not found: {name} is no local directory")
    raise KerastuneError(
        f"model not found: '{name}' is not a local directory, a tiny-* model, "
        "a keras-hub preset, or a Hugging Face hub id (org/name)"
    )


def _call(builder, **kwargs):
    """Call a builder with the keyword arguments it accepts (recipes pass their sequence lengths)."""
    accepted = inspect.signature(builder).parameters
    return builder(**{k: v for k, v in kwargs.items() if k in accepted})


def _keras_hub_presets() -> set:
    presets = set()
    for cls_name in TASK_CLASSES:
        presets.update(getattr(keras_hub.models, cls_name).presets.keys())
    return presets


def _load_directory(path: Path, **kwargs):
    if (path / "metadata.json").is_file():  # Keras preset format
        return _load_keras_preset(str(path))
    config = read_config(path)
    model_type = config.get("model_type")
    if model_type in ("t5", "mt5"):
        return _call(load_t5, path=path, **kwargs)
    if model_type == "gpt2":
        return _call(load_gpt2, path=path, config=config, **kwargs)
    if model_type == "distilbert" and "DistilBertForMaskedLM" in config.get("architectures", []):
        return _call(load_distilbert_masked_lm, path=path, **kwargs)
    if model_type == "roberta" and "RobertaForSequenceClassification" in config.get("architectures", []):
        return _call(load_roberta_classifier, path=path, config=config, **kwargs)
    if model_type is None:
        raise KerastuneError(f"{path}/config.json has no model_type; is it a Hugging Face checkpoint?")
    return _load_hf_with_keras_hub(path)


def _load_hf_with_keras_hub(path: Path):
    """Any other family keras-hub converts (llama, qwen, gemma, mistral, ...), as the first task class that fits."""
    errors = []
    for cls_name in TASK_CLASSES:
        try:
            return from_hf_directory(getattr(keras_hub.models, cls_name), path)
        except KerastuneError:
            raise
        except Exception as e:  # no task of this kind for the backbone: try the next
            errors.append(f"{cls_name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise KerastuneError(f"could not load '{path}' with keras-hub ({'; '.join(errors)})")


def _load_keras_preset(handle: str):
    """A saved task (a run's `model/`, with task.json) as its own class; otherwise try each task class."""
    task_file = Path(handle) / "task.json"
    saved_task = json.loads(task_file.read_text()).get("class_name") if task_file.is_file() else None
    errors = []
    for cls_name in (saved_task,) if hasattr(keras_hub.models, saved_task or "") else TASK_CLASSES:
        try:
            model = getattr(keras_hub.models, cls_name).from_preset(handle)
            if isinstance(model, keras_hub.models.DistilBertMaskedLM):
                match_head_epsilon(model)
            if isinstance(model, keras_hub.models.TextClassifier) and Path(handle).is_dir():
                set_labels(model, read_labels(handle))
            return model
        except Exception as e:  # wrong task class for this backbone: try the next
            errors.append(f"{cls_name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise KerastuneError(f"could not load '{handle}' with keras-hub ({'; '.join(errors)})")


def model_kind(model) -> str:
    """'seq2seq', 'causal_lm', 'masked_lm' or 'classifier'."""
    for kind, cls_name in zip(("seq2seq", "causal_lm", "masked_lm", "classifier"), TASK_CLASSES):
        if isinstance(model, getattr(keras_hub.models, cls_name)):
            return kind
    return "unknown"


KIND_NAMES = {
    "seq2seq": "a seq2seq (T5) model", "causal_lm": "a causal LM (GPT-2, Llama, Qwen, Gemma, ...)",
    "masked_lm": "a masked LM (DistilBERT)", "classifier": "a text classifier (RoBERTa)",
}


def load_recipe_model(recipe: str, model_id: str, kind, **kwargs):
    """`load_model`, then check the model suits the recipe (`kind`: one kind, or a tuple of the kinds it takes),
    and say so plainly when it is tiny."""
    model = load_model(model_id, **kwargs)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if model_kind(model) not in kinds:
        wanted = " or ".join(KIND_NAMES.get(k, k) for k in kinds)
        raise KerastuneError(f"{recipe} needs {wanted}; '{model_id}' is {model_kind(model)}")
    if model_id.startswith("tiny-"):
        print(f"NOTE: '{model_id}' is a tiny random model for demos and tests, not a pretrained checkpoint.")
    return model
