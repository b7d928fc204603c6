"""User tables: Parquet and CSV alike, client parts, seeded test rows, label encoding,
standardisation, one-line refusals naming the column or key, and a million-row table."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from raysim.data.idx import DatasetError
from raysim.data.table import TableSpec, label_encoding, load_table

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "table" / "sensors.parquet"
SITES = ["north", "east", "west", "alpha", "south", "central"]  # first-appearance order in the fixture
FEATURES = ("temperature", "humidity", "pressure", "wind")


@pytest.fixture(scope="module")
def sensors() -> pa.Table:
    return pq.read_table(FIXTURE)


def write(table: pa.Table, path: Path) -> str:
    """Writes ``table`` as Parquet or CSV by the suffix of ``path``."""
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return str(path)


def spec(path, **overrides) -> TableSpec:
    return TableSpec(**{"path": str(path), "label": "level", "client": "site", "features": FEATURES, **overrides})


def with_row_ids(table: pa.Table) -> pa.Table:
    """The table with a feature ``row`` holding each row's number, to trace rows through a split."""
    return table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.float64)))


def test_fixture_is_small_and_as_described(sensors):
    assert FIXTURE.stat().st_size < 40_000
    assert sensors.column("site").unique().to_pylist() == SITES
    counts = sensors.column("site").value_counts().field("counts").to_pylist()
    assert len(counts) == 6 and all(40 <= c <= 80 for c in counts)
    assert set(sensors.column("level").to_pylist()) == {0, 1, 2}


def test_fixture_shapes_and_types():
    data = load_table(spec(FIXTURE), seed=0)
    n = pq.read_metadata(FIXTURE).num_rows
    assert data.name == "table" and data.pixels is None
    assert data.input_shape == (4,) and data.num_classes == 3
    assert data.train_x.dtype == data.test_x.dtype == np.float32
    assert data.train_y.dtype == data.test_y.dtype == np.int64
    assert data.train_x.shape == (len(data.train_y), 4) and data.test_x.shape == (len(data.test_y), 4)
    assert len(data.test_y) == round(0.2 * n) and len(data.train_y) + len(data.test_y) == n
    assert len(data.natural_parts) == 6 and all(p.dtype == np.int64 for p in data.natural_parts)


@pytest.mark.parametrize("client", ["site", ""])
def test_parquet_and_csv_give_the_same_arrays(sensors, tmp_path, client):
    csv = write(sensors, tmp_path / "sensors.csv")
    from_parquet = load_table(spec(FIXTURE, client=client), seed=3)
    from_csv = load_table(spec(csv, client=client), seed=3)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(from_csv, field), getattr(from_parquet, field))
    assert from_csv.num_classes == from_parquet.num_classes
    if client:
        for a, b in zip(from_csv.natural_parts, from_parquet.natural_parts, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert from_csv.natural_parts is None and from_parquet.natural_parts is None


def test_natural_parts_follow_first_appearance_and_cover_training_rows_once(sensors, tmp_path):
    path = write(with_row_ids(sensors), tmp_path / "t.parquet")
    data = load_table(spec(path, standardize=False, features=(*FEATURES, "row")), seed=1)
    file_rows = data.train_x[:, -1].astype(np.int64)  # the "row" feature: the row's number in the file
    np.testing.assert_array_equal(np.sort(np.concatenate(data.natural_parts)), np.arange(len(data.train_y)))
    sites = np.array(sensors.column("site").to_pylist())
    for site, part in zip(SITES, data.natural_parts, strict=True):
        assert len(part) and set(sites[file_rows[part]]) == {site}
        assert np.all(np.diff(part) > 0)  # each part keeps file order
    assert set(sites[data.test_x[:, -1].astype(np.int64)]) <= set(SITES)


def test_integer_and_categorical_client_ids_keep_first_appearance(tmp_path):
    ids = np.array([7, 3, 7, 9, 3, 3, 9, 7])
    table = pa.table({"x": np.arange(8.0), "y": np.zeros(8, dtype=np.int64), "c": ids})
    categories = pa.DictionaryArray.from_arrays(pa.array(np.searchsorted([3, 7, 9], ids), pa.int32()),
                                                pa.array(["k3", "k7", "k9"]))  # category order != appearance
    for client_column in (pa.array(ids), categories):
        path = write(table.set_column(2, "c", client_column), tmp_path / "ids.parquet")
        data = load_table(TableSpec(path=path, label="y", client="c", test_path=path, standardize=False), seed=0)
        groups = [data.train_x[part, 0].tolist() for part in data.natural_parts]
        assert groups == [[0, 2, 7], [1, 4, 5], [3, 6]]


def test_test_rows_are_drawn_from_the_seed(sensors, tmp_path):
    path = write(with_row_ids(sensors), tmp_path / "t.parquet")
    row_ids = spec(path, standardize=False, features=("row",))
    first, again, other = (load_table(row_ids, seed=seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(first.test_x[:, -1], again.test_x[:, -1])
    np.testing.assert_array_equal(first.train_y, again.train_y)
    assert not np.array_equal(first.test_x[:, -1], other.test_x[:, -1])
    smaller = load_table(spec(path, test_share=0.1), seed=0)
    assert len(smaller.test_y) == round(0.1 * sensors.num_rows)


def test_test_path_is_the_whole_test_set(sensors, tmp_path):
    train = write(sensors.slice(0, 250), tmp_path / "train.parquet")
    test = write(sensors.slice(250).drop_columns(["site"]), tmp_path / "test.csv")  # no client column needed
    data = load_table(spec(train, test_path=test, test_share=5.0, standardize=False), seed=0)
    assert len(data.train_y) == 250 and len(data.test_y) == sensors.num_rows - 250
    np.testing.assert_array_equal(data.test_y, sensors.column("level").to_numpy()[250:])
    np.testing.assert_array_equal(data.test_x[:, 0], sensors.column("temperature").to_numpy()[250:].astype(np.float32))
    np.testing.assert_array_equal(np.sort(np.concatenate(data.natural_parts)), np.arange(250))


def test_string_labels_are_encoded_in_sorted_order(tmp_path):
    names = ["dog", "cat", "emu", "cat", "dog", "ant", "emu", "cat"]
    table = pa.table({"x": np.arange(8.0), "animal": names})
    path = write(table, tmp_path / "a.parquet")
    data = load_table(TableSpec(path=path, label="animal", test_path=path), seed=0)
    assert data.num_classes == 4 and data.train_y.dtype == np.int64
    np.testing.assert_array_equal(data.train_y, [2, 1, 3, 1, 2, 0, 3, 1])
    codes, classes = label_encoding(names)
    assert classes == ["ant", "cat", "dog", "emu"]
    np.testing.assert_array_equal(codes, data.train_y)
    assert [classes[c] for c in codes] == names


def test_string_labels_are_encoded_over_train_and_test_together(tmp_path):
    train = write(pa.table({"x": [1.0, 2.0], "y": ["b", "c"]}), tmp_path / "train.csv")
    test = write(pa.table({"x": [3.0], "y": ["a"]}), tmp_path / "test.csv")
    data = load_table(TableSpec(path=train, label="y", test_path=test), seed=0)
    assert data.num_classes == 3 and data.train_y.tolist() == [1, 2] and data.test_y.tolist() == [0]


def test_value_labels_are_float32(sensors):
    data = load_table(spec(FIXTURE, label="load", target="value", features=FEATURES), seed=0)
    assert data.train_y.dtype == data.test_y.dtype == np.float32 and data.num_classes == 1
    assert data.input_shape == (4,)  # the int "level" column was not asked for
    loads = np.sort(np.concatenate([data.train_y, data.test_y]))
    np.testing.assert_allclose(loads, np.sort(sensors.column("load").to_numpy()).astype(np.float32))


def test_default_features_are_every_other_column(sensors):
    data = load_table(spec(FIXTURE, label="load", target="value", features=()), seed=0)
    assert data.input_shape == (5,)  # four features and "level"; never "site" nor "load"


def test_features_are_standardized_by_the_training_rows(tmp_path):
    rng = np.random.default_rng(0)
    table = pa.table({"a": rng.normal(50.0, 7.0, 300), "flag": rng.random(300) < 0.3,
                      "const": np.full(300, 0.1), "y": rng.integers(0, 2, 300)})
    path = write(table, tmp_path / "s.parquet")
    data = load_table(TableSpec(path=path, label="y"), seed=0)
    np.testing.assert_allclose(data.train_x.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(data.train_x[:, :2].std(axis=0), 1.0, atol=1e-5)
    assert np.all(data.train_x[:, 2] == 0) and np.all(data.test_x[:, 2] == 0)  # constant: std 1
    raw = load_table(TableSpec(path=path, label="y", standardize=False), seed=0)
    assert set(np.unique(raw.train_x[:, 1])) <= {0.0, 1.0}  # booleans as 0/1
    a = raw.train_x[:, 0].astype(np.float64)
    np.testing.assert_allclose(data.test_x[:, 0], (raw.test_x[:, 0] - a.mean()) / a.std(), rtol=1e-5)


def refusal(tmp_path, table: pa.Table, name: str = "t.parquet", **fields) -> str:
    """The message load_table refuses ``table`` with."""
    path = write(table, tmp_path / name) if table is not None else str(tmp_path / name)
    with pytest.raises(DatasetError) as caught:
        load_table(TableSpec(**{"path": path, "label": "y", **fields}), seed=0)
    message = str(caught.value)
    assert "\n" not in message
    return message


def basic(n: int = 10, **extra) -> pa.Table:
    return pa.table({"x": np.arange(float(n)), "y": np.arange(n) % 2, **extra})


def test_refuses_missing_paths_and_unsupported_suffixes(tmp_path):
    assert "data.path" in refusal(tmp_path, None, "nowhere.parquet")
    (tmp_path / "folder.parquet").mkdir()
    assert "not a file" in refusal(tmp_path, None, "folder.parquet")
    (tmp_path / "t.json").write_text("{}")
    assert "use .parquet or .csv" in refusal(tmp_path, None, "t.json")
    assert "data.test_path" in refusal(tmp_path, basic(), test_path=str(tmp_path / "absent.csv"))


def test_refuses_files_pyarrow_cannot_parse(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    message = refusal(tmp_path, None, "bad.parquet")
    assert "bad.parquet" in message and "Parquet" in message
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n3,4,5\n")
    assert "bad.csv" in refusal(tmp_path, None, "bad.csv")


def test_refuses_missing_columns(tmp_path):
    message = refusal(tmp_path, basic(), label="target")
    assert "data.label = 'target'" in message and "x, y" in message
    assert "'nope'" in refusal(tmp_path, basic(), features=("x", "nope"))
    assert "data.client = 'site'" in refusal(tmp_path, basic(), client="site")
    assert "label column" in refusal(tmp_path, basic(), features=("x", "y"))
    assert "no column besides" in refusal(tmp_path, pa.table({"y": [0, 1]}))


def test_refuses_a_single_client(tmp_path):
    message = refusal(tmp_path, basic(site=["a"] * 10), client="site")
    assert "data.client = 'site' has one value" in message and "partition = 'iid'" in message


def test_refuses_clients_left_without_training_rows(tmp_path):
    table = basic(40, site=[f"solo{i}" for i in range(20)] + ["many"] * 20)
    message = refusal(tmp_path, table, client="site", test_share=0.5)
    assert "of 21 clients (e.g. 'solo" in message and "lower test_share" in message


@pytest.mark.parametrize("column", [pa.array(list("abcdefghij")), pa.array(list("ababababab")).dictionary_encode()])
def test_refuses_categorical_features(tmp_path, column):
    message = refusal(tmp_path, basic(city=column))
    assert "data.features: column 'city' is categorical" in message and "get_dummies" in message


@pytest.mark.parametrize("column_name, fields", [("x", {"features": ("x",)}), ("y", {"features": ("x",)}),
                                                   ("site", {"client": "site"})])
def test_refuses_missing_values_naming_the_column_and_count(tmp_path, column_name, fields):
    table = basic(10, site=list("ababababab"))
    values = table.column(column_name).to_pylist()
    values[2] = values[5] = None
    if column_name == "x":
        values[7] = float("nan")
    table = table.set_column(table.schema.get_field_index(column_name), column_name, pa.array(values))
    message = refusal(tmp_path, table, **fields)
    count = 3 if column_name == "x" else 2
    assert f"column {column_name!r} has {count} rows" in message and "dropna" in message


def test_refuses_missing_values_in_csv(tmp_path):
    (tmp_path / "x.csv").write_text("x,y,site\n1,0,a\n,1,b\n3,0,a\n4,1,b\n")
    assert "column 'x' has 1 rows" in refusal(tmp_path, None, "x.csv", client="site")
    (tmp_path / "site.csv").write_text("x,y,site\n1,0,a\n2,1,b\n3,0,\n4,1,b\n")
    assert "column 'site' has 1 rows" in refusal(tmp_path, None, "site.csv", client="site")


def test_refuses_labels_unfit_for_the_target(tmp_path):
    assert "kind = 'regression' needs numbers" in refusal(tmp_path, basic().set_column(1, "y", pa.array(list("ab") * 5)),
                                                       target="value")
    halves = basic().set_column(1, "y", pa.array(np.arange(10) / 2))
    assert "whole numbers, found 0.5" in refusal(tmp_path, halves)
    assert ">= 0" in refusal(tmp_path, basic().set_column(1, "y", pa.array(np.arange(10) - 1)))
    data = load_table(TableSpec(path=str(tmp_path / "t.parquet"), label="y", target="value"), seed=0)
    assert data.train_y.dtype == np.float32  # the same integer labels as values


def test_refuses_test_files_with_other_columns_and_bad_shares(tmp_path):
    test = write(pa.table({"x": [1.0]}), tmp_path / "test.parquet")
    message = refusal(tmp_path, basic(), test_path=test)
    assert "data.test_path" in message and "'y'" in message
    for share in (0.0, 1.0, -0.2, 1.5):
        assert "data.test_share" in refusal(tmp_path, basic(), test_share=share)
    assert "TableSpec.target" in refusal(tmp_path, basic(), target="regression")


def test_a_million_rows_and_a_hundred_thousand_clients(tmp_path):
    rng = np.random.default_rng(0)
    n, clients = 1_000_000, 100_000
    later = np.concatenate([np.tile(np.arange(clients), 4), rng.integers(0, clients, n - 5 * clients)])
    client_ids = rng.permutation(clients)[np.concatenate([np.arange(clients), rng.permutation(later)])]
    table = pa.table({**{f"f{i}": rng.normal(size=n).astype(np.float32) for i in range(3)},
                      "y": rng.integers(0, 10, n), "user": pa.array(client_ids.astype(str))})
    path = write(table, tmp_path / "big.parquet")
    data = load_table(TableSpec(path=path, label="y", client="user", test_path=path), seed=0)
    assert len(data.natural_parts) == clients and data.train_x.shape == (n, 3)
    first = data.natural_parts[0]
    assert np.all(client_ids[first] == client_ids[0])
    assert sum(len(part) for part in data.natural_parts) == n
    held_out = load_table(TableSpec(path=path, label="y", client="user", test_share=0.01), seed=0)
    assert len(held_out.natural_parts) == clients and len(held_out.test_y) == n // 100


# --- issue 32, finding 7: table data from someone else; finding 4: class counts ---------------------

@pytest.mark.parametrize("client", [pa.array([[1], [2]] * 5), pa.array([{"a": 1}, {"a": 2}] * 5),
                                    pa.array([1.5, 2.5] * 5)], ids=["list", "struct", "float"])
def test_a_client_column_of_another_type_is_refused_naming_it(tmp_path, client):
    message = refusal(tmp_path, basic(c=client), client="c", features=("x",))
    assert "data.client = 'c'" in message and f"type {str(client.type).split('<')[0]}" in message


def test_a_csv_that_fails_to_parse_is_refused_by_line_and_column_without_its_text(tmp_path):
    (tmp_path / "bad.csv").write_text("x,y\n1,0\n2,1\nSECRET-A,SECRET-B,SECRET-C\n")
    message = refusal(tmp_path, None, "bad.csv")
    assert "bad.csv" in message and "line 4" in message and "3 values where the header has 2 columns" in message
    assert "SECRET" not in message


def test_a_table_path_linking_to_a_system_file_prints_none_of_its_lines(tmp_path):
    system = tmp_path / "passwd"
    system.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n")
    (tmp_path / "t.csv").symlink_to(system)
    for fields in ({}, {"label": "root:x:0:0:root:/root:/bin/bash"}):
        message = refusal(tmp_path, None, "t.csv", **fields)
        assert "t.csv" in message and "daemon" not in message and "/bin/bash" not in message.replace(
            fields.get("label", "~"), "")


def test_a_label_of_1e11_is_refused_before_anything_is_allocated(tmp_path):
    """One label 1e11 made num_classes 1e11 + 1: the label histogram asked for 745 GiB."""
    message = refusal(tmp_path, basic(y=pa.array([0] * 9 + [10**11])))
    assert "100000000001 classes for 10 rows" in message and "limit of 65536 classes (MAX_CLASSES)" in message


def test_the_most_classes_allowed_still_load(tmp_path):
    from raysim.data.datasets import MAX_CLASSES

    path = write(basic(y=pa.array([0] * 9 + [MAX_CLASSES - 1])), tmp_path / "t.parquet")
    assert load_table(TableSpec(path=path, label="y", test_share=0.5), seed=0).num_classes == MAX_CLASSES
