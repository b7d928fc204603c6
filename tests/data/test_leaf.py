"""LEAF folders: the FEMNIST and Shakespeare fixtures, a Synthetic-like vector file, and
refusals that name the file, the user and the key."""

import json
from pathlib import Path

import numpy as np
import pytest

from raysim.data import leaf
from raysim.data.datasets import Dataset
from raysim.data.idx import DatasetError
from raysim.data.leaf import ALL_LETTERS, MAX_JSON_BYTES, load_leaf
from raysim.data.partitions import Natural, partition

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "leaf"
KENT = "THE_TRAGEDY_OF_KING_LEAR_KENT"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def only_file(folder: Path) -> Path:
    (path,) = folder.glob("*.json")
    return path


def leaf_content(users: dict) -> dict:
    """A LEAF file's content from {user: (x, y)}."""
    return {"users": list(users), "num_samples": [len(y) for _, y in users.values()],
            "user_data": {user: {"x": x, "y": y} for user, (x, y) in users.items()}}


def write_file(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def vector_users(prefix: str, sizes, d=5, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {f"{prefix}{i}": (rng.normal(size=(n, d)).round(4).tolist(), rng.integers(0, 4, n).tolist())
            for i, n in enumerate(sizes)}


def make_folder(root: Path, train, test=None) -> Path:
    """root/train/data.json and root/test/data.json (by default the train content, or a
    2-feature vector file when train is None); a content of None writes no file."""
    if test is None:
        test = leaf_content({"t": ([[0.0, 1.0]], [0])}) if train is None else train
    for split, content in (("train", train), ("test", test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        if content is not None:
            write_file(root / split / "data.json", content)
    return root


def refused(path: Path, *fragments: str) -> str:
    """Loads ``path`` expecting a one-line DatasetError that contains every fragment."""
    with pytest.raises(DatasetError) as info:
        load_leaf(path)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- the fixtures ---------------------------------------------------------------------------------


def test_vocabulary_is_leafs_80_characters():
    assert len(ALL_LETTERS) == len(set(ALL_LETTERS)) == 80
    assert ALL_LETTERS[0] == "\n" and ALL_LETTERS[-1] == "}" and ALL_LETTERS.index("a") == 53


def test_femnist_fixture():
    data = load_leaf(FIXTURES / "femnist")
    train = read_json(only_file(FIXTURES / "femnist" / "train"))
    test = read_json(only_file(FIXTURES / "femnist" / "test"))
    n_train, n_test = sum(train["num_samples"]), sum(test["num_samples"])
    assert isinstance(data, Dataset) and data.name == "leaf" and data.pixels is None
    assert data.input_shape == (1, 28, 28)
    assert data.train_x.shape == (n_train, 1, 28, 28) and data.train_x.dtype == np.float32
    assert data.test_x.shape == (n_test, 1, 28, 28) and data.test_x.dtype == np.float32
    assert data.train_y.dtype == np.int64 and data.test_y.dtype == np.int64
    assert 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0
    assert data.num_classes == max(data.train_y.max(), data.test_y.max()) + 1
    # One client per writer, in the file's order, covering every train row once.
    assert len(data.natural_parts) == len(train["users"]) == 4
    assert [len(part) for part in data.natural_parts] == train["num_samples"]
    assert all(part.dtype == np.int64 for part in data.natural_parts)
    np.testing.assert_array_equal(np.concatenate(data.natural_parts), np.arange(n_train))
    for user, part in zip(train["users"], data.natural_parts):
        np.testing.assert_array_equal(data.train_y[part], train["user_data"][user]["y"])
        np.testing.assert_allclose(data.train_x[part].reshape(len(part), -1), train["user_data"][user]["x"],
                                   atol=1e-6)
    expected_test_y = [y for user in test["users"] for y in test["user_data"][user]["y"]]
    np.testing.assert_array_equal(data.test_y, expected_test_y)
    parts = partition(data.train_y, 4, Natural(), seed=0, natural=data.natural_parts, num_classes=data.num_classes)
    assert [part.tolist() for part in parts] == [part.tolist() for part in data.natural_parts]


def test_shakespeare_fixture():
    data = load_leaf(FIXTURES / "shakespeare")
    train = read_json(only_file(FIXTURES / "shakespeare" / "train"))
    n_train = sum(train["num_samples"])
    assert data.input_shape == (80,) and data.num_classes == 80 and data.pixels is None
    assert data.train_x.shape == (n_train, 80) and data.train_x.dtype == np.int64
    assert data.train_y.shape == (n_train,) and data.train_y.dtype == np.int64
    assert data.test_x.shape[1] == 80 and data.test_x.dtype == np.int64 and data.test_y.dtype == np.int64
    assert train["users"][0] == KENT and len(data.natural_parts) == 3
    np.testing.assert_array_equal(np.concatenate(data.natural_parts), np.arange(n_train))
    # Indices decode back to the text, and y is the character after the window.
    letters = np.array(list(ALL_LETTERS))
    first_x, first_y = train["user_data"][KENT]["x"][0], train["user_data"][KENT]["y"][0]
    assert "".join(letters[data.train_x[0]]) == first_x and first_x.startswith("Royal Lear")
    assert letters[data.train_y[0]] == first_y
    assert data.train_x[0, first_x.index("a")] == ALL_LETTERS.index("a")
    assert (data.train_x == 0).any()  # Hamlet's passage keeps its line breaks: "\n" is index 0
    assert 0 <= data.train_x.min() and data.train_x.max() < 80


def test_windows_slide_by_one_character():
    train = read_json(only_file(FIXTURES / "shakespeare" / "train"))
    for user in train["users"]:
        xs, ys = train["user_data"][user]["x"], train["user_data"][user]["y"]
        assert 20 <= len(xs) <= 40
        for (x, y), next_x in zip(zip(xs, ys), xs[1:]):
            assert next_x == x[1:] + y


def test_vector_files_in_name_order(tmp_path):
    make_folder(tmp_path, None, leaf_content(vector_users("t", [2], seed=9)))
    write_file(tmp_path / "train" / "b.json", leaf_content(vector_users("b", [3, 2], seed=1)))
    write_file(tmp_path / "train" / "a.json", leaf_content(vector_users("a", [4], seed=2)))
    write_file(tmp_path / "train" / "notes.txt", "not json")
    write_file(tmp_path / "train" / "._a.json", "\x00\x05 macOS metadata, not json")
    data = load_leaf(str(tmp_path))
    assert data.input_shape == (5,) and data.train_x.shape == (9, 5) and data.train_x.dtype == np.float32
    assert data.test_x.shape == (2, 5)
    assert [part.tolist() for part in data.natural_parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8]]
    first = vector_users("a", [4], seed=2)["a0"]
    np.testing.assert_allclose(data.train_x[:4], first[0], rtol=1e-6)
    assert data.num_classes == max(data.train_y.max(), data.test_y.max()) + 1


def test_num_classes_counts_test_labels(tmp_path):
    make_folder(tmp_path, leaf_content({"u": ([[0.5, 1.0]], [2])}), leaf_content({"u": ([[0.0, 0.0]], [7])}))
    assert load_leaf(tmp_path).num_classes == 8


# --- refusals -------------------------------------------------------------------------------------

GOOD_VECTOR = ([[0.1, 0.2], [0.3, 0.4]], [0, 1])
TEXT = "a" * 80


def test_path_not_a_folder(tmp_path):
    path = write_file(tmp_path / "data.json", "{}")
    refused(path, str(path), "not a folder", "preprocess.sh")
    refused(tmp_path / "missing", "missing", "not a folder")


@pytest.mark.parametrize("split", ["train", "test"])
def test_missing_split_folder(tmp_path, split):
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR}))
    for path in (tmp_path / split).iterdir():
        path.unlink()
    (tmp_path / split).rmdir()
    refused(tmp_path, str(tmp_path), f"no {split}/ folder", "./preprocess.sh -s niid",
            "point data.path at the folder holding train/ and test/")


def test_split_without_json_files(tmp_path):
    make_folder(tmp_path, None)
    write_file(tmp_path / "train" / "data.txt", "{}")
    refused(tmp_path, str(tmp_path / "train"), "no .json files", "preprocess.sh")


@pytest.mark.parametrize("text", ['{"users": [', "", "\xff\xfe garbage", "[" * 100_000 + "]" * 100_000])
def test_invalid_json(tmp_path, text):
    path = make_folder(tmp_path, None) / "train" / "data.json"
    path.write_bytes(text.encode("latin-1"))
    refused(tmp_path, str(path), "cannot be read as JSON")


@pytest.mark.parametrize("content, key", [
    ([1, 2], "'users'"), ({"user_data": {}}, "'users'"), ({"users": "u", "user_data": {}}, "'users'"),
    ({"users": ["u"]}, "'user_data'"), ({"users": ["u"], "user_data": []}, "'user_data'"),
])
def test_not_a_leaf_file(tmp_path, content, key):
    make_folder(tmp_path, content)
    refused(tmp_path, str(tmp_path / "train" / "data.json"), "not a LEAF file", key)


def test_user_missing_from_user_data(tmp_path):
    content = leaf_content({"u": GOOD_VECTOR})
    content["users"].append("ghost")
    content["num_samples"].append(2)
    make_folder(tmp_path, content)
    refused(tmp_path, str(tmp_path / "train" / "data.json"), "'ghost'", "missing from 'user_data'")


@pytest.mark.parametrize("user_data, key", [
    ({"y": [0]}, "'x'"), ({"x": [[0.0]]}, "'y'"), ({"x": {"0": [0.0]}, "y": [0]}, "'x'"),
    ({"x": [[0.0]], "y": None}, "'y'"), ("just a string", "'x'"), (None, "'x'"),
])
def test_missing_or_odd_x_y(tmp_path, user_data, key):
    make_folder(tmp_path, {"users": ["w1"], "user_data": {"w1": user_data}})
    refused(tmp_path, str(tmp_path / "train" / "data.json"), "user 'w1'", key)


def test_x_and_y_of_different_lengths(tmp_path):
    make_folder(tmp_path, {"users": ["w1"], "user_data": {"w1": {"x": [[0.0], [1.0]], "y": [0]}}})
    refused(tmp_path, "data.json", "user 'w1'", "'x' has 2 examples but 'y' has 1")


@pytest.mark.parametrize("num_samples", [[3], [1], ["2"], [2, 2], 2])
def test_num_samples_must_agree(tmp_path, num_samples):
    content = leaf_content({"u": GOOD_VECTOR})
    content["num_samples"] = num_samples
    make_folder(tmp_path, content)
    refused(tmp_path, str(tmp_path / "train" / "data.json"), "'num_samples'")


def test_num_samples_may_be_absent(tmp_path):
    content = leaf_content({"u": GOOD_VECTOR})
    del content["num_samples"]
    make_folder(tmp_path, content)
    assert load_leaf(tmp_path).train_x.shape == (2, 2)


@pytest.mark.parametrize("x", [
    [[0.1, 0.2], [0.3]],                    # vector of another length
    [[0.1, 0.2], "ab"],                     # vector then text
    [[0.1, 0.2], [[0.3], [0.4]]],           # nested list
    [[0.1, 0.2], {"a": 1, "b": 2}],         # a dict
    [[0.1] * 784, [0.1] * 60],              # image then vector
])
def test_mixed_kinds_or_lengths(tmp_path, x):
    make_folder(tmp_path, leaf_content({"w1": (x, [0] * len(x))}))
    refused(tmp_path, "data.json", "user 'w1'", "key 'x'", "mixed kinds or lengths")


def test_kinds_must_agree_across_users_and_splits(tmp_path):
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR}), leaf_content({"v": ([TEXT], ["b"])}))
    refused(tmp_path, str(tmp_path / "test" / "data.json"), "user 'v'", "key 'x'")


@pytest.mark.parametrize("rows", [[[0.5, 0.5], [0.1, "0.2"]], [[0.5, 0.5], [0.1, None]],
                                  [[True, False], [False, True]], [[0.5, 0.5], [0.1, 1e39]]])
def test_non_numeric_features(tmp_path, rows):
    make_folder(tmp_path, leaf_content({"w1": (rows, [0, 1])}))
    refused(tmp_path, "data.json", "user 'w1'", "key 'x'", "non-numeric features")


def test_nan_features_refused(tmp_path):
    make_folder(tmp_path, '{"users": ["w1"], "user_data": {"w1": {"x": [[0.5, NaN]], "y": [0]}}}')
    refused(tmp_path, "data.json", "user 'w1'", "non-numeric features")


@pytest.mark.parametrize("label", [-1, 1.5, 2.0, "3", None, True, [1], 10**30])
def test_labels_must_be_integers_at_least_zero(tmp_path, label):
    make_folder(tmp_path, leaf_content({"w1": ([[0.5, 0.5], [0.1, 0.1]], [0, label])}))
    refused(tmp_path, "data.json", "user 'w1'", "key 'y'", "not an integer")


@pytest.mark.parametrize("first", [None, {}, [], "", 3])
def test_first_example_of_unknown_kind(tmp_path, first):
    make_folder(tmp_path, leaf_content({"w1": ([first], [0])}))
    refused(tmp_path, "data.json", "user 'w1'", "key 'x'", "the first example")


def test_train_file_without_users(tmp_path):
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR}))
    path = write_file(tmp_path / "train" / "empty.json", leaf_content({}))
    refused(tmp_path, str(path), "a train file with no users")


def test_train_user_without_examples(tmp_path):
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR, "idle": ([], [])}))
    refused(tmp_path, "data.json", "user 'idle'", "key 'x' is empty")


def test_duplicate_user_across_files(tmp_path):
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR}))
    write_file(tmp_path / "train" / "more.json", leaf_content({"u": GOOD_VECTOR}))
    refused(tmp_path, "more.json", "user 'u'", "appears twice")


def test_empty_test_set_refused(tmp_path):
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR}), leaf_content({}))
    refused(tmp_path, str(tmp_path / "test"), "no examples")


def test_text_sequence_of_another_length(tmp_path):
    make_folder(tmp_path, leaf_content({"s": ([TEXT, TEXT[:79]], ["b", "c"])}))
    refused(tmp_path, "data.json", "user 's'", "key 'x'", "string of 80 characters")


@pytest.mark.parametrize("y", [["bc"], [""], [1], [None]])
def test_text_target_must_be_one_character(tmp_path, y):
    make_folder(tmp_path, leaf_content({"s": ([TEXT], y)}), leaf_content({"s": ([TEXT], ["b"])}))
    refused(tmp_path, "data.json", "user 's'", "key 'y'", "1-character string")


@pytest.mark.parametrize("bad", ["@", "é", "\t", "\x00"])
def test_character_outside_the_vocabulary(tmp_path, bad):
    test = leaf_content({"s": ([TEXT[:40] + bad + TEXT[41:]], ["b"])})
    make_folder(tmp_path, leaf_content({"s": ([TEXT], ["b"])}), test)
    refused(tmp_path, str(tmp_path / "test" / "data.json"), "user 's'", repr(bad), "vocabulary")


def test_oversized_file_refused_before_reading(tmp_path, monkeypatch):
    assert MAX_JSON_BYTES == 2**31
    make_folder(tmp_path, leaf_content({"u": GOOD_VECTOR}))
    monkeypatch.setattr(leaf, "MAX_JSON_BYTES", 10)
    monkeypatch.setattr(leaf.json, "loads", lambda *_: pytest.fail("an oversized file was read"))
    refused(tmp_path, str(tmp_path / "train" / "data.json"), "GiB a LEAF file may have; not read")


def test_hostile_user_names_stay_one_short_line(tmp_path):
    content = {"users": [[[["x" * 10_000]]]], "user_data": {}}
    make_folder(tmp_path, content)
    assert len(refused(tmp_path, "data.json", "missing from 'user_data'")) < 600


def test_natural_partition_uses_the_users(tmp_path):
    make_folder(tmp_path, leaf_content(vector_users("c", [3, 1, 2])))
    data = load_leaf(tmp_path)
    parts = partition(data.train_y, 3, Natural(), seed=0, natural=data.natural_parts, num_classes=data.num_classes)
    assert [sorted(part.tolist()) for part in parts] == [[0, 1, 2], [3], [4, 5]]
