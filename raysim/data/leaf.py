"""Reader for LEAF data folders (Caldas et al. 2018, "LEAF: A Benchmark for Federated
Settings", arXiv:1812.01097; https://github.com/TalwalkarLab/leaf).

LEAF's preprocessing writes ``train/*.json`` and ``test/*.json``, each file holding
``{"users": [...], "num_samples": [...], "user_data": {user: {"x": [...], "y": [...]}}}`` (and
Shakespeare's ignored ``"hierarchies"``). The first training example's ``x`` tells the kind, and
every example must be of that kind and length:

* text (Shakespeare): an L-character string; ``y`` the next character. Characters become their
  index in LEAF's 80-character vocabulary :data:`ALL_LETTERS` (``language_utils.py``):
  x int64 [N, L], y int64 [N], 80 classes;
* image (FEMNIST): 784 numbers, a 28x28 grey image in [0, 1]: x float32 [N, 1, 28, 28];
* vector (LEAF Synthetic): d numbers (d != 784): x float32 [N, d].

Image and vector labels are integers >= 0; ``num_classes`` is the largest train or test label
plus one. Clients are the train users, files sorted by name, then each file's ``users`` order;
``natural_parts`` holds each one's (contiguous) rows of ``train_x``. The test users' examples,
concatenated likewise, form one central test set.

Only :func:`json.loads` reads the files (no code runs); anything else is refused with a
:class:`~raysim.data.idx.DatasetError` naming the file and, where it applies, the user and key.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raysim.data.datasets import Dataset
from raysim.data.idx import DatasetError

ALL_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
IMAGE_SIZE = 28 * 28
# A larger JSON file is refused before it is read: json would need several times its size in memory.
MAX_JSON_BYTES = 2**31
# Labels at or beyond this are refused: the model would need that many outputs.
MAX_CLASSES = 100_000

_VOCABULARY = frozenset(ALL_LETTERS)
# Byte -> index in ALL_LETTERS (all of it ASCII); -1 for bytes outside the vocabulary.
_CHAR_INDEX = np.full(256, -1, dtype=np.int64)
_CHAR_INDEX[np.frombuffer(ALL_LETTERS.encode("ascii"), dtype=np.uint8)] = np.arange(len(ALL_LETTERS))
# Values quoted in messages, cut short (depth, length) so a hostile value keeps them one short line.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_PREPROCESS_HINT = ("run LEAF's preprocessing (e.g. ./preprocess.sh -s niid --sf 0.05 -k 0 -t sample) and "
                    "point data.path at the folder holding train/ and test/")


@dataclass(frozen=True)
class _User:
    """One user's raw examples; ``where`` names its file and the user, to start messages with."""

    name: str
    where: str
    x: list[Any]
    y: list[Any]


@dataclass(frozen=True)
class _Kind:
    """What every example's x is: "text", "image" or "vector", with its length."""

    name: str
    length: int


def load_leaf(path: str | Path) -> Dataset:
    """Reads a LEAF data folder (``train/`` and ``test/`` of JSON files) as a :class:`Dataset`.

    Raises:
        DatasetError: The folder or a file is missing or not in LEAF's format; one line that
            names the file (and user and key) and says how to fix it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; {_PREPROCESS_HINT}.")
    train_users = _read_split(folder, "train")
    test_users = _read_split(folder, "test")
    kind = _detect_kind(train_users[0])
    if kind.name == "text":
        train_x, train_y = _text_arrays(train_users, kind.length)
        test_x, test_y = _text_arrays(test_users, kind.length)
        num_classes, input_shape = len(ALL_LETTERS), (kind.length,)
    else:
        input_shape = (1, 28, 28) if kind.name == "image" else (kind.length,)
        train_x, train_y = _numeric_arrays(train_users, kind.length, input_shape)
        test_x, test_y = _numeric_arrays(test_users, kind.length, input_shape)
        num_classes = int(max(train_y.max(), test_y.max(initial=0))) + 1
    bounds = np.cumsum([0] + [len(user.y) for user in train_users])
    parts = tuple(np.arange(start, stop, dtype=np.int64) for start, stop in zip(bounds[:-1], bounds[1:]))
    return Dataset(name="leaf", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                   num_classes=num_classes, input_shape=input_shape, natural_parts=parts, pixels=None)


def _read_split(folder: Path, split: str) -> list[_User]:
    """The users of ``folder/split/*.json``, files in name order, users in file order."""
    split_dir = folder / split
    if not split_dir.is_dir():
        raise DatasetError(f"{folder}: no {split}/ folder; {_PREPROCESS_HINT}.")
    # As the shell's glob: hidden files (macOS's "._*.json" among them) are not data.
    files = sorted(file for file in split_dir.glob("*.json") if file.is_file() and not file.name.startswith("."))
    if not files:
        raise DatasetError(f"{split_dir}: no .json files; {_PREPROCESS_HINT}.")
    users: list[_User] = []
    seen: set[str] = set()
    for file in files:
        file_users = _read_file(file)
        if split == "train" and not file_users:
            raise DatasetError(f"{file}: a train file with no users; remove it or {_PREPROCESS_HINT}.")
        for user in file_users:
            if user.name in seen:
                raise DatasetError(f"{user.where}: appears twice in {split}/ (each user is one client); "
                                   f"{_PREPROCESS_HINT}.")
            if split == "train" and not user.y:
                raise DatasetError(f"{user.where}: key 'x' is empty, a client without training examples; "
                                   f"remove the user or {_PREPROCESS_HINT}.")
            seen.add(user.name)
        users.extend(file_users)
    if not any(user.y for user in users):
        raise DatasetError(f"{split_dir}: its files hold no examples; {_PREPROCESS_HINT}.")
    return users


def _read_file(file: Path) -> list[_User]:
    """The users of one LEAF JSON file, checked against its ``users`` and ``num_samples`` lists."""
    content = _load_json(file)
    if not isinstance(content, dict) or not isinstance(content.get("users"), list):
        raise DatasetError(f"{file}: not a LEAF file: it has no 'users' list; {_PREPROCESS_HINT}.")
    user_data = content.get("user_data")
    if not isinstance(user_data, dict):
        raise DatasetError(f"{file}: not a LEAF file: it has no 'user_data' mapping; {_PREPROCESS_HINT}.")
    names = content["users"]
    counts = content.get("num_samples")
    if counts is not None and (not isinstance(counts, list) or len(counts) != len(names)):
        raise DatasetError(f"{file}: 'num_samples' must be a list with one count per entry of 'users' "
                           f"({len(names)}); {_PREPROCESS_HINT}.")
    users: list[_User] = []
    for index, name in enumerate(names):
        if not isinstance(name, str) or name not in user_data:
            raise DatasetError(f"{file}: user {_SHORT.repr(name)} is listed in 'users' but missing from "
                               f"'user_data'; {_PREPROCESS_HINT}.")
        users.append(_read_user(file, name, user_data[name], None if counts is None else counts[index]))
    return users


def _load_json(file: Path) -> Any:
    """The file's JSON content; refuses a file over :data:`MAX_JSON_BYTES` before reading it."""
    try:
        size = file.stat().st_size
        if size <= MAX_JSON_BYTES:
            return json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise DatasetError(f"{file}: cannot be read as JSON ({exc!s:.200}); {_PREPROCESS_HINT}.") from exc
    raise DatasetError(f"{file}: {size} bytes, beyond the {MAX_JSON_BYTES / 2**30:g} GiB a LEAF file may have; "
                       f"not read. Split its users over several files in the same folder.")


def _read_user(file: Path, name: str, data: Any, expected_count: Any) -> _User:
    """One user's x and y lists, of equal length and of the length ``num_samples`` gives."""
    where = f"{file}: user {_SHORT.repr(name)}"
    for key in ("x", "y"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DatasetError(f"{where}: user_data needs a list under key '{key}'; {_PREPROCESS_HINT}.")
    x, y = data["x"], data["y"]
    if len(x) != len(y):
        raise DatasetError(f"{where}: 'x' has {len(x)} examples but 'y' has {len(y)}; each example needs "
                           f"one label, {_PREPROCESS_HINT}.")
    if expected_count is not None and (type(expected_count) is not int or expected_count != len(x)):
        raise DatasetError(f"{where}: 'num_samples' says {_SHORT.repr(expected_count)} but 'x' has {len(x)} "
                           f"examples; {_PREPROCESS_HINT}.")
    return _User(name, where, x, y)


def _detect_kind(user: _User) -> _Kind:
    """The kind of the data set's first example: a string is text, 784 numbers an image."""
    first = user.x[0]
    if isinstance(first, str) and first:
        return _Kind("text", len(first))
    if isinstance(first, list) and first:
        return _Kind("image" if len(first) == IMAGE_SIZE else "vector", len(first))
    raise DatasetError(f"{user.where}: key 'x': the first example is {_SHORT.repr(first)}; LEAF examples are a "
                       f"non-empty string (text) or a non-empty list of numbers; {_PREPROCESS_HINT}.")


def _text_arrays(users: list[_User], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Character indices: x int64 [N, length], y int64 [N]."""
    for user in users:
        _check_text(user, length)
    texts = ("".join(sequence for user in users for sequence in user.x),
             "".join(character for user in users for character in user.y))
    # All characters are in the (ASCII) vocabulary now: one table lookup over the bytes.
    x, y = (_CHAR_INDEX[np.frombuffer(text.encode("ascii"), dtype=np.uint8)] for text in texts)
    return x.reshape(-1, length), y


def _check_text(user: _User, length: int) -> None:
    """Every x a ``length``-character string, every y one character, all in the vocabulary."""
    if not all(isinstance(sequence, str) and len(sequence) == length for sequence in user.x):
        raise DatasetError(f"{user.where}: key 'x': every example must be a string of {length} characters like "
                           f"the data set's first one (mixed kinds or lengths); {_PREPROCESS_HINT}.")
    if not all(isinstance(character, str) and len(character) == 1 for character in user.y):
        raise DatasetError(f"{user.where}: key 'y': every label must be a 1-character string (the next "
                           f"character); {_PREPROCESS_HINT}.")
    unknown = set("".join(user.x)).union("".join(user.y)) - _VOCABULARY
    if unknown:
        raise DatasetError(f"{user.where}: character {min(unknown)!r} is not in LEAF's 80-character Shakespeare "
                           f"vocabulary (raysim.data.leaf.ALL_LETTERS); replace or remove it.")


def _numeric_arrays(users: list[_User], length: int, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 [N, *input_shape] and labels int64 [N]."""
    xs = [_numeric_features(user, length) for user in users if user.x]
    ys = [_integer_labels(user) for user in users if user.y]
    x = np.concatenate(xs) if xs else np.empty((0, length), dtype=np.float32)
    y = np.concatenate(ys) if ys else np.empty(0, dtype=np.int64)
    return x.reshape(-1, *input_shape), y


def _numeric_features(user: _User, length: int) -> np.ndarray:
    """The user's x as float32 [n, length]; refuses other lengths, kinds and non-finite values."""
    try:
        values = np.asarray(user.x)
    except (ValueError, TypeError, OverflowError):  # ragged or nested past numpy's dimensions
        values = np.empty(0)
    if values.shape != (len(user.x), length):
        raise DatasetError(f"{user.where}: key 'x': every example must be a list of {length} numbers like the "
                           f"data set's first one (mixed kinds or lengths); {_PREPROCESS_HINT}.")
    with np.errstate(over="ignore"):  # beyond float32: inf, refused below
        features = values.astype(np.float32) if values.dtype.kind in "iuf" else None
    if features is None or not np.isfinite(features).all():
        raise DatasetError(f"{user.where}: key 'x': non-numeric features (every value must be a finite "
                           f"float32 number); {_PREPROCESS_HINT}.")
    return features


def _integer_labels(user: _User) -> np.ndarray:
    """The user's y as int64; every label an integer in [0, MAX_CLASSES)."""
    bad = [label for label in user.y if type(label) is not int or not 0 <= label < MAX_CLASSES]
    if bad:
        raise DatasetError(f"{user.where}: key 'y': label {_SHORT.repr(bad[0])} is not an integer in "
                           f"[0, {MAX_CLASSES}); {_PREPROCESS_HINT}.")
    return np.asarray(user.y, dtype=np.int64)
