"""User tables (Parquet or CSV) as a :class:`~raysim.data.datasets.Dataset`, with an optional
client column as the natural partition.

The table: one row per example, numeric feature columns, a label column and, optionally, a
client column naming the client (site, device, user) holding the row; a Hugging Face / Flower
Datasets export saved with ``dataset.to_parquet(path)`` is such a table. Features are integers or
floats, booleans read as 0/1; text, dictionary (categorical) and binary features are refused
(encode them first, e.g. ``pandas.get_dummies``), as are null, NaN and infinite values in any
column read. A ``test_path`` file needs the feature and label columns (its client column is unused).

Labels: for ``target = "class"`` integers are class numbers (>= 0; ``num_classes`` = largest + 1;
whole-number floats and booleans count as integers) and strings are encoded to 0..K-1 in *sorted*
order of the distinct strings of the training and test files together (:func:`label_encoding`
gives the mapping to report). For ``target = "value"`` labels are numbers, as float32; 1 class.

Clients: parts come in order of each client's first appearance in the file, for string or integer
ids. Without ``test_path`` a seeded ``test_share`` of all rows is the test set, removed from every
client's part; a client left without a training row is refused. The client is never a feature.

Features are standardised by the training rows' mean and std (float64 math, float32 result; a
constant column keeps std 1). Millions of rows and clients load in seconds because nothing makes a
Python object per row: pyarrow reads only the needed columns into arrays, and clients are grouped
by ``dictionary_encode`` codes, a stable argsort and ``np.split``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from raysim.data.datasets import Dataset, check_class_count
from raysim.data.idx import DatasetError

PARQUET_SUFFIXES, CSV_SUFFIXES = (".parquet", ".pq"), (".csv",)


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """Where a table is and how its columns become a data set (see the module docstring)."""

    path: str                      # .parquet / .pq or .csv (by suffix; anything else refused)
    label: str                     # the label column
    features: tuple[str, ...] = ()  # empty: every column but the label and the client column
    client: str = ""               # the client column ("" = none: no natural partition)
    test_path: str = ""            # a separate test file with the same columns
    test_share: float = 0.2        # without test_path: this share of rows, drawn from the seed, is the test set
    target: Literal["class", "value"] = "class"  # class labels (classification) or real values (regression)
    standardize: bool = True       # features scaled by the training rows' mean and std (constant columns: std 1)


def load_table(spec: TableSpec, *, seed: int) -> Dataset:
    """Reads ``spec``'s table(s) into a ``Dataset`` named "table"; ``seed`` draws the test rows
    when there is no ``test_path``.

    Raises:
        DatasetError: One line naming the key or column at fault and the fix.
    """
    _check_options(spec)
    features = _feature_names(spec, _column_names(spec.path, "data.path"))
    train = _read(spec.path, "data.path", [*features, spec.label, *([spec.client] if spec.client else [])])
    tables = [(spec.path, train)]
    if spec.test_path:
        _check_test_columns(spec, features)
        tables.append((spec.test_path, _read(spec.test_path, "data.test_path", [*features, spec.label])))
    for (path, table), key in zip(tables, ("data.path", "data.test_path")):
        if not table.num_rows:
            raise DatasetError(f"{key}: {path} has no rows; give a table with rows")
    x_all = np.column_stack([_numeric(_joined(tables, name, "data.features"), name, "data.features")
                             for name in features]).astype(np.float64, copy=False)
    y_all, num_classes = _labels(_joined(tables, spec.label, "data.label"), spec)
    check_class_count(num_classes, len(y_all), f"data.label = {spec.label!r}")
    train_rows, test_rows = _split_rows(spec, train.num_rows, len(y_all), seed)
    parts = _client_parts(spec, train.column(spec.client), train_rows) if spec.client else None
    train_x, test_x = _scaled(x_all[train_rows], x_all[test_rows], spec.standardize)
    return Dataset(name="table", train_x=train_x, train_y=y_all[train_rows], test_x=test_x,
                   test_y=y_all[test_rows], num_classes=num_classes, input_shape=(len(features),),
                   natural_parts=parts, pixels=None)


def label_encoding(values: pa.Array | pa.ChunkedArray | np.ndarray | list[str]) -> tuple[np.ndarray, list[str]]:
    """Text labels as int64 codes 0..K-1 in sorted order of the distinct strings, and the K
    strings (``names[code]`` is the original label); one Python object per class, none per row."""
    appearance_codes, distinct_values = _appearance_codes(values)
    distinct = distinct_values.to_pylist()
    order = sorted(range(len(distinct)), key=distinct.__getitem__)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order] = np.arange(len(distinct))
    return rank[appearance_codes], [distinct[i] for i in order]


def _appearance_codes(values: pa.Array | pa.ChunkedArray | np.ndarray | list) -> tuple[np.ndarray, pa.Array]:
    """int64 codes numbering the distinct values in order of first appearance, and those values."""
    column = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([pa.array(values)])
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)  # appearance order, not the category order
    encoded = pc.dictionary_encode(column).combine_chunks()  # the chunks share one dictionary
    return encoded.indices.to_numpy().astype(np.int64), encoded.dictionary


def _check_options(spec: TableSpec) -> None:
    """Refuses bad paths, suffixes, target and test_share before anything is read."""
    paths = [("data.path", spec.path)] + ([("data.test_path", spec.test_path)] if spec.test_path else [])
    for key, path in paths:
        if not Path(path).is_file():
            raise DatasetError(f"{key} = {path!r}: no such file (or not a file); give the path of a .parquet or .csv")
        if Path(path).suffix.lower() not in PARQUET_SUFFIXES + CSV_SUFFIXES:
            raise DatasetError(f"{key} = {path!r}: unsupported suffix {Path(path).suffix!r}; use .parquet or .csv")
    if spec.target not in ("class", "value"):
        raise DatasetError(f"TableSpec.target = {spec.target!r}: use 'class' (classification) or 'value' (regression)")
    if not spec.test_path and not 0 < spec.test_share < 1:
        raise DatasetError(f"data.test_share = {spec.test_share!r} must be in (0, 1) without data.test_path "
                           f"(the share of rows held out as the test set)")


def _is_parquet(path: str) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES  # else CSV: _check_options refused the rest


def _unreadable(key: str, path: str, error: Exception) -> DatasetError:
    """One-line refusal for a file pyarrow cannot parse: Parquet's reason as pyarrow gives it,
    a CSV's as the line and column pyarrow names, never the text (pyarrow quotes the row, and a
    path may name someone else's file: a symlink to a system file must not print its lines)."""
    if _is_parquet(path):
        reason = " ".join(str(error).split())  # one line
        return DatasetError(f"{key}: {path} cannot be read as Parquet ({reason}); give a valid Parquet file")
    return DatasetError(f"{key}: {path} cannot be read as CSV ({_csv_failure(path, error)}); give a valid CSV file "
                        "with a header line and one value per column on every line")


def _csv_failure(path: str, error: Exception) -> str:
    """Where a CSV failed, from pyarrow's message reduced to numbers (line, column, counts);
    pyarrow numbers lines only when it reads on one thread, so the file is read once more so
    (on this failure only) to find the line."""
    if isinstance(error, pa.ArrowInvalid):
        try:
            pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(use_threads=False))
        except (pa.ArrowException, OSError) as again:
            error = again
    text = str(error)
    line, column = re.search(r"Row #(\d+)", text), re.search(r"column #(\d+)", text)
    places = ([f"line {line[1]}"] if line else []) + ([f"column {int(column[1]) + 1}"] if column else [])
    counts, target = re.search(r"Expected (\d+) columns, got (\d+)", text), re.search(r"conversion error to (\w+)", text)
    what = (f"{counts[2]} values where the header has {counts[1]} columns" if counts else
            f"a value that is not {target[1]} like the rows before it" if target else type(error).__name__)
    return f"{', '.join(places) or 'a line'}: {what}"


def _column_names(path: str, key: str) -> list[str]:
    """The file's column names, from the Parquet schema or the CSV header."""
    try:
        if _is_parquet(path):
            return list(pq.read_schema(path).names)
        with pa_csv.open_csv(path) as reader:
            return list(reader.schema.names)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(key, path, error) from error


def _read(path: str, key: str, columns: list[str]) -> pa.Table:
    """Only ``columns`` of the file; CSV empty strings count as missing."""
    try:
        if _is_parquet(path):
            return pq.read_table(path, columns=columns)
        options = pa_csv.ConvertOptions(include_columns=columns, strings_can_be_null=True)
        return pa_csv.read_csv(path, convert_options=options)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(key, path, error) from error


def _feature_names(spec: TableSpec, names: list[str]) -> list[str]:
    """The feature columns: those listed, or every column but the label and the client."""
    existing = (", ".join(names) if _is_parquet(spec.path)  # a CSV's header line is its text: not shown
                else f"not shown here (its header line names {len(names)})")
    if spec.label not in names:
        raise DatasetError(f"data.label = {spec.label!r}: no such column in {spec.path}; its columns are {existing}")
    if spec.client and spec.client not in names:
        raise DatasetError(f"data.client = {spec.client!r}: no such column in {spec.path}; its columns are "
                           f"{existing}; name one of them, or leave client out for no natural partition")
    excluded = {spec.label, spec.client}
    for name in spec.features:
        if name not in names:
            raise DatasetError(f"data.features: column {name!r} is not in {spec.path}; its columns are {existing}")
        if name in excluded:
            role = "label" if name == spec.label else "client"
            raise DatasetError(f"data.features: column {name!r} is the {role} column; leave it out of features")
        if spec.features.count(name) > 1:
            raise DatasetError(f"data.features: column {name!r} is listed twice; list each column once")
    features = list(spec.features) or [name for name in names if name not in excluded]
    if not features:
        raise DatasetError(f"data.features: {spec.path} has no column besides the label (and client) "
                           f"column; a table needs at least one numeric feature column")
    return features


def _check_test_columns(spec: TableSpec, features: list[str]) -> None:
    """Refuses a test file that lacks a feature or the label column."""
    test_names = set(_column_names(spec.test_path, "data.test_path"))
    missing = [name for name in [*features, spec.label] if name not in test_names]
    if missing:
        raise DatasetError(f"data.test_path: {spec.test_path} lacks column(s) {', '.join(map(repr, missing))} "
                           f"that data.path has; give a test file with the same columns")


def _joined(tables: list[tuple[str, pa.Table]], name: str, key: str) -> pa.ChunkedArray:
    """Column ``name`` of the training then the test file, complete, in the training file's type."""
    columns = []
    for path, table in tables:
        column = table.column(name)
        _check_complete(column, name, key, path)
        if columns and column.type != columns[0].type:
            try:
                column = column.cast(columns[0].type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise DatasetError(f"{key}: column {name!r} is {column.type} in {path} but {columns[0].type} in "
                                   f"data.path; give both files the same column types") from error
        columns.append(column)
    return pa.chunked_array([chunk for column in columns for chunk in column.chunks], type=columns[0].type)


def _check_complete(column: pa.ChunkedArray, name: str, key: str, path: str) -> None:
    """Refuses null, NaN or infinite values, naming the column and the count of rows."""
    missing = column.null_count
    if pa.types.is_floating(column.type):
        missing += pc.sum(pc.invert(pc.is_finite(column))).as_py() or 0
    if missing:
        raise DatasetError(f"{key}: column {name!r} has {missing} rows with missing (null or NaN) or infinite "
                           f"values in {path}; drop or fill them, e.g. df.dropna()")


def _type_word(data_type: pa.DataType) -> str:
    """A short name for a column type in messages: "string", "dictionary", "int64"..."""
    return "dictionary" if pa.types.is_dictionary(data_type) else "string" if _is_text(data_type) else str(data_type)


def _is_text(data_type: pa.DataType) -> bool:
    return (pa.types.is_string(data_type) or pa.types.is_large_string(data_type)
            or pa.types.is_string_view(data_type))


def _is_number(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type)


def _numeric(column: pa.ChunkedArray, name: str, key: str) -> np.ndarray:
    """A numeric feature column as a numpy array (booleans as 0/1); categorical ones refused."""
    data_type = column.type
    if _is_text(data_type) or pa.types.is_dictionary(data_type) or pa.types.is_binary(data_type):
        raise DatasetError(f"{key}: column {name!r} is categorical ({_type_word(data_type)}); encode it as numbers "
                           f"(e.g. one-hot with pandas.get_dummies) or leave it out of features")
    if not _is_number(data_type):
        raise DatasetError(f"{key}: column {name!r} has type {data_type}; features must be integers, floats "
                           f"or booleans: convert it or leave it out of features")
    return column.to_numpy()


def _labels(column: pa.ChunkedArray, spec: TableSpec) -> tuple[np.ndarray, int]:
    """The labels of every row (training file then test file) and the class count."""
    key, word = f"data.label = {spec.label!r}", _type_word(column.type)
    if spec.target == "value":
        if not _is_number(column.type):
            raise DatasetError(f"{key} is {word} but [task] kind = 'regression' needs numbers; convert it, "
                               f"or use a classification task")
        return column.to_numpy().astype(np.float32), 1
    if _is_text(column.type) or pa.types.is_dictionary(column.type):
        codes, names = label_encoding(column)
        return codes, len(names)
    if not _is_number(column.type):
        raise DatasetError(f"{key} has type {column.type}; class labels must be integers or strings")
    values = column.to_numpy()
    if pa.types.is_floating(column.type) and not np.array_equal(values, np.round(values)):
        example = values[values != np.round(values)][0]
        raise DatasetError(f"{key}: class labels must be whole numbers, found {example}; round them, "
                           f"or set [task] kind = 'regression'")
    labels = values.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DatasetError(f"{key}: class labels must be >= 0, found {labels.min()}; number the classes 0..K-1")
    num_classes = 2 if pa.types.is_boolean(column.type) else int(labels.max(initial=-1)) + 1
    return labels, num_classes


def _split_rows(spec: TableSpec, train_file_rows: int, all_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test row indices into the joined rows (training file, then test file)."""
    if spec.test_path:
        return np.arange(train_file_rows), np.arange(train_file_rows, all_rows)
    test_count = max(1, int(round(spec.test_share * train_file_rows)))
    if test_count >= train_file_rows:
        raise DatasetError(f"data.test_share = {spec.test_share}: {spec.path} has {train_file_rows} rows, too few "
                           f"to hold out a test set and keep training rows; give more rows or a data.test_path")
    test_rows = np.sort(np.random.default_rng(seed).permutation(train_file_rows)[:test_count])
    return np.delete(np.arange(train_file_rows), test_rows), test_rows


def _client_parts(spec: TableSpec, column: pa.ChunkedArray, train_rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Index arrays into the training rows, one per client in order of first appearance."""
    data_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (_is_text(data_type) or pa.types.is_integer(data_type)):
        raise DatasetError(f"data.client = {spec.client!r}: the column has type {column.type} in {spec.path}; a "
                           "client column holds one string or integer id per row")
    _check_complete(column, spec.client, "data.client", spec.path)
    codes, client_ids = _appearance_codes(column)
    if len(client_ids) < 2:
        raise DatasetError(f"data.client = {spec.client!r} has one value: a natural partition needs at least two "
                           f"clients; leave client out and use partition = 'iid'")
    train_codes = codes[train_rows]
    counts = np.bincount(train_codes, minlength=len(client_ids))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DatasetError(f"data.client = {spec.client!r}: {empty.size} of {len(client_ids)} clients (e.g. "
                           f"{client_ids[int(empty[0])].as_py()!r}) have no training row after holding out "
                           f"data.test_share = {spec.test_share}; lower test_share or give a test_path")
    grouped = np.argsort(train_codes, kind="stable")
    return tuple(np.split(grouped, np.cumsum(counts)[:-1]))


def _scaled(train_x: np.ndarray, test_x: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both feature matrices as float32, standardised by the training rows when asked."""
    if standardize and len(train_x):
        mean, std, constant = train_x.mean(axis=0), train_x.std(axis=0), np.ptp(train_x, axis=0) == 0
        mean[constant], std[constant] = train_x[0, constant], 1.0  # a constant column becomes exactly 0
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    return train_x.astype(np.float32), test_x.astype(np.float32)
