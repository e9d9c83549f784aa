"""Running a pair model (DPO's log-probs, a reward model's scores) over every pair of a dataset, in order."""

import numpy as np

from kerastune.runtime import compile_model_function


def run_on_pairs(model, dataset, key="model") -> tuple:
    """`model`'s outputs (an array or a tuple of arrays, each (pairs, ...)) over a dataset made with
    `extra={"index": ...}` (data/preference.py), put back in the pairs' order: the dataset is bucketed by
    length. Compiled without XLA, so any bucket width runs in the same graph, once per `key` and model (DPO's
    reference pass, traced with the adapters off, has a key of its own)."""
    functions = model.__dict__.setdefault("_pair_functions", {})
    if key not in functions:
        functions[key] = compile_model_function(model, lambda x: model(x, training=False), xla=False)
    forward = functions[key]
    parts, order = [], []
    for x in dataset.as_numpy_iterator():
        out = forward({k: v for k, v in x.items() if k != "index"})
        parts.append(tuple(np.asarray(a) for a in (out if isinstance(out, (tuple, list)) else (out,))))
        order.append(x["index"])
    inverse = np.argsort(np.concatenate(order))
    return tuple(np.concatenate(column)[inverse] for column in zip(*parts))
