"""A data set from a function of the user's: ``[data] dataset = "package.module:function"``.

The function is called once, with ``[data] options`` as keyword arguments (and ``seed``, the
scenario's data seed, when it takes one), and returns a mapping of numpy arrays:

- ``train_x`` [N, ...] and ``train_y`` [N]: the training examples (inputs as the model takes them)
  and their targets (integer classes, or real values for a regression task);
- ``test_x`` [M, ...] and ``test_y`` [M]: the central test set, shaped likewise;
- optionally ``train_client`` [N]: each training example's client (any ids); with it, ``partition
  = "natural"`` gives one client per id, in order of first appearance (as a table's client column);
- optionally ``num_classes``: for class targets, when the labels seen are not all there are.

This is the "give me a function" entry point other frameworks offer (pfl's ``make_dataset_fn``,
Flower Datasets' partitioners); the arrays are checked once here, so a mismatch is one line at
load (exit 2), never a shape error inside a worker.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np

from raysim.data.datasets import Dataset
from raysim.data.idx import DatasetError
from raysim.inputs import check_call, import_object, parameter_names

REQUIRED = ("train_x", "train_y", "test_x", "test_y")
OPTIONAL = ("train_client", "num_classes")


def load_user_data(spec: str, options: Mapping[str, Any], *, seed: int, labels: str) -> Dataset:
    """Calls the user's function and checks what it returns; ``labels`` is the task's kind of
    target ("class" or "value"). DatasetError names ``data.dataset`` and what is wrong."""
    function = import_object(spec, what="data.dataset", choices=[])
    if not inspect.isfunction(function):
        raise DatasetError(f"data.dataset '{spec}' is not a Python function: it names "
                           f"{'a class' if isinstance(function, type) else 'a ' + type(function).__name__}; "
                           "nothing was called")
    arguments = dict(options)
    if "seed" in parameter_names(function):
        arguments.setdefault("seed", seed)
    check_call(function, arguments, what=f"data.dataset '{spec}' (called with data.options)")
    try:
        returned = function(**arguments)
    except Exception as exc:  # user code: any failure is the scenario's, in one line
        raise DatasetError(f"data.dataset '{spec}' raised {type(exc).__name__}: {exc} "
                           f"(called with data.options = {dict(options)})") from exc
    return _checked(spec, returned, labels)


def _checked(spec: str, returned: Any, labels: str) -> Dataset:
    where = f"data.dataset '{spec}'"
    if not isinstance(returned, Mapping):
        raise DatasetError(f"{where} returned a {type(returned).__name__}; return a dict with "
                           f"{', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)})")
    missing = [key for key in REQUIRED if key not in returned]
    unknown = sorted(set(returned) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise DatasetError(f"{where} returned keys {sorted(map(str, returned))}: "
                           + (f"missing {missing}" if missing else f"unknown {unknown}")
                           + f"; return {', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)})")
    arrays = {key: _numeric(where, key, returned[key]) for key in REQUIRED}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim < 2 or y.ndim < 1 or len(x) != len(y) or not len(x):
            raise DatasetError(f"{where}: {split}_x {x.shape} and {split}_y {y.shape} must be [n, ...] and [n] "
                               f"with the same n >= 1")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DatasetError(f"{where}: train_x examples are {arrays['train_x'].shape[1:]} but test_x examples are "
                           f"{arrays['test_x'].shape[1:]}; they must have one shape")
    train_y, test_y, num_classes = _targets(where, arrays["train_y"], arrays["test_y"], labels,
                                            returned.get("num_classes"))
    x_dtype = np.int64 if np.issubdtype(arrays["train_x"].dtype, np.integer) else np.float32  # token ids stay ints
    return Dataset(name="user", train_x=np.ascontiguousarray(arrays["train_x"], dtype=x_dtype), train_y=train_y,
                   test_x=np.ascontiguousarray(arrays["test_x"], dtype=x_dtype), test_y=test_y,
                   num_classes=num_classes, input_shape=tuple(arrays["train_x"].shape[1:]),
                   natural_parts=_clients(where, returned.get("train_client"), len(train_y)))


def _numeric(where: str, key: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DatasetError(f"{where}: {key} has dtype {array.dtype}; return numbers (encode categories first)")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DatasetError(f"{where}: {key} has {int((~np.isfinite(array)).sum())} NaN or infinite values; "
                           "drop or fill them")
    return array


def _targets(where: str, train_y: np.ndarray, test_y: np.ndarray, labels: str,
             num_classes: Any) -> tuple[np.ndarray, np.ndarray, int]:
    if labels == "value":
        return train_y.astype(np.float32), test_y.astype(np.float32), 1
    for name, y in (("train_y", train_y), ("test_y", test_y)):
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.all(y == np.round(y))) or y.min() < 0:
            raise DatasetError(f"{where}: {name} must be one class per example, integers >= 0, for a "
                               f"classification task (got dtype {y.dtype}, shape {y.shape}); set [task] kind = "
                               "'regression' for real-valued targets")
    seen = int(max(train_y.max(), test_y.max())) + 1
    if num_classes is None:
        return train_y.astype(np.int64), test_y.astype(np.int64), seen
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < seen:
        raise DatasetError(f"{where}: num_classes = {num_classes!r} must be an integer >= {seen} (the labels seen)")
    return train_y.astype(np.int64), test_y.astype(np.int64), int(num_classes)


def _clients(where: str, ids: Any, count: int) -> tuple[np.ndarray, ...] | None:
    """One index array per distinct id, in order of first appearance, without a Python object per row."""
    if ids is None:
        return None
    ids = np.asarray(ids)
    if ids.shape != (count,):
        raise DatasetError(f"{where}: train_client has shape {ids.shape}; it must give one client per "
                           f"training example, shape ({count},)")
    _, first, codes = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    codes = rank[codes.reshape(-1)]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return tuple(np.split(order.astype(np.int64), bounds))
