"""The trained model as a result, in safetensors files in the run folder, by the model's own
parameter names (``state_dict`` keys), with what is needed to rebuild it in each file's metadata:

- ``model.safetensors``: the model after the last round. A star run's global model; a gossip
  run's mean of the nodes' models; a hierarchical run's edge models averaged by their data (the
  cloud's model after a cloud round); a vertical run's parties' parts, named ``<party>/<name>``;
  a Flower run's arrays as the ServerApp's strategy ended with them (``array-<i>`` where Flower
  gives no names).
- ``models/round-000010.safetensors``: that model after round 10, kept every
  ``[run] save_model_every`` rounds as the run goes (a killed run keeps what was written).
- ``clients/client-000007.safetensors``: client 7's own part, written with the final model: its
  personal layers' entries (``[personal] local_layers``), the whole personal model a client
  algorithm keeps as its state's ``personal`` array (Ditto), or a gossip node's own model.
  ``load_model(run_dir, client=7)`` lays it over the final model.

safetensors is a format made to be read without running code: a JSON header of names, dtypes,
shapes and offsets, then raw bytes (stored sorted by name: the metadata's ``order`` keeps the
writer's order, Flower's included). A model file is still a received file, so the reader checks
it before anything is built (:func:`read_model`): no link, its size, that its header parses, names
only entries with numeric dtypes and finite values, and metadata of the expected kinds.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from raysim.files import atomic_write, check_received_folder, refuse_link
from raysim.results.results import ResultsError

if TYPE_CHECKING:
    from raysim.models.spec import ModelSpec

MODEL_FILE = "model.safetensors"
ROUND_FILES = "models"  # models/round-<round, 6 digits>.safetensors
CLIENT_FILES = "clients"  # clients/client-<client id, 6 digits>.safetensors
MAX_MODEL_BYTES = 4 << 30  # the checkpoint's bound (sim/state/checkpoint.py): a model no run here could write
RUN_KINDS = ("star", "gossip", "hierarchical", "vertical", "flower")
_NUMERIC = ("f", "i", "u", "b")
_SPEC_KEYS = ("model", "input_shape", "num_classes", "options")
_ROUND = re.compile(r"round-(\d{6,9})\.safetensors")
_CLIENT = re.compile(r"client-(\d{6,9})\.safetensors")


def round_path(run_dir: Path, round_number: int) -> Path:
    return Path(run_dir) / ROUND_FILES / f"round-{round_number:06d}.safetensors"


def client_path(run_dir: Path, client: int) -> Path:
    return Path(run_dir) / CLIENT_FILES / f"client-{client:06d}.safetensors"


def write_model(path: Path, arrays: Mapping[str, np.ndarray], *, round_number: int, run: str, content: str,
                spec: ModelSpec | None = None, client: int | None = None) -> Path:
    """Writes a model file whole or not at all (``files.atomic_write``); returns its path.
    ``run`` is the kind of run, ``content`` says in words what the arrays are, ``spec`` the model
    class that rebuilds them (None where there is none: vertical and Flower runs)."""
    from safetensors.numpy import save

    metadata = {"run": run, "content": content, "round": str(round_number), "order": json.dumps(list(arrays))}
    if spec is not None:
        metadata.update(model=spec.name, input_shape=json.dumps(list(spec.input_shape)),
                        num_classes=str(spec.num_classes), options=json.dumps(dict(spec.options), sort_keys=True))
    if client is not None:
        metadata["client"] = str(client)
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata))
    return path


def read_model(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of a model file; ResultsError naming the file and what is wrong
    (never a traceback, never code run); UnsafeFolderError when it is a link."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    refuse_link(path, what="the model file")
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
            raise ResultsError(f"{path}: {key[:100]!r} holds {array.dtype} values that are not all finite numbers; "
                               "refused")
    meta = _metadata(path, header.get("__metadata__") if isinstance(header, dict) else None)
    order = meta.pop("order", None)
    if order is not None and sorted(order) != sorted(arrays):
        raise ResultsError(f"{path}: its metadata's order does not name its arrays; the file is damaged or foreign")
    return ({name: arrays[name] for name in order} if order is not None else arrays), meta


def _metadata(path: Path, raw: Any) -> dict[str, Any]:
    """The kind of run, what the arrays are, the round, and where a model class rebuilds them its
    name, input shape, class count and options; each checked for its kind."""
    try:
        if not isinstance(raw, dict):
            raise ValueError("no metadata")
        meta = {"run": raw.get("run", "star"), "content": raw.get("content", "the global model"),
                "round": int(raw["round"])}
        if not (meta["run"] in RUN_KINDS and isinstance(meta["content"], str) and len(meta["content"]) <= 300
                and meta["round"] >= 0):
            raise ValueError("a value of the wrong kind")
        if "order" in raw:  # the arrays' names in the writer's order (safetensors stores them sorted)
            meta["order"] = json.loads(raw["order"])
            if not (isinstance(meta["order"], list) and all(isinstance(n, str) for n in meta["order"])):
                raise ValueError("order is not a list of names")
        if "client" in raw:
            meta["client"] = int(raw["client"])
            if meta["client"] < 0:
                raise ValueError("a negative client")
        if meta["run"] in ("star", "gossip", "hierarchical") or any(k in raw for k in _SPEC_KEYS):
            meta.update(_spec(raw))
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: its metadata does not say which model it is ({exc}); not a raysim model "
                           "file") from exc
    return meta


def _spec(raw: dict) -> dict[str, Any]:
    shape, options = json.loads(raw["input_shape"]), json.loads(raw["options"])
    spec = {"model": raw["model"], "input_shape": tuple(shape), "num_classes": int(raw["num_classes"]),
            "options": options}
    if not (isinstance(spec["model"], str) and all(type(d) is int and 0 < d < 1 << 31 for d in shape)
            and 0 < spec["num_classes"] <= 1 << 31 and isinstance(options, dict)
            and all(isinstance(v, (str, int, float, bool)) and not (isinstance(v, float) and not math.isfinite(v))
                    for v in options.values())):
        raise ValueError("a value of the wrong kind")
    return spec


def kept(run_dir: Path, folder: str) -> list[int]:
    """The rounds (``ROUND_FILES``) or clients (``CLIENT_FILES``) whose model files the run kept."""
    pattern = _ROUND if folder == ROUND_FILES else _CLIENT
    where = Path(run_dir) / folder
    names = [p.name for p in where.iterdir()] if where.is_dir() else []
    return sorted(int(m.group(1)) for m in map(pattern.fullmatch, names) if m)


def model_files(run_dir: Path) -> list[Path]:
    """Every model file of a run folder: the final one, the kept rounds', the clients'."""
    run_dir = Path(run_dir)
    return ([run_dir / MODEL_FILE] if _present(run_dir / MODEL_FILE) else []) + \
        [round_path(run_dir, r) for r in kept(run_dir, ROUND_FILES)] + \
        [client_path(run_dir, c) for c in kept(run_dir, CLIENT_FILES)]


def _present(path: Path) -> bool:
    """There is an entry of that name (a link too, dangling or not: the reader refuses it by name)."""
    return path.is_symlink() or path.exists()


def model_path(run_dir: str | Path, *, round: int | None = None, client: int | None = None) -> Path:
    """The file that holds what ``load_model`` is asked for; ResultsError naming what was kept
    when it is not there."""
    run_dir = Path(run_dir)
    if client is not None:
        if round is not None:
            raise ResultsError("clients' parts are kept with the final model only: ask for round=None with client")
        path, folder, what = client_path(run_dir, client), CLIENT_FILES, f"client {client}'s own part"
    elif round is not None:
        path, folder, what = round_path(run_dir, round), ROUND_FILES, f"the model of round {round}"
    else:
        path = run_dir / MODEL_FILE
        if not _present(path):
            raise ResultsError(f"{path} does not exist: the run wrote no model (it stopped before its first round, "
                               "did not complete, or predates model files)")
        return path
    if not _present(path):
        listed = kept(run_dir, folder)
        raise ResultsError(f"{path} does not exist: {what} was not kept; kept: "
                           f"{'none' if not listed else ', '.join(map(str, listed[:20])) + (' ...' if len(listed) > 20 else '')}"
                           + (" ([run] save_model_every keeps rounds)" if folder == ROUND_FILES else
                              " (personal layers, a client algorithm's 'personal' state, or gossip nodes)"))
    return path


def load_model(run_dir: str | Path, *, round: int | None = None, client: int | None = None, build: bool = True,
               trust_code: bool = False) -> Any:
    """The run's trained model: a ``torch.nn.Module`` with the file's weights (``build``), or the
    arrays by parameter name (``build=False``: nothing is built or imported).

    ``round`` None is the model after the last round, ``round=N`` the one kept after round N
    (``[run] save_model_every``); ``client=C`` is client C's own model: the final model with the
    client's own part (its personal layers, its personal model, a gossip node's model) laid over it.

    A built-in model (``raysim list``) is built as the run built it. A model the scenario names
    as ``package.module:Class`` is the user's code: building it imports that module, so it needs
    ``trust_code=True``, as ``raysim run --resume`` needs ``--trust-code``. Vertical and Flower
    runs have no model class here: their arrays come with ``build=False``. ResultsError names the
    file when it is missing, damaged, or does not fit the model it names.
    """
    check_received_folder(Path(run_dir), deep=(ROUND_FILES, CLIENT_FILES))
    path = model_path(run_dir, round=round, client=client)
    if client is not None:
        base = Path(run_dir) / MODEL_FILE
        arrays, meta = read_model(model_path(run_dir))
        own, _ = read_model(path)
        if not set(own) <= set(arrays) or any(own[k].shape != arrays[k].shape for k in own):
            raise ResultsError(f"{path}: its arrays are not entries of {base} (names or shapes differ)")
        arrays = {name: own.get(name, value) for name, value in arrays.items()}
    else:
        arrays, meta = read_model(path)
    if not build:
        return arrays
    if "model" not in meta:
        raise ResultsError(f"{path} holds {meta['content']} of a {meta['run']} run: no model class builds it here; "
                           "pass build=False for the arrays")
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
