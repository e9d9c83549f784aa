"""Models: `load_model` and the converters and tiny builders behind it."""

from kerastune.models.load import load_model, load_recipe_model, model_kind

__all__ = ["load_model", "load_recipe_model", "model_kind"]
