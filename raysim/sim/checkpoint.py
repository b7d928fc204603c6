"""Driver snapshots as data only: a zip of one JSON document and ``.npy`` arrays, no code.

A pickle names the callables that rebuild it, so even an allow-list of classes lets crafted
bytes build objects no run ever made (a numpy dtype whose flags lie crashes the process). This
format has nothing to call: ``state.json`` holds the scalars and structure, ``arrays/<i>.npy``
the arrays, read with ``allow_pickle=False`` after their header is checked (numeric and bool
dtypes only, no structured, object or void dtype), plus the snapshot's progress (the round and
the simulated time its last recorded row ends at), which the run folder's tables are checked
against before anything is restored.

Decoding is driven by the live driver, which was built from the scenario: exactly the
attribute names it checkpoints are restored, each value must be of the kind the live value is,
and an array must have the live array's dtype and shape. A raysim object is re-created
field by field (its class's ``__init__``, ``__setstate__`` or ``__reduce__`` are never called):
only a class of the raysim package that is already imported, or the class of the live object at
that place (a user's policy the scenario named: the scenario chose it, not the file), whose
fields are exactly the dataclass's fields or, for a plain class, those of the live object at
that place. Fields a
class lists in ``REBUILT`` (a bound method, a native context) are not written and keep the
live object's values. Every refusal is a :class:`CheckpointError` naming where in the state.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from raysim.files import atomic_write
FORMAT = "raysim-driver-state"
VERSION = 1
_DOCUMENT = "state.json"
_KINDS = frozenset("biuf")  # bool, signed and unsigned integers, floats: nothing that holds references
_MAX_DEPTH = 100  # deeper is no raysim state: refused before Python's recursion limit is reached
_ABSENT = object()  # no live value at this place (an entry the fresh driver has not made yet)
_CONTAINERS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
Progress = tuple[int, float]  # (round, simulated time the round's row ends at)


class CheckpointError(ValueError):
    """The snapshot is damaged, foreign, or does not fit the driver being restored."""


# -- a driver's side: ``_CHECKPOINTED`` names its evolving attributes, ``_progress(values)`` -------
#    gives the round and simulated time they are at

def snapshot(driver: Any) -> bytes:
    values = {name: getattr(driver, name) for name in driver._CHECKPOINTED}
    return encode(values, driver._progress(values))


def restore(driver: Any, data: bytes) -> None:
    """Sets the driver's checkpointed attributes from ``data``, all or none (CheckpointError)."""
    values = decode(data, {name: getattr(driver, name) for name in driver._CHECKPOINTED}, driver._progress)
    for name, value in values.items():
        setattr(driver, name, value)


# -- writing -------------------------------------------------------------------------------------

def encode(values: dict[str, Any], progress: Progress) -> bytes:
    """The attributes ``values`` and their ``progress`` as one zip; TypeError names a value the
    format cannot hold (a callable, a foreign object: a new kind of state needs a case here)."""
    arrays: list[np.ndarray] = []
    seen: dict[int, int] = {}  # the same array object is written once (the model and its base)
    objects: dict[int, int] = {}  # and the same raysim object (the broker's transport is the links')

    def value(obj: Any, where: str) -> Any:
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if kind is np.ndarray:
            if id(obj) not in seen:
                seen[id(obj)] = len(arrays)
                arrays.append(obj)
            return {"array": seen[id(obj)]}
        if isinstance(obj, np.generic) and obj.dtype.kind in _KINDS:
            return {"scalar": obj.dtype.str, "value": value(obj.item(), where)}
        if kind in _CONTAINERS:
            return {_CONTAINERS[kind]: [value(item, f"{where}[]") for item in obj]}
        if kind in (dict, Counter):
            return {"dict" if kind is dict else "counter":
                    [[value(k, f"{where}{{}}"), value(v, f"{where}[{k!r}]")] for k, v in obj.items()]}
        if _plain(kind) and hasattr(obj, "__dict__"):  # raysim's, or a user's the scenario named
            if id(obj) in objects:
                return {"ref": objects[id(obj)]}
            objects[id(obj)] = len(objects)  # numbered before its fields, as the decoder meets them
            rebuilt = getattr(kind, "REBUILT", ())
            return {"object": f"{kind.__module__}:{kind.__qualname__}",
                    "fields": {k: value(v, f"{where}.{k}") for k, v in vars(obj).items() if k not in rebuilt}}
        raise TypeError(f"{where}: a {kind.__module__}.{kind.__qualname__} cannot be checkpointed")

    document = {"format": FORMAT, "version": VERSION, "round": progress[0], "sim_time": float(progress[1]),
                "state": {name: value(v, name) for name, v in values.items()}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(_DOCUMENT, json.dumps(document))
        for index, array in enumerate(arrays):
            with archive.open(f"arrays/{index}.npy", "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


# -- reading ---------------------------------------------------------------------------------------

def read_progress(data: bytes) -> Progress:
    """The snapshot's (round, simulated time), checked to be a round number and a time."""
    return _progress(_document(_archive(data)))


def _progress(document: dict) -> Progress:
    round_number, sim_time = document.get("round"), document.get("sim_time")
    if type(round_number) is not int:
        raise CheckpointError(f"its round is {round_number!r}, not a round number")
    if type(sim_time) is not float or not math.isfinite(sim_time) or sim_time < 0:
        raise CheckpointError(f"its simulated time is {sim_time!r}, not a time")
    return round_number, sim_time


def decode(data: bytes, live: dict[str, Any], progress_of: Callable[[dict[str, Any]], Progress]) -> dict[str, Any]:
    """The snapshot's values of the attributes ``live`` names, decoded against the live values;
    ``progress_of(values)`` must give the progress the snapshot was written with."""
    archive = _archive(data)
    document = _document(archive)
    progress = _progress(document)
    state = document["state"]
    if set(state) != set(live):
        missing, extra = sorted(set(live) - set(state)), sorted(set(state) - set(live))
        raise CheckpointError(f"its attributes are not this driver's (missing {missing}, unknown {extra})")
    decoder = _Decoder(archive)
    values = {}
    for name, target in live.items():
        values[name] = decoder.value(state[name], target, name, 0)
        if (values[name] is None) != (target is None):
            raise CheckpointError(f"{name}: the checkpoint has {_kind(values[name])} where this scenario's driver "
                                  f"has {_kind(target)}")
    if progress_of(values) != progress:
        raise CheckpointError(f"its state is at round/time {progress_of(values)}, its header says {progress}")
    return values


def _archive(data: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"not a raysim driver state ({exc})") from None
    names = archive.namelist()
    if any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist()):
        raise CheckpointError("its entries are compressed; raysim writes them stored")
    expected = {_DOCUMENT, *(f"arrays/{i}.npy" for i in range(len(names) - 1))}
    if set(names) != expected or len(names) != len(expected):
        raise CheckpointError(f"its entries {sorted(names)[:5]} are not a raysim driver state's")
    return archive


def _document(archive: zipfile.ZipFile) -> dict:
    try:
        document = json.loads(archive.read(_DOCUMENT).decode("utf-8"))
    except (ValueError, RecursionError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"its {_DOCUMENT} is damaged ({type(exc).__name__})") from None
    if not isinstance(document, dict) or (document.get("format"), document.get("version")) != (FORMAT, VERSION):
        raise CheckpointError(f"its {_DOCUMENT} is not a raysim driver state of version {VERSION}")
    if not isinstance(document.get("state"), dict) or not document["state"]:
        raise CheckpointError("it holds no driver state")
    return document


def _kind(obj: Any) -> str:
    return "nothing" if obj is None else f"a {type(obj).__qualname__}"


class _Decoder:
    """One snapshot's values, each checked against the live value at its place (``_ABSENT``
    where the live driver has none, e.g. a task the fresh driver has not dispatched)."""

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        self.arrays: dict[int, np.ndarray] = {}  # an array written once for two places is one object again
        self.objects: list[Any] = []  # raysim objects by number, for references to them

    def value(self, doc: Any, live: Any, where: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise CheckpointError(f"{where}: nested deeper than any raysim state")
        if doc is None or type(doc) in (bool, int, float, str):
            return self._check(doc, live, where)
        if not isinstance(doc, dict) or len(doc) not in (1, 2):
            raise CheckpointError(f"{where}: {type(doc).__name__} is no encoded value")
        tag = next(iter(doc))
        items = doc[tag]
        if tag == "float" and items in ("nan", "inf", "-inf"):
            return self._check(float(items), live, where)
        if tag == "array" and type(items) is int:
            return self._array(items, live, where)
        if tag == "scalar" and len(doc) == 2:
            return self._check(self._scalar(items, doc.get("value"), where), live, where)
        if tag == "ref" and type(items) is int and 0 <= items < len(self.objects):
            return self._check(self.objects[items], live, where)
        if tag == "object" and len(doc) == 2 and isinstance(doc.get("fields"), dict):
            return self._object(items, doc["fields"], live, where, depth)
        if len(doc) == 1 and isinstance(items, list):
            return self._container(tag, items, live, where, depth)
        raise CheckpointError(f"{where}: {tag!r} is no encoded value")

    def _check(self, value: Any, live: Any, where: str) -> Any:
        """``value`` when it is of the live value's kind (numbers of any width are one kind, and
        an optional part may be absent on either side)."""
        if value is None or live is None or live is _ABSENT:
            return value
        if not isinstance(value, _kind_of(live)):
            raise CheckpointError(f"{where}: the checkpoint has {_kind(value)} where this scenario's driver has "
                                  f"{_kind(live)}")
        return value

    def _container(self, tag: str, items: list, live: Any, where: str, depth: int) -> Any:
        if tag in ("dict", "counter"):
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in items):
                raise CheckpointError(f"{where}: a {tag} is a list of [key, value] pairs")
            lookup = live if isinstance(live, dict) else {}
            keys, values = [], []
            for k, v in items:  # key, then value: the order the encoder numbered objects in
                keys.append(self.value(k, _ABSENT, f"{where}{{}}", depth + 1))
                try:
                    hash(keys[-1])
                except TypeError:
                    raise CheckpointError(f"{where}: a {tag} key must be hashable") from None
                values.append(self.value(v, lookup.get(keys[-1], _ABSENT), f"{where}[{keys[-1]!r}]", depth + 1))
            built: Any = dict(zip(keys, values))
            built = built if tag == "dict" else Counter(built)
        else:
            kinds = {name: kind for kind, name in _CONTAINERS.items()}
            if tag not in kinds:
                raise CheckpointError(f"{where}: {tag!r} is no encoded value")
            members = [self.value(item, _ABSENT, f"{where}[]", depth + 1) for item in items]
            try:
                built = kinds[tag](members)
            except TypeError:  # a set of lists
                raise CheckpointError(f"{where}: a {tag} of unhashable values") from None
        return self._check(built, live, where)

    def _scalar(self, dtype: Any, value: Any, where: str) -> np.generic:
        try:
            kind = np.dtype(dtype) if isinstance(dtype, str) and len(dtype) <= 4 else None
        except TypeError:
            kind = None
        if kind is None or kind.kind not in _KINDS or type(value) not in (bool, int, float):
            raise CheckpointError(f"{where}: {dtype!r} is not a numeric scalar type")
        try:
            return kind.type(value)
        except OverflowError:
            raise CheckpointError(f"{where}: {value!r} does not fit a {kind}") from None

    def _array(self, index: int, live: Any, where: str) -> np.ndarray:
        if index not in self.arrays:
            self.arrays[index] = _read_npy(self.archive, f"arrays/{index}.npy", where)
        array = self.arrays[index]
        if isinstance(live, np.ndarray) and (array.dtype != live.dtype or array.shape != live.shape):
            raise CheckpointError(f"{where}: the checkpoint has a {array.dtype} array of shape {array.shape} where "
                                  f"this scenario's driver has {live.dtype} {live.shape}")
        return self._check(array, live, where)

    def _object(self, name: Any, fields: dict, live: Any, where: str, depth: int) -> Any:
        placed = live is not None and live is not _ABSENT and _names(name, type(live)) and _plain(type(live))
        cls = type(live) if placed else _raysim_class(name, where)
        template = live if type(live) is cls else None
        if live is not None and live is not _ABSENT and template is None:
            raise CheckpointError(f"{where}: the checkpoint has a {cls.__qualname__} where this scenario's driver has "
                                  f"{_kind(live)}")
        rebuilt = tuple(getattr(cls, "REBUILT", ()))
        if dataclasses.is_dataclass(cls):
            expected = {f.name for f in dataclasses.fields(cls)}
        elif template is not None:
            expected = set(vars(template))
        else:
            raise CheckpointError(f"{where}: a {cls.__qualname__} where this scenario's driver has none")
        if rebuilt and template is None:
            raise CheckpointError(f"{where}: a {cls.__qualname__} where this scenario's driver has none")
        if set(fields) != expected - set(rebuilt):
            raise CheckpointError(f"{where}: the fields {sorted(fields)} are not a {cls.__qualname__}'s "
                                  f"{sorted(expected - set(rebuilt))}")
        obj = object.__new__(cls)
        self.objects.append(obj)
        for field, doc in fields.items():
            known = getattr(template, field) if template is not None else _ABSENT
            obj.__dict__[field] = self.value(doc, known, f"{where}.{field}", depth + 1)
        for field in rebuilt:
            obj.__dict__[field] = getattr(template, field)
        return obj


def _kind_of(live: Any) -> type | tuple[type, ...]:
    """The types a value may have where the live driver has ``live``."""
    if isinstance(live, (bool, np.bool_)):
        return (bool, np.bool_)
    if isinstance(live, (int, float, np.integer, np.floating)):
        return (int, float, np.integer, np.floating)
    return type(live)


def _raysim_class(name: Any, where: str) -> type:
    """The class ``module:qualname`` names: only a class defined in an already imported module of
    the raysim package, made the plain way (nothing is imported, nothing of the class is run)."""
    module_name, _, qualname = name.partition(":") if isinstance(name, str) else ("", "", "")
    module = sys.modules.get(module_name) if module_name.split(".")[0] == "raysim" else None
    cls = getattr(module, qualname, None) if qualname.isidentifier() else None
    if not isinstance(cls, type) or not _names(name, cls) or not _plain(cls):
        raise CheckpointError(f"{where}: {name!r} is not a class of raysim's state")
    return cls


def _names(name: Any, cls: type) -> bool:
    return name == f"{cls.__module__}:{cls.__qualname__}"


def _plain(cls: type) -> bool:
    """A class whose instances are made the plain way, so one re-created field by field runs none
    of its code (no own ``__new__``, no slots, no exception)."""
    return cls.__new__ is object.__new__ and "__slots__" not in vars(cls) and not issubclass(cls, BaseException)


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Named numeric arrays as one stored zip of ``.npy`` members (``np.savez``), written whole
    or not at all (``files.atomic_write``): a client's state in the per-client store."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def read_arrays(path: Path, *, where: str) -> dict[str, np.ndarray]:
    """What :func:`write_arrays` wrote, read as data: stored members named ``<identifier>.npy``,
    each a numeric array whose header is checked before it is read (no pickle)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{where}: {path.name} is not readable ({type(exc).__name__})") from None
    arrays = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy") or not name.isidentifier():
            raise CheckpointError(f"{where}: {path.name} holds {info.filename!r}, not a stored array")
        arrays[name] = _read_npy(archive, info.filename, where)
    return arrays


def _read_npy(archive: zipfile.ZipFile, member: str, where: str) -> np.ndarray:
    """An ``.npy`` entry whose header describes a plain numeric array and whose data fills it."""
    fmt = np.lib.format
    try:
        stream = io.BytesIO(archive.read(member))
        version = fmt.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
            raise CheckpointError(f"{where}: {member} has dtype {dtype}; a checkpoint holds numeric arrays only")
        expected = math.prod(shape) * dtype.itemsize
        if len(stream.getbuffer()) - stream.tell() != expected:
            raise ValueError(f"{expected} bytes of data expected")
        array = fmt.read_array(io.BytesIO(stream.getvalue()), allow_pickle=False)
    except CheckpointError:
        raise
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError, SyntaxError) as exc:
        raise CheckpointError(f"{where}: {member} is not a readable array ({exc})") from None
    return np.ascontiguousarray(array) if fortran else array
