"""The trained model as a result: ``model.safetensors`` in the run folder, the global model after
the last round, by the model's own parameter names (``state_dict`` keys), with what is needed to
rebuild it (the model's name, input shape, class count and options) in the file's metadata.

safetensors is a format made to be read without running code: a JSON header of names, dtypes,
shapes and offsets, then raw bytes. A model file is still a received file, so the reader checks
it before anything is built (:func:`read_model`): its size, that its header parses, names only
the state's entries with numeric dtypes and finite values, and metadata of the expected kinds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from raysim.files import atomic_write
from raysim.results.results import ResultsError

MODEL_FILE = "model.safetensors"
MAX_MODEL_BYTES = 4 << 30  # the checkpoint's bound (sim/checkpoint.py): a model no run here could write
_NUMERIC = ("f", "i", "u", "b")


def write_model(run_dir: Path, arrays: Mapping[str, np.ndarray], *, name: str, input_shape: tuple[int, ...],
                num_classes: int, options: Mapping[str, Any], round_number: int) -> Path:
    """Writes the global model whole or not at all (``files.atomic_write``); returns its path."""
    from safetensors.numpy import save

    metadata = {"model": name, "input_shape": json.dumps(list(input_shape)), "num_classes": str(num_classes),
                "options": json.dumps(dict(options), sort_keys=True), "round": str(round_number)}
    path = run_dir / MODEL_FILE
    atomic_write(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata))
    return path


def read_model(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of a model file; ResultsError naming the file and what is wrong
    (never a traceback, never code run)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ResultsError(f"{path} has {size} bytes, more than a model file may ({MAX_MODEL_BYTES}); refused")
        data = path.read_bytes()
        arrays = load(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    except ResultsError:
        raise
    except (OSError, ValueError, SafetensorError, RecursionError) as exc:
        raise ResultsError(f"{path} is not a readable safetensors model file ({' '.join(str(exc).split())[:200]})"
                           "; the file is damaged or foreign") from exc
    for key, array in arrays.items():
        if array.dtype.kind not in _NUMERIC or (array.dtype.kind == "f" and not np.isfinite(array).all()):
            raise ResultsError(f"{path}: {key!r} holds {array.dtype} values that are not all finite numbers; refused")
    return arrays, _metadata(path, header.get("__metadata__") if isinstance(header, dict) else None)


def _metadata(path: Path, raw: Any) -> dict[str, Any]:
    """The model's name, input shape, class count, options and round, each checked for its kind."""
    try:
        if not isinstance(raw, dict):
            raise ValueError("no metadata")
        shape, options = json.loads(raw["input_shape"]), json.loads(raw["options"])
        meta = {"model": raw["model"], "input_shape": tuple(shape), "num_classes": int(raw["num_classes"]),
                "options": options, "round": int(raw["round"])}
        if not (isinstance(meta["model"], str) and all(type(d) is int and 0 < d < 1 << 31 for d in shape)
                and 0 < meta["num_classes"] <= 1 << 31 and isinstance(options, dict) and meta["round"] >= 0
                and all(isinstance(v, (str, int, float, bool)) and not (isinstance(v, float) and not math.isfinite(v))
                        for v in options.values())):
            raise ValueError("a value of the wrong kind")
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: its metadata does not say which model it is ({exc}); not a raysim model "
                           "file") from exc
    return meta


def load_model(run_dir: str | Path, *, build: bool = True, trust_code: bool = False) -> Any:
    """The run's trained global model: a ``torch.nn.Module`` with the file's weights (``build``),
    or the arrays by parameter name (``build=False``: nothing is built or imported).

    A built-in model (``raysim list``) is built as the run built it. A model the scenario names
    as ``package.module:Class`` is the user's code: building it imports that module, so it needs
    ``trust_code=True``, as ``raysim run --resume`` needs ``--trust-code``. ResultsError names the
    file when it is missing, damaged, or does not fit the model it names.
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise ResultsError(f"{path} does not exist: the run wrote no model (it stopped before its first round, "
                           "or predates model files)")
    arrays, meta = read_model(path)
    if not build:
        return arrays
    if ":" in meta["model"] and not trust_code:
        raise ResultsError(f"{path} is a model of class {meta['model']!r}, the user's code: building it imports "
                           "that module; pass trust_code=True if you trust it, or build=False for the arrays")
    import torch

    from raysim.models.models import build_model

    module = build_model(meta["model"], input_shape=meta["input_shape"], num_classes=meta["num_classes"],
                         options=meta["options"] or None)
    expected = module.state_dict()
    if set(expected) != set(arrays) or any(tuple(expected[k].shape) != arrays[k].shape for k in expected):
        raise ResultsError(f"{path}: its arrays do not fit a {meta['model']!r} model with input "
                           f"{meta['input_shape']} and {meta['num_classes']} classes (names or shapes differ)")
    module.load_state_dict({k: torch.from_numpy(np.array(v, dtype=expected[k].numpy().dtype))
                            for k, v in arrays.items()})
    return module.eval()
