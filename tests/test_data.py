"""Data builders: the lecture's splits, normalisation on training rows only, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from conftest import FISH_HEADER, write_fish_csv
from nnexp.data import TensorSplit, shuffled_split
from nnexp.data.digits import digits_arrays, load_digits
from nnexp.data.tabular import load_csv
from nnexp.errors import DataError


@pytest.mark.parametrize(("rows", "test_size", "seed"), [(1797, 0.2, 1234), (159, 50, 42), (10, 0.3, 0)])
def test_shuffled_split_is_scikit_learns_split(rows, test_size, seed):
    expected_train, expected_test = train_test_split(np.arange(rows), test_size=test_size, random_state=seed)
    train, test = shuffled_split(rows, test_size, seed)
    assert train.tolist() == expected_train.tolist()
    assert test.tolist() == expected_test.tolist()


def test_digits_follow_the_lecture_split_with_validation_carved_from_train():
    data = load_digits(test_fraction=0.2, split_seed=1234, val_fraction=0.1)
    assert data.spec.task == "classification"
    assert data.spec.input_shape == (1, 8, 8)
    assert data.spec.num_outputs == 10
    assert (len(data.train), len(data.val), len(data.test)) == (1293, 144, 360)
    assert data.train.inputs.min() >= 0 and data.train.inputs.max() <= 1


def test_digits_are_scikit_learns_read_without_importing_scikit_learn():
    images, labels = digits_arrays()
    expected = sklearn_digits()
    assert np.array_equal(images, expected.images) and np.array_equal(labels, expected.target)
    code = (
        "import sys; from nnexp.data.digits import load_digits; load_digits(0.2, 1234, 0.1); "
        "print(sorted({'sklearn', 'pandas', 'scipy'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_fish_uses_the_lecture_split_and_normalises_on_training_rows(fish_csv):
    data = load_csv(
        str(fish_csv), ["Height", "Width"], "Weight", test_size=20, split_seed=42, val_fraction=0.0,
        normalize_target=True,
    )  # fmt: skip
    assert (len(data.train), len(data.test), data.val) == (60, 20, None)
    assert data.spec.task == "regression" and data.spec.input_shape == (2,)
    assert torch.allclose(data.train.inputs.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.train.inputs.std(0, correction=0), torch.ones(2), atol=1e-5)
    assert not torch.allclose(data.test.inputs.mean(0), torch.zeros(2), atol=1e-3)


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("Weight,Height\n1,2\n2,3.5\n3,5\n5,9\n4,8\n", encoding="utf-8-sig")
    data = load_csv(str(path), ["Weight"], "Height", 2, 0, 0.0, False)  # Weight is the first column
    assert len(data.train) == 3


@pytest.mark.parametrize(
    ("content", "columns", "message"),
    [
        (None, ["Height"], "no such file"),
        ("", ["Height"], "the file is empty"),
        (FISH_HEADER + "\n", ["Height"], "has a header but no rows"),
        (FISH_HEADER + "\nBream,1,2,3,4,5,6\n", ["Heigth"], "column 'Heigth' is not in"),
        (FISH_HEADER + "\nBream,1,2,3,4,abc,6\nBream,1,2,3,4,5,6\n", ["Height"], "holds 'abc' at data row 1"),
        (FISH_HEADER + "\nBream,1,2,3,4,,6\nBream,1,2,3,4,5,6\n", ["Height"], "at data row 1, not a finite"),
        (FISH_HEADER + "\nBream,1,2,3,4,5,6\nBream,1,2,3,4,nan,6\n", ["Height"], "holds 'nan' at data row 2"),
        (
            FISH_HEADER + "\nBream,1,2,3,4,5,6\nBream,1,2,3,4,,6\n",
            ["Height"],
            "holds an empty cell at data row 2",
        ),
    ],
)
def test_bad_csv_input_is_one_clear_data_error(tmp_path, content, columns, message):
    path = tmp_path / "fish.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as error:
        load_csv(str(path), columns, "Weight", 1, 0, 0.0, True)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_constant_column_cannot_be_normalised(tmp_path):
    path = write_fish_csv(tmp_path / "fish.csv")
    text = path.read_text(encoding="utf-8-sig").splitlines()
    rows = [",".join([*line.split(",")[:6], "3.0"]) for line in text[1:]]
    path.write_text("\n".join([text[0], *rows]) + "\n")
    with pytest.raises(DataError, match="'Width' is constant on the training rows"):
        load_csv(str(path), ["Height", "Width"], "Weight", 10, 0, 0.0, True)


def test_tensor_split_batches_cover_every_row_once_in_a_seeded_order():
    split = TensorSplit(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    first = [targets.tolist() for _, targets in split.batches(4, torch.Generator().manual_seed(1))]
    again = [targets.tolist() for _, targets in split.batches(4, torch.Generator().manual_seed(1))]
    assert first == again
    assert [len(batch) for batch in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10))
    assert [targets.tolist() for _, targets in split.batches(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_tensor_split_applies_its_transform_per_batch():
    split = TensorSplit(torch.full((4, 1), 255, dtype=torch.uint8), torch.zeros(4), lambda x: x.float() / 255)
    inputs, _ = next(split.batches(2))
    assert inputs.dtype == torch.float32 and torch.all(inputs == 1.0)


def test_a_column_too_large_for_32_bit_numbers_is_named(tmp_path):
    rows = "".join(f"{(i + 1) * 1e300},{i}\n" for i in range(30))
    (tmp_path / "huge.csv").write_text("x,y\n" + rows)
    options = dict(features=["x"], target="y", test_size=5, split_seed=0, val_fraction=0.0)
    normalised = load_csv(str(tmp_path / "huge.csv"), normalize_target=True, **options)
    inputs = normalised.train.inputs  # normalised in 64 bits first, without overflowing: sound
    assert torch.isfinite(inputs).all() and inputs.std().item() == pytest.approx(1, abs=0.2)
    with pytest.raises(DataError, match=r"column 'x' holds values too large .* \(up to 3e\+301\)"):
        load_csv(str(tmp_path / "huge.csv"), normalize_target=True, normalize_features=False, **options)


def test_test_rows_that_copy_training_rows_are_counted_and_warned_about(tmp_path, caplog):
    rows = [f"{i},{2 * i}" for i in range(40)]
    (tmp_path / "twice.csv").write_text("x,y\n" + "\n".join(rows + rows) + "\n")  # every row twice
    options = dict(features=["x"], target="y", test_size=20, split_seed=0, val_fraction=0.0)
    bundle = load_csv(str(tmp_path / "twice.csv"), normalize_target=True, **options)
    copies = bundle.spec.details["held_out_rows_also_in_training"]
    assert 0 < copies <= 20 and "exact copies of training rows" in caplog.text
    (tmp_path / "once.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    once = load_csv(str(tmp_path / "once.csv"), normalize_target=True, **options)
    assert "held_out_rows_also_in_training" not in once.spec.details
