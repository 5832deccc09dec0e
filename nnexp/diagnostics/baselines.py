"""Classical answers to the same question on the same split, to show beside the network's.

`baselines_for(data)` returns flat records such as `{"name": "majority class", "train_accuracy": 0.1, ...}`
whose keys are the run's own metric columns, so a baseline can stand in the run's results table.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from nnexp.data import DataBundle, TensorSplit
from nnexp.data.tasks import task_of
from nnexp.forked import InChild, in_child
from nnexp.train.losses import resolve_loss_name

log = logging.getLogger("nnexp")

# lbfgs fits digits' 1,437 x 64 = 92,000 training values in about 0.1 s on one thread; its cost grows with
# rows x features, so three times that stays well under a second, while MNIST's 55,000 x 784 (43 million,
# 470 times digits) would take on the order of a minute.
LOGISTIC_REGRESSION_MAX_VALUES = 300_000
LOGISTIC_DEFAULTS = {"penalty": "l2", "C": 1.0, "max_iter": 300}  # configs/config.yaml's baselines.logistic


class NotComputed(Exception):
    """Why a baseline was left out of this run (too much data, say)."""


def baselines_for(
    data: DataBundle,
    loss_name: str = "cross_entropy",
    settings: Mapping[str, Any] | None = None,
    begun: Mapping[Callable[..., dict[str, Any]], Remembered] | None = None,
) -> list[dict[str, Any]]:
    """Every baseline of the data's task, scored on each split; one that cannot be computed is left out.

    `settings` is the config's `baselines` section: `{"logistic": {"penalty": None, "C": 1.0}}`.
    A classifier's baseline losses are cross-entropies: with another loss (mse_onehot) they would stand
    beside a loss of a different kind, so only their accuracies are kept. `begun` holds the baselines
    `Baselines` began early in a child; the others are computed now.
    """
    records = []
    for baseline in BASELINES_OF_TASK.get(data.spec.task, ()):
        try:
            if begun and baseline in begun:
                records.append(begun[baseline].result())
            else:
                records.append(baseline(data, **_options(baseline, settings)))
        except Exception as error:  # a baseline is context for the result: it must never fail the run
            log.debug("baseline %s left out: %s", baseline.__name__, error)
    if task_of(data.spec.task).predicts_classes and loss_name != "cross_entropy":
        records = [
            {key: value for key, value in record.items() if not key.endswith("_loss")} for record in records
        ]
    return records


@dataclass(frozen=True)
class Fit:
    """A baseline's fit as a function of arrays already made (`run`), and what those arrays and its settings
    hash to (`key`): the same fit on the same numbers gives the same answer, so a process fits it once."""

    key: str
    run: Callable[[], dict[str, Any]]


_FITTED: OrderedDict[str, dict[str, Any]] = OrderedDict()  # Fit.key -> its answer, the last few
_FITS_KEPT = 8


@dataclass
class Remembered:
    """A fit's answer: remembered from before, else the child's (`begun`), else worked out here."""

    fit: Fit
    begun: InChild[dict[str, Any]] | None = None

    def result(self) -> dict[str, Any]:
        if self.fit.key not in _FITTED:
            answer = self.begun.result() if self.begun is not None else self.fit.run()
            _FITTED[self.fit.key] = answer
            while len(_FITTED) > _FITS_KEPT:
                _FITTED.popitem(last=False)
        return dict(_FITTED[self.fit.key])

    def cancel(self) -> None:
        if self.begun is not None:
            self.begun.cancel()


class Baselines:
    """`baselines_for`'s answer, its slow fits (scikit-learn's import and fit) begun now in a forked child
    (nnexp/forked.py) while the run builds its model: on the default run one core is idle then."""

    def __init__(
        self, data: DataBundle, loss_name: str = "cross_entropy", settings: Mapping[str, Any] | None = None
    ) -> None:
        self._data, self._loss_name, self._settings = data, loss_name, settings
        self._begun: dict[Callable[..., dict[str, Any]], Remembered] = {}
        for baseline in BASELINES_OF_TASK.get(data.spec.task, ()):
            prepare = IN_CHILD.get(baseline)
            if prepare is None:
                continue
            try:  # the arrays are made here (torch), the child only fits (numpy, scikit-learn)
                fit = prepare(data, **_options(baseline, settings))
            except Exception:  # too large, or a bad setting: baselines_for says why, later
                continue
            # Fitted already in this process (a sweep's jobs on the same split): no child at all.
            self._begun[baseline] = Remembered(fit, None if fit.key in _FITTED else in_child(fit.run))

    @classmethod
    def of_run(cls, data: DataBundle, cfg: Any) -> Baselines:
        """The baselines of a run of `cfg` on `data`: in its loss, with its `baselines` settings."""
        return cls(data, resolve_loss_name(cfg.loss.name, data.spec), cfg.get("baselines"))

    def result(self) -> list[dict[str, Any]]:
        """Every baseline, as `baselines_for` gives them (waits for the child's fits)."""
        return baselines_for(self._data, self._loss_name, self._settings, self._begun)

    def cancel(self) -> None:
        """The run ends without them: stop the children."""
        for begun in self._begun.values():
            begun.cancel()


def _options(baseline: Callable[..., Any], settings: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((settings or {}).get(SETTINGS_KEY.get(baseline.__name__, ""), None) or {})


def chance(data: DataBundle) -> dict[str, Any]:
    """Guessing uniformly among C classes: accuracy 1/C, cross-entropy ln C, on every split."""
    num_classes = data.spec.num_outputs
    return _on_every_split(data, "chance", {"loss": math.log(num_classes), "accuracy": 1 / num_classes})


def majority_class(data: DataBundle) -> dict[str, Any]:
    """Always answering the most frequent class of the training split."""
    majority = torch.bincount(data.train.targets.cpu()).argmax()
    result: dict[str, Any] = {"name": "majority class"}
    for name, split in data.splits().items():
        result[f"{name}_accuracy"] = (split.targets.cpu() == majority).double().mean().item()
    return result


def logistic_regression(
    data: DataBundle,
    penalty: str | None = "l2",
    C: float = 1.0,
    max_iter: int = 300,  # noqa: N803 (sklearn's C)
) -> dict[str, Any]:
    """scikit-learn's LogisticRegression on the flattened inputs as the model sees them.

    `penalty=None` fits without regularisation, as the lecture's digits notebook does; `C` is the
    inverse strength of the L2 penalty (scikit-learn's default 1.0)."""
    return Remembered(logistic_regression_fit(data, penalty, C, max_iter)).result()


def logistic_regression_fit(
    data: DataBundle,
    penalty: str | None = "l2",
    C: float = 1.0,
    max_iter: int = 300,  # noqa: N803 (sklearn's C)
) -> Fit:
    """`logistic_regression` as a function of NumPy arrays made now: what the fit needs of torch is done
    here, so the fit can run in a forked child that never touches torch's thread pool."""
    rows, features = len(data.train), math.prod(data.train.inputs.shape[1:])
    if rows * features > LOGISTIC_REGRESSION_MAX_VALUES:
        raise NotComputed(
            f"{rows:,} x {features:,} training values is more than {LOGISTIC_REGRESSION_MAX_VALUES:,}"
        )
    arrays = {
        name: (_features(split).numpy(), split.targets.cpu().numpy()) for name, split in data.splits().items()
    }
    classes = list(range(data.spec.num_outputs))
    # Named with its settings when they are not scikit-learn's defaults, so the table says what was fitted.
    chosen = {"penalty": penalty, "C": C, "max_iter": max_iter}
    changed = [f"{key}={value}" for key, value in chosen.items() if value != LOGISTIC_DEFAULTS[key]]
    name = "logistic regression" + (f" ({', '.join(changed)})" if changed else "")

    def fit() -> dict[str, Any]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss
        from threadpoolctl import threadpool_limits

        # One BLAS thread: on two cores shared with torch, two threads made this fit ten times slower.
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # after max_iter still a fair baseline
            # No penalty is C = infinity: scikit-learn 1.8 deprecates its `penalty` argument for just that.
            strength = math.inf if penalty is None else C
            model = LogisticRegression(C=strength, max_iter=max_iter).fit(*arrays["train"])
        result: dict[str, Any] = {"name": name}
        for split, (inputs, targets) in arrays.items():
            result[f"{split}_loss"] = log_loss(targets, model.predict_proba(inputs), labels=classes)
            result[f"{split}_accuracy"] = model.score(inputs, targets)
        return result

    digest = hashlib.sha256(repr((name, penalty, C, max_iter, classes)).encode())
    for split, (inputs, targets) in arrays.items():
        for array in (inputs, targets):
            digest.update(repr((split, array.dtype.str, array.shape)).encode())
            digest.update(array.tobytes())
    return Fit(digest.hexdigest(), fit)


def least_squares(data: DataBundle) -> dict[str, Any]:
    """The closed-form linear fit (with intercept) on the training rows, scored on every split."""

    weights = least_squares_weights(data)
    result: dict[str, Any] = {"name": "least squares (closed form)"}
    for name, split in data.splits().items():
        error = _design(_features(split)) @ weights - split.targets.double().cpu()
        result[f"{name}_mse"] = error.square().mean().item()
    result["weights"] = [round(w, 6) for w in weights.flatten().tolist()]  # bias first
    return result


def least_squares_weights(data: DataBundle) -> torch.Tensor:
    """(1 + features, targets) float64: the least-squares fit on the training rows, bias first."""
    return torch.linalg.lstsq(_design(_features(data.train)), data.train.targets.double().cpu()).solution


def least_squares_predict(weights: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The fit's predictions for inputs (N, ...) as the model sees them, float64 on the CPU."""
    return _design(inputs.reshape(len(inputs), -1).double().cpu()) @ weights


def _design(flat: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.ones(len(flat), 1, dtype=flat.dtype), flat], dim=1)


def mean_predictor(data: DataBundle) -> dict[str, Any]:
    """Always answering the mean target of the training split."""
    mean = data.train.targets.double().cpu().mean(dim=0)
    result: dict[str, Any] = {"name": "mean predictor"}
    for name, split in data.splits().items():
        result[f"{name}_mse"] = (split.targets.double().cpu() - mean).square().mean().item()
    return result


def uniform(data: DataBundle) -> dict[str, Any]:
    """Every token of the vocabulary equally likely: perplexity is the vocabulary size."""
    vocab_size = data.spec.num_outputs
    return _on_every_split(data, "uniform", {"loss": math.log(vocab_size), "perplexity": float(vocab_size)})


def unigram(data: DataBundle) -> dict[str, Any]:
    """Token frequencies of the training stream, add-one smoothed, scored on every token of each split."""
    counts = torch.bincount(data.train.tokens.cpu(), minlength=data.spec.num_outputs).double() + 1
    log_probabilities = (counts / counts.sum()).log()
    result: dict[str, Any] = {"name": "unigram"}
    for name, split in data.splits().items():
        loss = -log_probabilities[split.tokens.cpu()].mean().item()
        result[f"{name}_loss"], result[f"{name}_perplexity"] = loss, math.exp(loss)
    return result


# The config's `baselines.<key>` section holds each configurable baseline's settings.
SETTINGS_KEY = {"logistic_regression": "logistic"}
# The baselines whose work `Baselines` begins in a child: baseline -> what prepares its work here.
IN_CHILD: dict[Callable[..., dict[str, Any]], Callable[..., Fit]] = {
    logistic_regression: logistic_regression_fit
}

BASELINES_OF_TASK: dict[str, tuple[Callable[[DataBundle], dict[str, Any]], ...]] = {
    "classification": (chance, majority_class, logistic_regression),
    "regression": (least_squares, mean_predictor),
    "language_model": (uniform, unigram),
}


def _on_every_split(data: DataBundle, name: str, metrics: dict[str, float]) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name}
    for split in data.splits():
        result.update({f"{split}_{metric}": value for metric, value in metrics.items()})
    return result


def _features(split: TensorSplit) -> torch.Tensor:
    """The split's inputs as the model sees them (after its transform), one float64 row per example."""
    inputs = split.inputs if split.transform is None else split.transform(split.inputs)
    return inputs.reshape(len(inputs), -1).double().cpu()
