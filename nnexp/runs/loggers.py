"""Where metrics go besides metrics.csv (always written): TensorBoard, MLflow and Weights & Biases, chosen
with `logger=`.

`logger=[csv,tensorboard,mlflow,wandb]` picks several. Each logger receives every metrics row as it is
written to metrics.csv (`log_metrics(row, step)`; every Nth epoch's with trainer.log_every_n_epochs)
and the run's summary at the end (`finish(summary)`), so a chart and metrics.csv show the same numbers.
The packages are optional extras, imported only when chosen.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError, first_line

log = logging.getLogger("nnexp")

NOT_METRICS = ("epoch",)


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """The finite numeric columns of a row (a NaN marks an epoch without evaluation)."""
    return {
        key: float(value)
        for key, value in row.items()
        if key not in NOT_METRICS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def _require(module: str, extra: str, choice: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"logger={choice} needs the {module} package: pip install 'nnexp[{extra}]'")


class TensorBoardLogger:
    """Scalars in an event file under <run folder>/tensorboard: `tensorboard --logdir outputs`."""

    def __init__(self, run_dir: Path, options: dict[str, Any]) -> None:
        _require("tensorboard", "tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(options.get("log_dir") or run_dir / "tensorboard")
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_metrics(self, row: dict[str, Any], step: int) -> None:
        for key, value in _numbers(row).items():
            self.writer.add_scalar(key, value, step)

    def log_model(self, model: Any, step: int) -> None:
        """Histograms of every parameter and of its gradient from the epoch's last training step."""
        for name, parameter in model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", parameter.detach().float().cpu(), step)
            if parameter.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", parameter.grad.detach().float().cpu(), step)

    def log_views(self, paths: list[Path]) -> None:
        """The run's pictures (predictions.png, confusion_matrix.png, ...) as images."""
        from matplotlib.image import imread

        for path in (path for path in paths if path.suffix == ".png"):
            self.writer.add_image(f"views/{path.stem}", imread(path)[..., :3], dataformats="HWC")

    def finish(self, summary: dict[str, Any]) -> None:
        # The final evaluation (test_* included) as "final/<column>" at the last epoch.
        step = summary.get("epochs_completed") or 0
        for key, value in _numbers(summary.get("metrics", {}).get("final", {})).items():
            self.writer.add_scalar(f"final/{key}", value, step)
        self.writer.close()


class MlflowLogger:
    """A run in an MLflow store: by default a SQLite file in ./mlruns/, read by `mlflow ui`."""

    def __init__(self, run_dir: Path, options: dict[str, Any], params: dict[str, Any]) -> None:
        _require("mlflow", "mlflow", "mlflow")
        import mlflow

        store = Path(options.get("store") or "mlruns").resolve()
        remote = options.get("tracking_uri")
        if not remote:
            store.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = remote or f"sqlite:///{store / 'mlflow.db'}"
        self.client = mlflow.MlflowClient(self.tracking_uri)
        name = options.get("experiment_name") or "nnexp"
        try:
            with _asking_once():
                experiment = self.client.get_experiment_by_name(name)
        except mlflow.exceptions.MlflowException as error:
            raise ConfigError(
                f"logger.mlflow.tracking_uri={self.tracking_uri}: the MLflow server does not answer "
                f"({str(error).splitlines()[0][:160]}); start it, correct the address, or leave mlflow out "
                f"of logger"
            ) from None
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(name, artifact_location=(store / "artifacts").as_uri())
        )
        run = self.client.create_run(experiment_id, run_name=run_dir.name, tags={"run_dir": str(run_dir)})
        self.run_id = run.info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:500])
        log.info("mlflow: run %s in %s", self.run_id, self.tracking_uri)

    def log_metrics(self, row: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in _numbers(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_views(self, paths: list[Path]) -> None:
        """The run's pictures and predictions.csv as artifacts of the MLflow run."""
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def finish(self, summary: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = summary.get("epochs_completed") or 0
        final = _numbers(summary.get("metrics", {}).get("final", {}))
        self.client.log_batch(
            self.run_id, metrics=[Metric(f"final_{key}", value, now, step) for key, value in final.items()]
        )
        status = summary.get("status")
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "FAILED")


class WandbLogger:
    """A Weights & Biases run per nnexp run, its files in <run folder>/wandb: the config, every metrics row
    (step = epoch), the pictures, and the final metrics as final/<column> in the run's summary.

    `logger.wandb.mode=offline` (or WANDB_MODE=offline) needs no account and sends nothing: the run is kept
    in wandb/offline-run-*/run-*.wandb, and `wandb sync` uploads it later. A resumed nnexp run continues
    the same W&B run (its id is kept in the folder).
    """

    ID_FILE = "nnexp-run-id"  # in <dir>/wandb: the W&B run id this run folder logs to

    def __init__(self, run_dir: Path, options: dict[str, Any], config: dict[str, Any]) -> None:
        _require("wandb", "wandb", "wandb")
        import wandb  # here: importing wandb takes a second, and only logger=wandb needs it

        mode = options.get("mode")
        if mode not in (None, "online", "offline", "disabled"):
            raise ConfigError(
                f"logger.wandb.mode={mode} is not a mode: use online, offline (no account) or disabled"
            )
        folder = Path(options.get("dir") or run_dir) / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / self.ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        self.step = 0
        try:
            self.run = wandb.init(
                project=options.get("project") or os.environ.get("WANDB_PROJECT") or "nnexp",
                entity=options.get("entity"),
                group=options.get("group"),
                name=options.get("name") or run_dir.name,
                tags=list(options.get("tags") or []),
                dir=str(folder.parent),  # wandb adds the wandb/ folder itself
                mode=mode,  # None: WANDB_MODE, else online
                config=config,
                id=run_id,
                resume="allow",
                reinit="finish_previous",  # a sweep's jobs run one after another in one process
                # nnexp keeps its own log: no console capture, and only wandb's essential lines
                settings=wandb.Settings(console="off", save_code=False, quiet=True),
            )
        except wandb.errors.Error as error:
            raise ConfigError(
                f"logger=wandb could not start its run ({first_line(error)[:200]}): log in with "
                f"`wandb login`, or add logger.wandb.mode=offline (no account needed; `wandb sync` uploads "
                f"it later)"
            ) from None
        id_file.write_text(run_id + "\n")  # a resume of this run folder logs to the same W&B run
        log.info("wandb: %s run %s in %s", self.run.settings.mode, run_id, folder)

    def log_metrics(self, row: dict[str, Any], step: int) -> None:
        self.step = step
        self.run.log(_numbers(row), step=step)

    def log_views(self, paths: list[Path]) -> None:
        """The run's pictures, beside the last epoch's metrics."""
        import wandb

        images = {f"views/{path.stem}": wandb.Image(str(path)) for path in paths if path.suffix == ".png"}
        if images:
            self.run.log(images, step=self.step)

    def finish(self, summary: dict[str, Any]) -> None:
        final = _numbers(summary.get("metrics", {}).get("final", {}))
        self.run.summary.update({f"final/{key}": value for key, value in final.items()})
        self.run.summary.update({"status": summary.get("status"), "epochs": summary.get("epochs_completed")})
        self.run.finish(exit_code=0 if summary.get("status") == "completed" else 1)


@contextlib.contextmanager
def _asking_once() -> Iterator[None]:
    """MLflow retries an unreachable server for minutes (seven tries, doubling waits): before the run,
    one try of 10 s says at once whether the server is there. Metrics rows keep MLflow's retries."""
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    before = {key: os.environ.get(key) for key in quick}
    os.environ.update({key: value for key, value in quick.items() if before[key] is None})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)


def _flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The config as `model.hidden: [128]`-style parameters."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix.rstrip(".")] = node

    container = OmegaConf.to_container(cfg, resolve=True)
    walk({key: value for key, value in container.items() if key != "logger"}, "")
    return flat


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Any]:
    """The loggers `cfg.logger` names, besides metrics.csv which RunFolder always writes."""
    chosen = cfg.get("logger") or {}
    loggers: list[Any] = []
    if "tensorboard" in chosen:
        loggers.append(TensorBoardLogger(run_dir, dict(chosen["tensorboard"] or {})))
    if "mlflow" in chosen:
        loggers.append(MlflowLogger(run_dir, dict(chosen["mlflow"] or {}), _flat_params(cfg)))
    if "wandb" in chosen:
        config = OmegaConf.to_container(cfg, resolve=True)
        config = {key: value for key, value in config.items() if key not in ("logger", "hydra")}
        loggers.append(WandbLogger(run_dir, dict(chosen["wandb"] or {}), config))
    return loggers


def finish_loggers(loggers: list[Any], summary: dict[str, Any]) -> None:
    """Close every logger; one that fails to close is reported, never allowed to fail the run."""
    for logger in loggers:
        try:
            logger.finish(summary)
        except Exception as error:  # a broken logger must not turn a finished run into a failed one
            log.warning("%s could not finish: %s", type(logger).__name__, error)


__all__ = ["MlflowLogger", "TensorBoardLogger", "WandbLogger", "build_loggers", "finish_loggers"]
