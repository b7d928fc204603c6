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

import collections.abc
import dataclasses
import functools
import io
import json
import math
import struct
import sys
import types
import typing
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from raysim.files import atomic_write
FORMAT = "raysim-driver-state"
# 2 (2026-12-07): client states kept when a task finishes, buffered updates' results held, the
# cost model's classes in sim/cost/, the node loops' clock: a version-1 state would resume as
# something else, so it is refused, saying so.
# 3 (2026-12-07): the selection stage (the selector and the clients' records) is checkpointed.
# 4 (2026-12-07): the kernel and its stages: each optional feature's state is its stage's, in the
# stage list (sim/stages/), no longer a driver attribute of its own.
VERSION = 4
_DOCUMENT = "state.json"
_KINDS = frozenset("biuf")  # bool, signed and unsigned integers, floats: nothing that holds references
_MAX_DEPTH = 100  # deeper is no raysim state: refused before Python's recursion limit is reached
_ABSENT = object()  # no live value at this place (an entry the fresh driver has not made yet)
_CONTAINERS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
Progress = tuple[int, float]  # (round, simulated time the round's row ends at)

MAX_ARCHIVE_BYTES = 2**32
"""The largest checkpoint or client-state file ``--resume`` reads: 4 GiB. A driver's state holds
the global model a few times over (the model, the versions tasks in flight started from, the
server optimiser's moments): 4 GiB is a billion float32 parameters, beyond any model one raysim
driver aggregates (ResNet-18 is 11 million). Reading one holds at most about twice its size in
memory: the file, and the arrays copied out of it (members are read in place, never inflated)."""
MAX_MEMBERS = 65_535
"""The most members a checkpoint's or state file's zip may have: what a zip holds without its
zip64 extension. A driver's state has one ``.npy`` member per distinct array (the model, its
bases, the in-flight tasks' models), far fewer; the central directory that lists them is read
only when it is at most ``MAX_MEMBERS * _ENTRY_BYTES`` bytes, so listing a crafted zip costs
megabytes, not the gigabytes a directory of millions of empty members would."""
_ENTRY_BYTES = 128  # a central-directory entry: 46 bytes and a name ("arrays/65534.npy", "c_i.npy")
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a member's local header (PKWARE APPNOTE 4.3.7)


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


def _archive(data: bytes) -> dict[str, memoryview]:
    members = stored_members(data)
    names = list(members)
    expected = {_DOCUMENT, *(f"arrays/{i}.npy" for i in range(len(names) - 1))}
    if set(names) != expected:
        raise CheckpointError(f"its entries {sorted(names)[:5]} are not a raysim driver state's")
    return members


def stored_members(data: bytes) -> dict[str, memoryview]:
    """The members of a zip as raysim writes them (stored, uncompressed), as views into ``data``:
    nothing is inflated, so what a zip claims cannot make reading it cost more than its own
    bytes. Each member must lie whole inside the file, after the one before it (members that
    share bytes are refused whatever Python's ``zipfile`` version notices), hold as many bytes as
    it says, and match its CRC; CheckpointError names what is wrong."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise CheckpointError(f"it is {len(data)} bytes, beyond the limit of {MAX_ARCHIVE_BYTES} bytes "
                              "(MAX_ARCHIVE_BYTES) for a driver's or client's state")
    if _directory_bytes(data) > MAX_MEMBERS * _ENTRY_BYTES:
        raise CheckpointError(f"its zip directory lists more than {MAX_MEMBERS} members (MAX_MEMBERS)")
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, struct.error) as exc:
        raise CheckpointError(f"not a zip raysim wrote ({type(exc).__name__}: {exc})") from None
    if len(infos) > MAX_MEMBERS or len({i.filename for i in infos}) != len(infos):
        raise CheckpointError(f"its zip lists {len(infos)} members, some twice or more than {MAX_MEMBERS}")
    view, members = memoryview(data), {}
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [i.header_offset for i in ordered[1:]] + [len(data)]):
        start = _member_start(data, info)
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1 or info.file_size != info.compress_size:
            raise CheckpointError(f"its member {info.filename!r} is compressed or encrypted; raysim writes them stored")
        if start + info.file_size > following:
            raise CheckpointError(f"its member {info.filename!r} ({info.file_size} bytes at offset {start}) runs "
                                  f"into the next member or past the end of the file, at offset {following}")
        members[info.filename] = view[start:start + info.file_size]
        if zlib.crc32(members[info.filename]) != info.CRC:
            raise CheckpointError(f"its member {info.filename!r} is damaged (CRC mismatch)")
    return members


def _directory_bytes(data: bytes) -> int:
    """The central directory's size as the end-of-directory record says (0 where there is none:
    zipfile then refuses the file)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    return struct.unpack_from("<L", data, end + 12)[0] if 0 <= end <= len(data) - 22 else 0


def _member_start(data: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's bytes begin: after its local header, name and extra field."""
    offset = info.header_offset
    if offset < 0 or offset + _LOCAL_HEADER.size > len(data):
        raise CheckpointError(f"its member {info.filename!r} starts outside the file")
    header = _LOCAL_HEADER.unpack_from(data, offset)
    if header[0] != b"PK\x03\x04":
        raise CheckpointError(f"its member {info.filename!r} has no local header where the directory says")
    return offset + _LOCAL_HEADER.size + header[10] + header[11]


def _document(archive: dict[str, memoryview]) -> dict:
    try:
        document = json.loads(bytes(archive[_DOCUMENT]).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"its {_DOCUMENT} is damaged ({type(exc).__name__})") from None
    if isinstance(document, dict) and document.get("format") == FORMAT and document.get("version") != VERSION:
        raise CheckpointError(f"it was written by another raysim (driver state version {document.get('version')!r}, "
                              f"this raysim reads version {VERSION}): resume it with that raysim, or start the run "
                              "again")
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

    def __init__(self, archive: dict[str, memoryview]):
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
        """``value`` when it is of the live value's kind (numbers of any width are one kind; a part
        the live driver has not made yet may be anything, and a field annotated optional None). Where the live run has a whole number
        the value is whole too, and not negative where the live one is not (a counter, a round);
        where it has a finite number, the value is finite (a clock, a time)."""
        if live is None or live is _ABSENT:
            return value
        if value is None or not isinstance(value, _kind_of(live)):
            raise CheckpointError(f"{where}: the checkpoint has {_kind(value)} where this scenario's driver has "
                                  f"{_kind(live)}")
        if _number(live):
            if isinstance(live, (int, np.integer)) and not isinstance(value, (int, np.integer)):
                raise CheckpointError(f"{where}: the checkpoint has {value!r} where this scenario's driver counts "
                                      "in whole numbers")
            if isinstance(live, (int, np.integer)) and live >= 0 > value:
                raise CheckpointError(f"{where}: the checkpoint has {value!r}, a negative count")
            if math.isfinite(live) and not math.isfinite(value):
                raise CheckpointError(f"{where}: the checkpoint has {value!r} where this scenario's driver has a "
                                      "finite number")
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
            places = [_ABSENT] * len(items)
            if tag == "tuple" and isinstance(live, tuple):  # a fixed structure (the stage list): place by place
                if len(live) != len(items):
                    raise CheckpointError(f"{where}: the checkpoint has {len(items)} entries where this scenario's "
                                          f"driver has {len(live)}")
                places = list(live)
            members = [self.value(item, place, f"{where}[{index}]" if place is not _ABSENT else f"{where}[]",
                                  depth + 1) for index, (item, place) in enumerate(zip(items, places))]
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
            member = f"arrays/{index}.npy"
            self.arrays[index] = _read_npy(self.archive.get(member, memoryview(b"")), f"{where}: {member}")
        array = self.arrays[index]
        _check_finite(array, live, where)
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
            if doc is None and _fits(None, _hints(cls).get(field, int)):  # an optional field, now unset
                known = _ABSENT
            obj.__dict__[field] = self.value(doc, known, f"{where}.{field}", depth + 1)
        for field in rebuilt:
            obj.__dict__[field] = getattr(template, field)
        _check_fields(obj, template, where)
        return obj


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_fields(obj: Any, template: Any, where: str) -> None:
    """A dataclass's fields hold what its annotations say (an in-flight task's, whose fresh
    driver has none to compare with, included), and its float fields are finite numbers unless
    the live object's is not."""
    for field, hint in _hints(type(obj)).items():
        value = obj.__dict__.get(field)
        if not _fits(value, hint):
            raise CheckpointError(f"{where}.{field}: the checkpoint has {_kind(value)} where a "
                                  f"{type(obj).__qualname__} holds {_hint_name(hint)}")
        known = getattr(template, field, 0.0)
        if hint is float and not math.isfinite(value) and (not _number(known) or math.isfinite(known)):
            raise CheckpointError(f"{where}.{field}: the checkpoint has {value!r}, not a finite number")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field annotations, resolved; {} for a plain class or ones that cannot be."""
    if not dataclasses.is_dataclass(cls):
        return {}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation naming what its module imports only for type checkers
        return {}
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name in hints}


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated type (containers item by item); annotations this
    does not understand (Any, callables, type variables) admit anything."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint in (int, float):
        whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        return whole or (hint is float and isinstance(value, (float, np.floating)))
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(item, args[0]) for item in value)
        return not args or (len(args) == len(value) and all(map(_fits, value, args)))
    if origin in (list, set, frozenset):
        return isinstance(value, origin) and (not args or all(_fits(item, args[0]) for item in value))
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping) and (len(args) != 2 or all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__qualname__", None) or str(hint).replace("typing.", "")


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
    each a numeric array of finite numbers whose header is checked before it is read (no pickle)."""
    try:
        members = stored_members(read_bounded(path))
    except OSError as exc:
        raise CheckpointError(f"{where}: {path.name} is not readable ({type(exc).__name__})") from None
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {path.name} was refused: {exc}") from None
    arrays = {}
    for member, data in members.items():
        name = member.removesuffix(".npy")
        if not member.endswith(".npy") or not name.isidentifier():
            raise CheckpointError(f"{where}: {path.name} holds {member!r}, not a stored array")
        arrays[name] = _read_npy(data, f"{where}: {path.name}: {member}")
        _check_finite(arrays[name], None, f"{where}: {path.name}: {member}")
    return arrays


def read_bounded(path: Path) -> bytes:
    """A checkpoint's or state file's bytes, refused unread beyond ``MAX_ARCHIVE_BYTES``."""
    size = path.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise CheckpointError(f"it is {size} bytes, beyond the limit of {MAX_ARCHIVE_BYTES} bytes "
                              "(MAX_ARCHIVE_BYTES) for a driver's or client's state")
    return path.read_bytes()


_NPY_HEADER_BYTES = 12 + 10_000  # magic, version, length and numpy's own limit on a header's text


def _read_npy(data: memoryview, where: str) -> np.ndarray:
    """An ``.npy`` member whose header describes a plain numeric array and whose data fills it
    exactly, copied out of ``data`` once (the header is parsed before anything is allocated)."""
    fmt = np.lib.format
    try:
        stream = io.BytesIO(bytes(data[:_NPY_HEADER_BYTES]))
        version = fmt.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy version {version}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
            raise CheckpointError(f"{where} has dtype {dtype}; a checkpoint holds numeric arrays only")
        count, offset = math.prod(shape), stream.tell()
        if count < 0 or len(data) - offset != count * dtype.itemsize:
            raise ValueError(f"{count * dtype.itemsize} bytes of data expected, {len(data) - offset} found")
        flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    except CheckpointError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise CheckpointError(f"{where} is not a readable array ({exc})") from None
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="C")


def _check_finite(array: np.ndarray, live: Any, where: str) -> None:
    """A float array holds finite numbers, unless the live run's array at this place does not
    (infinity and NaN in a model or a client's state only ever come from a crafted file: a run
    whose model diverges ends there)."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        if not (isinstance(live, np.ndarray) and live.dtype.kind == "f" and not np.isfinite(live).all()):
            raise CheckpointError(f"{where}: the checkpoint's array holds NaN or infinite values")
