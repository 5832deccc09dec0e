"""summary.json, however a run ends: the keys nnexp has always written, one `schema_version` beside them,
all of them fields of `RunSummary` (nnexp/runs/summary.py); and a summary read back, this version's or an
older nnexp's, is written back as it was read.

Every run here is real and in this process (nnexp.run, or runs/run.py's run() with an end of run that
stops it where a test needs it to stop).
"""

from __future__ import annotations

import json
import signal
from dataclasses import replace

import pytest

from conftest import compose_config, copy_run, read_summary, resume_in_process
from nnexp.runs.end_of_run import NOTHING_DRAWN
from nnexp.runs.run import run
from nnexp.runs.summary import SCHEMA_VERSION, RunSummary
from nnexp.stop import TrainingInterrupted
from nnexp.train.safeguards import Diverged

QUICK = ("trainer.epochs=2",)

# What every run records as it starts, once it has built its experiment, and once it has trained.
STARTED = ["status", "seed", "started_at", "nnexp_version", "code_version", "provenance"]
DESCRIBED = ["data", "model", "num_parameters", "loss", "optimizer", "device", "initial_loss", "diagnostics"]
TRAINED = ["epochs_completed", "train_time_s", "test_on", "best_epoch", "metrics", "baselines"]


def _stopping_at_the_views(error: BaseException):
    """An end of run whose views raise `error`: the run has trained, evaluated and checkpointed by then."""

    def views(*_: object) -> dict:
        raise error

    return replace(NOTHING_DRAWN, views=views)


def test_a_completed_run_records_what_it_always_has_and_the_schema_version(session_runs):
    summary = read_summary(session_runs(*QUICK))
    assert list(summary) == ["schema_version", *STARTED, *DESCRIBED, *TRAINED, "per_class", "checkpoint",
                             "pictures_time_s", "wall_time_s"]  # fmt: skip
    assert 0 < summary["pictures_time_s"] < summary["wall_time_s"]  # drawn after the results were written
    assert summary["schema_version"] == SCHEMA_VERSION
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert RunSummary.from_json(summary).extra == {}  # every key nnexp writes is a field of the schema
    assert RunSummary.from_json(summary).to_json() == summary


# (overrides, how the run is stopped, status, exit code, keys beside schema_version, in the order written)
ENDINGS = {
    "lr_find": (["+lr_find=exponential", "lr_find.num_steps=30"], None, "completed", None,
                [*STARTED, *DESCRIBED, "mode", "lr_find", "epochs_completed", "wall_time_s"]),
    "early_stopping": (["regularization=[early_stopping]"], None, "completed", None,
                       [*STARTED, *DESCRIBED, "epochs_completed", "train_time_s", "early_stopping", "test_on",
                        "best_epoch", "metrics",
                        "baselines", "checkpoint", "wall_time_s"]),
    "failed": ([], RuntimeError("boom"), "failed", None,
               [*STARTED, *DESCRIBED, "error", *TRAINED, "wall_time_s"]),
    "interrupted": ([], TrainingInterrupted(signal.SIGTERM), "interrupted", None,
                    [*STARTED, *DESCRIBED, "error", *TRAINED, "resume_with", "wall_time_s"]),
    "requeued": ([], TrainingInterrupted(signal.SIGUSR2, requeue=True), "requeued", None,
                 [*STARTED, *DESCRIBED, "error", *TRAINED, "resume_with", "wall_time_s"]),
    "diverged": (["optim=sgd", "optim.lr=1e12"], None, "diverged", Diverged.exit_code,
                 [*STARTED, *DESCRIBED, "error", "exit_code", "epochs_completed", "wall_time_s"]),
    "refused": (["seed=-1"], None, "failed", 2,  # past the preflight (a sweep job's own value): check_job
                [*STARTED, "diagnostics", "error", "exit_code", "epochs_completed", "wall_time_s"]),
}  # fmt: skip


@pytest.mark.parametrize("ending", ENDINGS)
def test_every_way_a_run_ends_records_the_keys_it_always_has(ending, tmp_path):
    overrides, stopped_by, status, exit_code, keys = ENDINGS[ending]
    folder = tmp_path / "run"
    folder.mkdir()
    end = NOTHING_DRAWN if stopped_by is None else _stopping_at_the_views(stopped_by)
    try:
        run(compose_config(*QUICK, "device=cpu", *overrides), folder, end=end)
    except BaseException as error:  # noqa: BLE001 - every way a run ends, a stop signal's included
        assert status != "completed", error
    summary = read_summary(folder)
    assert list(summary) == ["schema_version", *keys]
    assert summary["status"] == status and summary.get("exit_code") == exit_code
    parsed = RunSummary.from_json(summary)
    assert parsed.extra == {} and parsed.to_json() == summary


def test_a_sweep_jobs_summary_says_what_it_was_given(tmp_path):
    given = {"device": "cuda:1", "threads": 4}
    run(compose_config(*QUICK, "device=cpu"), tmp_path, assigned=given)
    summary = read_summary(tmp_path)
    assert (
        summary["assigned"] == given
        and list(summary).index("assigned") == list(summary).index("provenance") + 1
    )


def test_a_resumed_run_keeps_its_first_start_and_adds_up_its_time(session_runs, tmp_path):
    before = read_summary(session_runs(*QUICK))
    folder = copy_run(session_runs(*QUICK), tmp_path / "run")
    result = resume_in_process(folder, "trainer.epochs=3", "force=true")
    after = read_summary(folder)
    resumes = ["resumed_at", "resumed_from_epoch"]
    assert list(after) == [
        "schema_version",
        *STARTED,
        *resumes,
        *DESCRIBED,
        *TRAINED,
        "checkpoint",
        "wall_time_s",
    ]
    assert after["started_at"] == before["started_at"] and len(after["resumed_at"]) == 1
    assert after["resumed_from_epoch"] == 2 and after["epochs_completed"] == 3
    assert after["wall_time_s"] >= before["wall_time_s"]
    assert json.loads(json.dumps(result.summary)) == after  # the RunResult holds the summary as written last


def test_a_summary_from_an_older_nnexp_is_read_back_as_it_was_and_resumed(session_runs, tmp_path):
    folder = copy_run(session_runs(*QUICK), tmp_path / "run")
    written = read_summary(folder)
    # Before schema_version; before provenance and per-class records; with the one baseline of early versions.
    older = {
        key: value
        for key, value in written.items()
        if key not in ("schema_version", "provenance", "per_class")
    }
    older["baseline"] = {"name": "majority class", "test_accuracy": 0.1}
    assert RunSummary.from_json(older).to_json() == {"schema_version": SCHEMA_VERSION, **older}
    (folder / "summary.json").write_text(json.dumps(older))
    resume_in_process(folder, "trainer.epochs=3", "force=true")
    resumed = read_summary(folder)
    assert resumed["started_at"] == older["started_at"] and resumed["status"] == "completed"
    assert resumed["schema_version"] == SCHEMA_VERSION and "provenance" in resumed


def test_a_key_of_the_wrong_type_is_named_when_read_back():
    assert RunSummary.from_json({}).to_json() == {"schema_version": SCHEMA_VERSION}
    with pytest.raises(ValueError, match="wall_time_s is a str"):
        RunSummary.from_json({"status": "completed", "wall_time_s": "x"})
    with pytest.raises(ValueError, match="epochs_completed is a bool"):
        RunSummary.from_json({"epochs_completed": True})
    assert RunSummary.from_json({"wall_time_s": 3}).wall_time_s == 3  # JSON writes 3.0 as 3 elsewhere


def test_a_job_the_sweep_never_started_and_one_the_scheduler_would_not_requeue(tmp_path):
    from nnexp.cli.command import _record_not_started
    from nnexp.sweep.preemption import _mark_interrupted

    _record_not_started(tmp_path)
    assert read_summary(tmp_path) == {
        "schema_version": SCHEMA_VERSION,
        "status": "interrupted",
        "error": "the sweep was stopped before this job started",
        "epochs_completed": 0,
    }
    requeued = {**read_summary(tmp_path), "status": "requeued", "seed": 3, "newer_key": [1]}
    (tmp_path / "summary.json").write_text(json.dumps(requeued))
    _mark_interrupted(tmp_path, "not requeued: timed out 3 times")
    assert read_summary(tmp_path) == {
        **requeued,
        "status": "interrupted",
        "error": "not requeued: timed out 3 times",
    }
