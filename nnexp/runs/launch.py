"""trainer.devices > 1: start the run's ranks through torch's elastic launcher, or join them as one rank.

`run(cfg)` hands itself here (runs/run.py), so the command, `nnexp -m` jobs, `resume=` and `nnexp.run`
all get it. Two ways in:
- `nnexp trainer.devices=N`: this process starts N workers with torch.distributed.launcher's
  elastic_launch (a c10d rendezvous on a free port, so two sweep jobs never collide), waits, and hands
  rank 0's result back. It keeps the stop signals (nnexp.stop) and passes each on to the workers once,
  so they stop together at a batch boundary and rank 0 saves the checkpoint.
- `torchrun --nproc-per-node=N -m nnexp ...` (or a scheduler that sets RANK and WORLD_SIZE): every
  process is already a rank and joins.
Rank 0 writes the run folder; every other rank runs the same story in a scratch folder of its own that
is removed when it ends (a resume starts it from a copy of the run folder), so nothing of theirs lands
in the run folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rich
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from nnexp import stop
from nnexp.config.distributed_checks import check_distributed, check_same_world_size, planned_world_size
from nnexp.config.machine_checks import check_cpu_count, check_gpu_count
from nnexp.errors import UserError
from nnexp.runs.end_of_run import NOTHING_DRAWN, EndOfRun
from nnexp.runs.folder import RunFolder
from nnexp.runs.result import RunResult
from nnexp.train import distributed
from nnexp.train import threads as torch_threads

log = logging.getLogger("nnexp")

RunFn = Callable[..., RunResult]


def on_devices(cfg: DictConfig, run_dir: Path, resume: bool) -> bool:
    """Whether this run trains on several ranks (and is not one of them already), after its checks:
    trainer.devices and num_nodes, the GPUs there are, and a resumed run's own world size."""
    check_distributed(cfg, os.environ)
    size = _env_world_size() or planned_world_size(cfg)
    if size > 1 and not distributed.joined() and not _env_world_size():  # nnexp starts the ranks itself
        device = str(cfg.device.type)
        import torch

        if device.startswith("cuda") or (device != "cpu" and torch.cuda.is_available()):
            check_gpu_count(int(cfg.trainer.devices), torch.cuda.device_count())
        else:  # processes on the CPU (device=cpu, or auto without a GPU)
            check_cpu_count(int(cfg.trainer.devices), len(os.sched_getaffinity(0)))
    summary = RunFolder(run_dir).read_summary() if resume else None
    recorded = summary.get("world_size") or 1 if summary is not None else None
    # none to read, or not a count (a damaged summary): the resume itself says what is wrong with the folder
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        check_same_world_size(recorded, size, str(run_dir))
    return size > 1 and not distributed.joined()


def _env_world_size() -> int:
    """The ranks torchrun (or a scheduler) started this process among; 0 when none did."""
    return int(os.environ.get("WORLD_SIZE", 0) or 0)


def run_on_devices(
    run: RunFn,
    cfg: DictConfig,
    run_dir: Path,
    console: Console | None,
    resume: bool,
    end: EndOfRun,
    assigned: dict[str, Any] | None,
) -> RunResult:
    """Join as a rank when started as one, else start the ranks and wait for them."""
    if _env_world_size():
        return as_rank(run, cfg, run_dir, console, resume, end, assigned)
    return _launch(run, cfg, run_dir, resume, end, assigned)


def as_rank(
    run: RunFn,
    cfg: DictConfig,
    run_dir: Path,
    console: Console | None,
    resume: bool,
    end: EndOfRun,
    assigned: dict[str, Any] | None,
) -> RunResult:
    """This process's share of the run: rank 0 in the run folder, any other in a scratch folder."""
    if int(os.environ.get("RANK", 0)) == 0:
        distributed.join(str(cfg.device.type))
        try:
            return run(cfg, run_dir, console, resume, end, assigned)
        finally:
            distributed.leave()
    scratch = Path(tempfile.mkdtemp(prefix="nnexp-rank-"))
    try:
        folder = scratch / "run"
        if resume:  # a copy to resume from; the run folder itself is only read
            shutil.copytree(run_dir, folder)
        else:
            folder.mkdir()
        distributed.join(str(cfg.device.type))
        _keep_logs_out(run_dir)
        quiet = Console(file=io.StringIO())
        try:
            run(_with_csv_only(cfg), folder, quiet, resume, NOTHING_DRAWN, assigned)
        finally:
            distributed.leave()
        return RunResult(run_dir, "completed", {}, {})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _keep_logs_out(run_dir: Path) -> None:
    """Rank 0 tells the run's story once: another rank says only its errors, and never into the run's
    log file (a torchrun rank's resume set it up, cli/command.py)."""
    logging.getLogger("nnexp").setLevel(logging.ERROR)
    root, folder = logging.getLogger(), run_dir.absolute()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
            root.removeHandler(handler)
            handler.close()


def _with_csv_only(cfg: DictConfig) -> DictConfig:
    """The other ranks log nothing outside their scratch folder (no second MLflow or W&B run)."""
    cfg = cfg.copy()
    if cfg.get("logger") is not None:
        cfg.logger = {"csv": {}}
    return cfg


def _launch(
    run: RunFn,
    cfg: DictConfig,
    run_dir: Path,
    resume: bool,
    end: EndOfRun,
    assigned: dict[str, Any] | None,
) -> RunResult:
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    trainer = cfg.trainer
    nodes, per_node = int(trainer.num_nodes), int(trainer.devices)
    if nodes == 1:  # torchrun --standalone: a rendezvous on a free port of this machine
        rendezvous = {"rdzv_backend": "c10d", "rdzv_endpoint": "localhost:0", "local_addr": "localhost"}
    else:  # torchrun --rdzv-backend=static: the first machine's address, this machine's number
        rendezvous = {
            "rdzv_backend": "static",
            "rdzv_endpoint": f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
            "rdzv_configs": {"rank": int(os.environ["NODE_RANK"])},
        }
    config = LaunchConfig(
        min_nodes=nodes,
        max_nodes=nodes,
        nproc_per_node=per_node,
        run_id=os.environ.get("TORCHELASTIC_RUN_ID") or uuid.uuid4().hex,
        max_restarts=0,  # a failed rank fails the run: its checkpoint is there to resume from
        monitor_interval=0.1,
        start_method="spawn",
        # torch's own default is a new /tmp/torchelastic_* folder per run, never removed
        logs_specs=DefaultLogsSpecs(log_dir=tempfile.mkdtemp(prefix="nnexp-ranks-")),
        **rendezvous,
    )
    log.info("starting %d ranks (%d per machine, %s)", nodes * per_node, per_node, _backend(cfg))
    container = OmegaConf.to_container(cfg, resolve=True)
    drawn = None if end is NOTHING_DRAWN else end  # NOTHING_DRAWN's lambdas do not pickle
    args = (run, container, str(run_dir), resume, drawn, assigned, _piped_width())
    outcome: dict[str, Any] = {}
    before = {child.pid for child in multiprocessing.active_children()}

    asked: list[int] = []

    def pass_on(signum: int) -> None:
        """A stop signal for the run: each worker gets it once (a second one stops them at once)."""
        asked.append(signum)
        for child in multiprocessing.active_children():
            if child.pid not in before and child.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # one that has just ended
                    os.kill(child.pid, signum)

    def launch() -> None:
        try:
            outcome["returned"] = elastic_launch(config, _rank_main)(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, raised there
            outcome["raised"] = error

    # In a thread, torch's agent installs no signal handlers: nnexp.stop keeps them (STARTING's answer
    # is ours to give), and the main thread waits where a signal can reach it.
    elastic_logger = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    quiet_before = elastic_logger.level
    # Its warning "running on a child thread" is on purpose (above), and a failed rank's traceback comes
    # back in the ChildFailedError raised here: said once, by nnexp, not also in torch's log lines.
    elastic_logger.setLevel(logging.CRITICAL)
    launcher = threading.Thread(target=launch, name="nnexp-ranks", daemon=True)
    try:
        with RunFolder(run_dir).lock(), stop.enter(stop.State.STARTING, on_stop=pass_on):
            launcher.start()
            while launcher.is_alive():
                launcher.join(0.1)
    finally:
        elastic_logger.setLevel(quiet_before)
        shutil.rmtree(config.logs_specs.root_log_dir, ignore_errors=True)  # type: ignore[union-attr]
    if "raised" in outcome:
        if asked:  # a worker stopped before its run could answer the signal (still importing)
            raise stop.TrainingInterrupted(asked[0]) from outcome["raised"]
        raise outcome["raised"]
    returned = outcome["returned"]
    return _rank0_result(returned.get(0), run_dir)


def _rank0_result(returned: Any, run_dir: Path) -> RunResult:
    if returned is None:  # another machine's ranks: rank 0 reports the run
        return RunResult(run_dir, "completed", {}, {})
    kind, value = returned
    if kind == "result":
        return value
    if kind == "interrupted":
        signum, requeue = value
        raise stop.TrainingInterrupted(signum, requeue)
    raise value  # a user's mistake, found by rank 0: its one line and exit code


def _rank_main(
    run: RunFn,
    container: dict[str, Any],
    run_dir: str,
    resume: bool,
    end: EndOfRun | None,
    assigned: dict[str, Any] | None,
    width: int | None,
) -> tuple[str, Any] | None:
    """One worker: a rank of the run. Returns rank 0's result, or what stopped it, to the launcher."""
    os.setpgid(0, 0)  # a Ctrl-C in the terminal reaches the launcher, which passes it on once
    rank = int(os.environ["RANK"])
    cfg = OmegaConf.create(container)
    share = _share_threads(cfg, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    if rank == 0:
        from nnexp.runs.console import PlainLines
        from nnexp.runs.resume import log_into

        if width is not None:
            rich.reconfigure(file=PlainLines(sys.stdout, beside_a_log=True), width=width)
        log_into(Path(run_dir))
        _held_by_the_launcher(Path(run_dir))
    held = torch_threads.held(share) if share is not None else contextlib.nullcontext()
    try:
        with held, stop.enter(stop.State.BUILDING):  # until the run's own states: a signal stops it at once
            result = as_rank(run, cfg, Path(run_dir), None, resume, end or NOTHING_DRAWN, assigned)
    except stop.TrainingInterrupted as interrupted:
        return ("interrupted", (interrupted.signum, interrupted.requeue)) if rank == 0 else None
    except UserError as error:  # every rank meets the same mistake in the same config: rank 0 says it
        return ("error", error) if rank == 0 else None
    if rank != 0:
        return None
    return ("result", result)


def _held_by_the_launcher(run_dir: Path) -> None:
    """The launcher holds the run folder's lock (runs/folder.py) while its ranks run: rank 0 writes under
    it, as a folder this process held itself."""
    from nnexp.runs import folder

    folder._HELD.setdefault(run_dir.absolute(), -1)  # noqa: SLF001 - no descriptor of its own to close


def _share_threads(cfg: DictConfig, local_ranks: int) -> torch_threads.Choice | None:
    """This rank's share of the cores, held for its run: the ranks on one machine share them (torchrun sets
    OMP_NUM_THREADS=1 for the same reason). With trainer.threads=auto, of the cores other work leaves
    free; with null, of them all. A number in trainer.threads, or OMP_NUM_THREADS, decides instead."""
    wanted = cfg.trainer.get("threads")
    if wanted not in (None, "auto") or "OMP_NUM_THREADS" in os.environ:
        return None
    return torch_threads.split_between(local_ranks, free_only=wanted == "auto", ranks=True)


def _piped_width() -> int | None:
    """The console width the command's piped output has (cli/command.py), for rank 0's console."""
    if sys.stdout.isatty():
        return None
    return int(os.environ.get("COLUMNS", 160))


def _backend(cfg: DictConfig) -> str:
    return "gloo on the CPU" if str(cfg.device.type) == "cpu" else "nccl, one GPU each (gloo without one)"
