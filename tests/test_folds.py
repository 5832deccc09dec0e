"""k-fold cross-validation (issue 27): `data.folds=K data.fold=k` validates on fold k of the train+val rows,
the test split stays as it was, mistakes are one line, and nnexp-report shows the folds' mean ± std."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

import nnexp
from conftest import compose_config, nnexp_exit_code
from nnexp.data.custom import bundle_from_splits
from nnexp.data.digits import load_digits
from nnexp.data.folds import hold_out
from nnexp.data.tabular import load_csv
from nnexp.errors import DataError
from nnexp.look.report import main as report_main

TINY = [
    "trainer.epochs=1",
    "trainer.max_batches_per_epoch=3",
    "diagnostics.enabled=false",
    "outputs.views=false",
]


def numbered_csv(path: Path, rows: int) -> Path:
    """A CSV whose `id` column names each row, so a split's rows can be told apart after loading."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "x", "y"])
        for row in range(rows):
            writer.writerow([row, (row * 7) % 13, row % 5 + 0.5 * row])
    return path


def ids(split) -> set[int]:
    return {int(value) for value in split.inputs[:, 0].tolist()}


def load_numbered(path: Path, **folding) -> object:
    return load_csv(
        str(path), ["id", "x"], "y", test_size=20, split_seed=3, val_fraction=0.1, normalize_target=False,
        normalize_features=False, **folding,
    )  # fmt: skip


def test_the_folds_share_out_the_train_and_val_rows_once_and_leave_the_test_rows_alone(tmp_path):
    path = numbered_csv(tmp_path / "rows.csv", 100)
    plain = load_numbered(path)
    pool = ids(plain.train) | ids(plain.val)
    validated = []
    for fold in range(4):
        bundle = load_numbered(path, folds=4, fold=fold)
        assert ids(bundle.test) == ids(plain.test)  # the same 20 test rows whatever the fold
        assert ids(bundle.train) | ids(bundle.val) == pool and not ids(bundle.train) & ids(bundle.val)
        assert len(bundle.val) == 20 and bundle.spec.details["fold"] == fold
        validated.append(ids(bundle.val))
    assert sorted(row for rows in validated for row in rows) == sorted(pool)  # each row validates once
    again = load_numbered(path, folds=4, fold=2)
    assert ids(again.val) == validated[2]  # deterministic: the split seed decides


def test_a_classifier_s_folds_keep_the_class_proportions():
    plain = load_digits(0.2, 1234, 0.1)
    pool = Counter(plain.train.targets.tolist()) + Counter(plain.val.targets.tolist())
    seen: Counter = Counter()
    for fold in range(5):
        bundle = load_digits(0.2, 1234, 0.1, folds=5, fold=fold)
        assert bundle.test.targets.tolist() == plain.test.targets.tolist()
        assert "stratified by class" in bundle.spec.details["fold_split"]
        counts = Counter(bundle.val.targets.tolist())
        assert all(abs(counts[label] - count / 5) <= 1 for label, count in pool.items())
        seen += counts
    assert seen == pool


def test_classes_too_small_for_stratified_folds_get_plain_shuffled_ones():
    labels = np.array([0] * 10 + [1] * 2)  # class 1 cannot reach every one of 3 folds
    train, val, details = hold_out(np.arange(12), 0.1, 0, folds=3, fold=1, labels=labels)
    assert "shuffled" in details["fold_split"] and len(val) == 4 and len(train) == 8


def test_more_folds_than_rows_is_one_line_naming_the_count(tmp_path):
    path = numbered_csv(tmp_path / "rows.csv", 30)
    with pytest.raises(DataError, match=r"^data.folds=11 is more than the 10 train and validation rows"):
        load_numbered(path, folds=11, fold=0)
    with pytest.raises(DataError, match=r"^data.folds=2000 is more than the 1437 train and validation rows"):
        nnexp.run(["data.folds=2000", "data.fold=0"], output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a mistake leaves no run folder


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["data.fold=1"], "data.fold=1 needs data.folds, the number of folds: add e.g. data.folds=5"),
        (["data.folds=5"], "nnexp -m data.folds=5 data.fold=0,1,2,3,4"),
        (["data.folds=5", "data.fold=5"], "data.fold=5 is not one of the 5 folds of data.folds=5: use 0..4"),
        (
            ["data.folds=1", "data.fold=0"],
            "data.folds=1 is not allowed: use null, or a whole number of folds",
        ),
        (["data=synthetic", "data.folds=3", "data.fold=0"], "add data.fresh=false"),
        (["data=time_machine", "model=gru", "data.folds=3", "data.fold=0"], "unknown key data.folds"),
        (["-m", "data.folds=3", "data.fold=0,1,2,3"], "data.fold=3 is not one of the 3 folds"),
    ],
)
def test_a_fold_mistake_is_one_line_and_exit_code_2(monkeypatch, capsys, tmp_path, overrides, said):
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, *overrides) == 2
    error = capsys.readouterr().err
    assert said in error and len(error.strip().splitlines()) == 1, error
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_two_folds_record_their_fold_and_the_report_shows_their_mean_and_std(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    results = [
        nnexp.run([*TINY, "data.folds=2", f"data.fold={fold}"], output_dir=sweep / str(fold))
        for fold in (0, 1)
    ]
    for fold, result in enumerate(results):
        summary = json.loads((result.run_dir / "summary.json").read_text())
        assert (summary["folds"], summary["fold"]) == (2, fold)
        assert summary["data"]["sizes"]["test"] == 360  # the digits' usual test split
    accuracies = [result.metrics["val_accuracy"] for result in results]
    capsys.readouterr()

    assert report_main([str(sweep), "--csv", str(tmp_path / "runs.csv")]) == 0
    printed = capsys.readouterr().out
    assert "mean ± std over the folds (data.fold)" in printed
    mean, std = np.mean(accuracies), np.std(accuracies, ddof=1)
    assert f"{mean:.4g} ± {std:.2g}" in printed  # the folds' row, under the two runs' own rows
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))  # the CSV keeps a row per fold
    assert sorted(row["data.fold"] for row in rows) == ["0", "1"]


def built_data(*overrides: str):
    """The data `nnexp OVERRIDES` trains on, built from the real config as a run builds it."""
    return instantiate(compose_config(*overrides).data, _convert_="all")


@pytest.mark.parametrize(
    "data",
    [
        ["data=mnist", "data.synthetic=true", "data.synthetic_sizes=[200,50]", "data.val_size=40"],
        ["data=synthetic", "data.fresh=false", "data.task=classification", "data.num_outputs=3",
         "data.target_rule=linear", "data.train_size=90", "data.val_size=30"],
        ["data=synthetic", "data.fresh=false", "data.train_size=100", "data.val_size=0"],
    ],
)  # fmt: skip
def test_every_data_set_nnexp_splits_takes_the_folds_from_its_config(data):
    plain = built_data(*data)
    pool = len(plain.train) + (len(plain.val) if plain.val is not None else 0)
    for fold in (0, 3):
        bundle = built_data(*data, "data.folds=4", f"data.fold={fold}")
        assert (len(bundle.train), len(bundle.val)) == (pool * 3 // 4, pool // 4)
        assert bundle.spec.details["fold"] == fold and bundle.spec.sizes["val"] == pool // 4
        assert bundle.test.inputs.equal(plain.test.inputs)  # the test split untouched


def test_a_custom_loader_s_own_validation_rows_join_the_folds():
    inputs, labels = np.arange(100, dtype=np.float32).reshape(100, 1), np.arange(100) % 2
    splits = {"train": (inputs[:80], labels[:80]), "val": (inputs[80:], labels[80:])}
    plain = bundle_from_splits(splits, "mine.load")
    validated = set()
    for fold in range(5):
        bundle = bundle_from_splits(splits, "mine.load", folds=5, fold=fold)
        assert bundle.test.inputs.equal(plain.test.inputs)  # split off the loader's train rows, as before
        rows = ids(bundle.train) | ids(bundle.val)
        assert rows == ids(plain.train) | set(range(80, 100)) and not ids(bundle.train) & ids(bundle.val)
        assert "stratified by class" in bundle.spec.details["fold_split"]
        validated |= ids(bundle.val)
    assert validated == ids(plain.train) | set(range(80, 100))
