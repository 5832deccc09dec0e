"""Baselines: what a trivial or classical model gets on the run's own splits, in the run's own metrics."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from hydra.utils import instantiate

import nnexp
from conftest import compose_config, read_summary
from nnexp.data import DataBundle, DataSpec, TensorSplit
from nnexp.data.digits import load_digits
from nnexp.data.text import TokenSplit
from nnexp.diagnostics.baselines import Baselines, baselines_for
from nnexp.look.report import main as report_main


def classes(train: list[int], val: list[int], test: list[int], num_classes: int) -> DataBundle:
    """A classification bundle whose inputs are the labels themselves (any model could learn them)."""

    def split(labels: list[int]) -> TensorSplit:
        targets = torch.tensor(labels)
        return TensorSplit(targets.float().unsqueeze(1), targets)

    spec = DataSpec("toy", "classification", (1,), num_classes)
    return DataBundle(spec, split(train), split(val), split(test))


def regression(train: list[list[float]], val: list[list[float]], test: list[list[float]], transform=None):
    """Rows of (x, y): one feature, one target."""

    def split(rows: list[list[float]]) -> TensorSplit:
        table = torch.tensor(rows)
        return TensorSplit(table[:, :1], table[:, 1:], transform)

    return DataBundle(DataSpec("toy", "regression", (1,), 1), split(train), split(val), split(test))


def token_stream(train: list[int], val: list[int], vocab_size: int) -> DataBundle:
    def split(tokens: list[int]) -> TokenSplit:
        return TokenSplit(torch.tensor(tokens), num_steps=2, partition="sequential")

    return DataBundle(DataSpec("toy", "language_model", (2,), vocab_size), split(train), split(val), None)


def by_name(data: DataBundle) -> dict[str, dict]:
    return {baseline["name"]: baseline for baseline in baselines_for(data)}


def test_classification_has_chance_majority_class_and_logistic_regression_in_the_runs_metrics():
    baselines = by_name(classes([0, 1, 1, 2], [1, 2], [0, 1], num_classes=3))
    assert list(baselines) == ["chance", "majority class", "logistic regression"]
    columns = {f"{split}_{metric}" for split in ("train", "val", "test") for metric in ("loss", "accuracy")}
    assert set(baselines["logistic regression"]) == {"name", *columns}


def test_chance_is_accuracy_one_in_c_and_cross_entropy_ln_c_on_every_split():
    chance = by_name(classes([0, 1, 1, 2], [1, 2], [0, 1], num_classes=4))["chance"]
    for split in ("train", "val", "test"):
        assert chance[f"{split}_accuracy"] == 0.25
        assert chance[f"{split}_loss"] == pytest.approx(math.log(4))


def test_majority_class_answers_the_most_frequent_training_class_everywhere():
    majority = by_name(classes([0, 1, 1, 1, 2], [1, 0], [2, 2, 1, 0], num_classes=3))["majority class"]
    assert majority == {
        "name": "majority class",
        "train_accuracy": pytest.approx(3 / 5),
        "val_accuracy": pytest.approx(1 / 2),
        "test_accuracy": pytest.approx(1 / 4),
    }


def test_logistic_regression_on_the_digits_is_about_the_lectures_958():
    digits = instantiate(compose_config().data)  # the default data, split as every run splits it
    logistic = by_name(digits)["logistic regression"]
    # The lecture's scikit-learn fit reached 0.958 on its preprocessing; pixels / 16 give 0.972 here.
    assert 0.94 <= logistic["test_accuracy"] <= 0.99
    assert logistic["train_accuracy"] > logistic["test_accuracy"]
    assert logistic["test_loss"] < math.log(10) / 5


def test_logistic_regression_is_left_out_of_mnist_sized_data_so_a_run_never_waits_for_it():
    images = torch.zeros(1, 1, 28, 28, dtype=torch.uint8).expand(55_000, 1, 28, 28)
    labels = torch.arange(55_000) % 10
    split = TensorSplit(images, labels, transform=lambda batch: batch.float() / 255)
    mnist_sized = DataBundle(DataSpec("mnist", "classification", (1, 28, 28), 10), split, None, split)
    assert list(by_name(mnist_sized)) == ["chance", "majority class"]


def test_a_baseline_that_cannot_be_computed_is_left_out_and_the_reason_logged(caplog):
    one_class = classes([1, 1, 1], [1, 0], [0, 1], num_classes=2)  # nothing for a classifier to separate
    with caplog.at_level(logging.DEBUG, logger="nnexp"):
        assert list(by_name(one_class)) == ["chance", "majority class"]
    assert "baseline logistic_regression left out" in caplog.text


def test_regression_has_least_squares_and_the_mean_predictor():
    line = [[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]]  # y = 2x + 1
    baselines = by_name(regression(line, [[3.0, 7.0]], [[-1.0, -1.0]]))
    least_squares = baselines["least squares (closed form)"]
    assert least_squares["weights"] == pytest.approx([1.0, 2.0])  # bias first
    assert least_squares["test_mse"] == pytest.approx(0.0, abs=1e-12)
    assert set(baselines["mean predictor"]) == {"name", "train_mse", "val_mse", "test_mse"}


def test_the_mean_predictor_answers_the_training_mean_everywhere():
    mean = by_name(regression([[0, 1], [0, 2], [0, 3]], [[0, 4]], [[0, 0], [0, 2]]))["mean predictor"]
    assert mean["train_mse"] == pytest.approx((1 + 0 + 1) / 3)  # around the mean, 2
    assert mean["val_mse"] == pytest.approx(4.0)
    assert mean["test_mse"] == pytest.approx((4 + 0) / 2)


def test_least_squares_fits_the_inputs_as_the_model_sees_them():
    squares = [[x, 3 * x * x + 1] for x in (0.0, 1.0, 2.0, 3.0)]  # linear in the transformed input x^2
    bundle = regression(squares, [[4.0, 49.0]], [[-2.0, 13.0]], transform=lambda inputs: inputs.square())
    least_squares = by_name(bundle)["least squares (closed form)"]
    assert least_squares["weights"] == pytest.approx([1.0, 3.0])
    assert least_squares["val_mse"] == pytest.approx(0.0, abs=1e-9)


def test_uniform_perplexity_is_the_vocabulary_size():
    uniform = by_name(token_stream([0, 1, 2, 3, 4], [1, 1], vocab_size=5))["uniform"]
    assert uniform["train_perplexity"] == uniform["val_perplexity"] == 5
    assert uniform["val_loss"] == pytest.approx(math.log(5))


def test_unigram_counts_the_training_tokens_add_one_smoothed():
    unigram = by_name(token_stream([0, 0, 1, 0], [1, 2], vocab_size=3))["unigram"]
    # Counts 3, 1, 0 plus one each: p = 4/7, 2/7, 1/7; the validation tokens 1, 2 have p = 2/7 and 1/7.
    assert unigram["val_perplexity"] == pytest.approx(math.sqrt(7 / 2 * 7 / 1))
    assert unigram["val_loss"] == pytest.approx(math.log(unigram["val_perplexity"]))
    assert unigram["train_perplexity"] == pytest.approx((7 / 4 * 7 / 4 * 7 / 2 * 7 / 4) ** (1 / 4))


def test_a_run_shows_its_baselines_in_the_console_the_summary_and_the_report(tmp_path, piped_console):
    folder = nnexp.run(["trainer.epochs=1"], output_dir=tmp_path / "run").run_dir
    printed = piped_console()
    baselines = {baseline["name"]: baseline for baseline in read_summary(folder)["baselines"]}
    assert list(baselines) == ["chance", "majority class", "logistic regression"]
    assert baselines["chance"]["test_accuracy"] == 0.1
    for row in ("accuracy of chance", "accuracy of majority class", "accuracy of logistic regression"):
        assert row in printed

    assert report_main([str(folder)]) == 0
    shown = piped_console()
    assert "logistic regression" in shown and "baseline_test_accuracy" in shown


def test_a_classifier_trained_with_another_loss_gets_only_baseline_accuracies():
    data = load_digits(test_fraction=0.2, split_seed=1234, val_fraction=0.1)
    for record in baselines_for(data, loss_name="mse_onehot"):
        assert not any(key.endswith("_loss") for key in record), record["name"]
        assert "test_accuracy" in record


def test_baselines_begun_in_a_child_are_the_baselines_computed_here():
    """The run begins the logistic regression's fit in a child as its data loads (nnexp/forked.py)."""
    data = load_digits(test_fraction=0.2, split_seed=0, val_fraction=0.1)
    begun = Baselines(data, "cross_entropy", {"logistic": {"C": 0.5}})
    assert begun.result() == baselines_for(data, "cross_entropy", {"logistic": {"C": 0.5}})


def test_a_fit_made_once_in_a_process_is_not_made_again_for_the_same_numbers(monkeypatch):
    """A sweep over seeds trains on one split: its logistic regression is fitted by the first job only."""
    from nnexp import forked
    from nnexp.diagnostics import baselines

    children = []

    def counted(work):
        children.append(work)
        return forked.in_child(work)

    monkeypatch.setattr(baselines, "_FITTED", baselines.OrderedDict())  # nothing fitted by other tests
    monkeypatch.setattr(baselines, "in_child", counted)
    data = load_digits(test_fraction=0.2, split_seed=0, val_fraction=0.1)
    first = Baselines(data).result()
    again = Baselines(load_digits(test_fraction=0.2, split_seed=0, val_fraction=0.1)).result()
    assert again == first and len(children) == 1
    other_split = Baselines(load_digits(test_fraction=0.2, split_seed=1, val_fraction=0.1)).result()
    other_setting = Baselines(data, settings={"logistic": {"C": 0.5}}).result()
    assert len(children) == 3 and other_split != first and other_setting != first
