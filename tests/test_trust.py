"""A run folder is data, never code: what a shared run or sweep folder can and cannot make nnexp do.

Each hostile folder below carries a real payload: a pickle that creates a marker file when anything
unpickles it with weights_only=False (the test shows it does), reached through a `_target_` nested in
the saved config. Every reader of run folders (resume, sweep resume, nnexp-predict, nnexp-generate,
nnexp-report) must refuse the folder (or, for the report, show it as data) without the marker appearing.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

import nnexp
from conftest import compose_config, exit_code_of, nnexp_exit_code
from nnexp.config.checks import check_config
from nnexp.config.trust import NNEXP_BUILDERS, UntrustedConfig, is_trusted_target
from nnexp.errors import ConfigError
from nnexp.look.saved import load_saved_run
from nnexp.paths import CONFIG_DIR, EXPERIMENT_DIR
from nnexp.runs.resume import resume_config
from nnexp.sweep.recorded import check_recorded_overrides
from nnexp.sweep.resume import sweep_to_resume

# Ways to name torch.load that a prefix rule ("torch.nn.", "nnexp.") lets through: Hydra finds each by
# walking attributes from the last module it can import.
DISGUISED = [
    "torch.load",
    "torch.nn.functional.torch.load",
    "torch.optim.optimizer.torch.load",
    "nnexp.runs.checkpoint.torch.load",
    "nnexp.models.mlp.nn.functional.torch.load",
    "builtins.eval",
    "os.system",
    "torch.optim.Optimizer.__init__",
    "torch.nn.Module",  # the base class itself is harmless, but named exactly it is still a Module: allowed
]


class Payload:
    """Unpickled, it creates `marker`: proof that code from the folder ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant_payload(folder: Path) -> tuple[Path, Path]:
    """(the pickle, the marker it creates when it runs) inside `folder`."""
    marker = folder / "PAYLOAD_RAN"
    notes = folder / "notes.pkl"
    notes.write_bytes(pickle.dumps(Payload(marker)))
    return notes, marker


def hostile_target(notes: Path) -> dict:
    return {"_target_": "torch.nn.functional.torch.load", "f": str(notes), "weights_only": False}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real digits run, trained in this process."""
    folder = tmp_path_factory.mktemp("trust") / "run"
    result = nnexp.run(["debug=smoke"], output_dir=folder)
    assert result.status == "completed"
    return folder


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    copy = tmp_path / "shared_run"
    shutil.copytree(finished_run, copy)
    return copy


# --- the rule ---------------------------------------------------------------------------------------


def test_every_target_nnexp_ships_is_trusted_by_its_exact_name():
    shipped = set()
    for path in [*CONFIG_DIR.rglob("*.yaml"), *EXPERIMENT_DIR.rglob("*.yaml")]:
        for line in path.read_text().splitlines():
            if line.strip().startswith("_target_:"):
                shipped.add(line.split(":", 1)[1].split("#")[0].strip())
    shipped.discard("nnexp.sweep.ledger.SweepLedger")  # Hydra's callback, in the hydra section only
    assert shipped and all(is_trusted_target(target) for target in shipped), shipped
    assert shipped - {t for t in shipped if t.startswith("torch.")} == set(NNEXP_BUILDERS)


@pytest.mark.parametrize("target", DISGUISED)
def test_a_target_is_trusted_by_exact_name_never_by_prefix(target):
    assert is_trusted_target(target) == (target == "torch.nn.Module")
    assert is_trusted_target("torch.optim.SGD") and is_trusted_target("torch.optim.lr_scheduler.StepLR")
    assert is_trusted_target("torch.nn.GELU")


def test_the_command_line_refuses_a_disguised_target_by_its_key():
    with pytest.raises(ConfigError, match=r"model._target_=torch.nn.functional.torch.load is not allowed"):
        check_config(compose_config("model._target_=torch.nn.functional.torch.load"))
    with pytest.raises(ConfigError, match=r"optim._target_=nnexp.runs.checkpoint.torch.load is not allowed"):
        check_config(compose_config("optim._target_=nnexp.runs.checkpoint.torch.load"))


def test_the_payload_is_real(tmp_path):
    notes, marker = plant_payload(tmp_path)
    with pytest.raises(RuntimeError):  # torch.load unpickles the payload, then finds no torch magic number
        torch.load(notes, weights_only=False)  # what Hydra would call through the hostile target
    assert marker.exists()


# --- nnexp-predict and nnexp-generate: the checkpoint's config ---------------------------------------


def plant_in_checkpoint(run: Path, where: str) -> Path:
    """Nest the hostile target in the checkpoint's config at `where` (a key path); return the marker."""
    notes, marker = plant_payload(run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    node = state["config"]
    *parents, last = where.split(".")
    for key in parents:
        node = node[key]
    node[last] = hostile_target(notes)
    torch.save(state, run / "checkpoint.pt")
    return marker


@pytest.mark.parametrize("where", ["model", "model.hidden", "model.init_std"])
def test_a_saved_model_with_a_foreign_target_at_any_depth_is_refused_before_it_is_built(run_copy, where):
    marker = plant_in_checkpoint(run_copy, where)
    key = "model._target_" if where == "model" else f"{where}._target_"
    with pytest.raises(UntrustedConfig, match=rf"checkpoint.pt: {key}=torch.nn.functional.torch.load is not"):
        load_saved_run(run_copy)
    assert not marker.exists()


def test_a_resolver_in_a_saved_model_is_refused_before_it_is_resolved(run_copy):
    state = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    made = run_copy.parent / "made_by_resolver"
    state["config"]["model"]["init"] = "${oc.decode:'{_target_: torch.load}'}"
    state["config"]["model"]["init_bias"] = f"${{nnexp_new_dir:{made}}}"
    torch.save(state, run_copy / "checkpoint.pt")
    with pytest.raises(UntrustedConfig, match="calls the resolver oc.decode"):
        load_saved_run(run_copy)
    assert not made.exists()


def test_nnexp_predict_on_a_hostile_run_is_one_line_exit_2_and_the_payload_never_runs(
    run_copy, tmp_path, capsys
):
    """`nnexp-predict RUN rows.csv`, its main() in this process (nnexp-predict refusing in a process:
    tests/test_predict_images.py::test_a_decompression_bomb_is_refused_from_its_header_in_one_line_exit_2)."""
    from nnexp.look.predict import main as predict_main

    marker = plant_in_checkpoint(run_copy, "model.hidden")
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(f"x{i}" for i in range(64)) + "\n" + ",".join(["0"] * 64) + "\n")
    before = sorted(p.name for p in run_copy.iterdir())
    assert exit_code_of(predict_main, run_copy, rows) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error: ") and stderr.count("\n") == 1
    assert "model.hidden._target_" in stderr
    assert not marker.exists()
    assert sorted(p.name for p in run_copy.iterdir()) == before


def test_nnexp_generate_reads_the_model_through_the_same_check(run_copy):
    from nnexp.look.generate import generate_from_run

    marker = plant_in_checkpoint(run_copy, "model")
    (run_copy / "vocab.json").write_text('{"tokens": ["<unk>", "a", "b"], "tokenizer": {"token": "char"}}')
    with pytest.raises(UntrustedConfig, match="model._target_"):
        generate_from_run(run_copy, "ab", 5, 0.0)
    assert not marker.exists()


# --- resume: the saved .hydra/config.yaml -------------------------------------------------------------


def plant_in_saved_config(run: Path, key: str, value) -> Path:
    notes, marker = plant_payload(run)
    saved = run / ".hydra" / "config.yaml"
    config = OmegaConf.load(saved)
    OmegaConf.update(
        config, key, hostile_target(notes) if value is None else value, merge=False, force_add=True
    )
    OmegaConf.save(config, saved)
    return marker


@pytest.mark.parametrize("key", ["model", "optim", "data.extra", "trainer.epochs"])
def test_a_resume_of_a_run_whose_config_names_code_is_refused_naming_file_and_key(run_copy, key):
    marker = plant_in_saved_config(run_copy, key, None)
    with pytest.raises(UntrustedConfig, match=rf"config.yaml: {key}._target_=torch.nn.functional.torch.load"):
        resume_config([f"resume={run_copy}"])
    assert not marker.exists()


def test_a_resume_refuses_a_saved_config_that_calls_a_resolver_with_effects(run_copy):
    made = run_copy.parent / "made_by_resolver"
    plant_in_saved_config(run_copy, "trainer.epochs", f"${{nnexp_new_dir:{made}}}")
    with pytest.raises(UntrustedConfig, match="trainer.epochs=.* calls the resolver nnexp_new_dir"):
        resume_config([f"resume={run_copy}"])
    assert not made.exists()


def test_nnexp_resume_of_a_hostile_run_is_one_line_exit_2_and_changes_no_file(
    run_copy, tmp_path, monkeypatch, capsys
):
    """`nnexp resume=RUN` through the command's main() in this process (a refused resume as a process:
    tests/test_resume_faults.py::test_a_refused_resume_is_exit_code_2_and_one_line_on_stderr)."""
    marker = plant_in_saved_config(run_copy, "model.hidden", None)
    before = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, f"resume={run_copy}") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error:") and stderr.count("\n") == 1
    assert "model.hidden._target_" in stderr and "config.yaml" in stderr
    assert not marker.exists()
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before


# --- sweep resume: multirun.yaml and each job's overrides.yaml ---------------------------------------


BASIC = "hydra._internal.core_plugins."
SMOKE = ["debug=smoke", "seed=0,1"]


def write_sweep(folder: Path, task: list[str], hydra: list[str], params: dict | None = None) -> Path:
    """A stopped sweep's record as Hydra writes it: multirun.yaml and job 0's .hydra/ files."""
    (folder / "0" / ".hydra").mkdir(parents=True)
    record = {
        "hydra": {
            "overrides": {"hydra": ["hydra.mode=MULTIRUN", *hydra], "task": task},
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "params": params,
            },
            "launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
        }
    }
    (folder / "multirun.yaml").write_text(yaml.safe_dump(record))
    job_overrides = [arg.replace("0,1", "0") for arg in task]
    config = compose_config(*[a for a in job_overrides if "_target_" not in a and not a.startswith("hydra")])
    OmegaConf.save(config, folder / "0" / ".hydra" / "config.yaml")
    (folder / "0" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(job_overrides))
    return folder


HOSTILE_RECORDS = [
    ([*SMOKE, "model._target_=torch.nn.functional.torch.load"], [], "model._target_"),
    ([*SMOKE, "+model.x={_target_:torch.load}"], [], "holds a _target_"),
    (SMOKE, ["+hydra.callbacks.x._target_=torch.load"], "Hydra's own settings"),
    (SMOKE, ["hydra.job_logging.root.handlers=[evil]"], "Hydra's own settings"),
    (SMOKE, ["hydra.searchpath=[file:///tmp]"], "Hydra's own settings"),
    (SMOKE, ["hydra/launcher=../../evil"], "launcher nnexp does not ship"),
    (SMOKE, ["hydra.launcher._target_=torch.load"], "launcher option"),
    (
        ["debug=smoke", "seed=0,1"],
        ["hydra/launcher=slurm", "hydra.launcher.setup=[touch /tmp/x]"],
        "launcher option",
    ),
    (
        ["debug=smoke", "seed=0,1"],
        ["hydra/launcher=slurm", "hydra.launcher.partition='a\nb'"],
        "plain numbers",
    ),
    ([*SMOKE, "trainer.epochs=${oc.decode:'1'}"], [], "resolver oc.decode"),
]


@pytest.mark.parametrize(("task", "hydra", "named"), HOSTILE_RECORDS)
def test_a_sweep_resume_replays_no_recorded_override_that_is_code(tmp_path, task, hydra, named):
    sweep = write_sweep(tmp_path / "sweep", task, hydra)
    with pytest.raises(
        UntrustedConfig, match=r"multirun.yaml: the recorded override .*" + named.replace("(", r"\(")
    ):
        sweep_to_resume([f"resume={sweep}"])


def test_a_recorded_search_space_is_checked_like_the_overrides(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", ["debug=smoke"], [], params={"hydra.job.env_set.LD_PRELOAD": "x"})
    with pytest.raises(UntrustedConfig, match="hydra.job.env_set.LD_PRELOAD=x"):
        sweep_to_resume([f"resume={sweep}"])


def test_a_jobs_own_overrides_are_checked_before_they_are_composed(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SMOKE, [])
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["+hydra.callbacks.x._target_=os.system"])
    )
    with pytest.raises(UntrustedConfig, match=r"0/.hydra/overrides.yaml: the recorded override"):
        sweep_to_resume([f"resume={sweep}"])


def test_what_nnexp_s_own_sweeps_record_is_replayed():
    check_recorded_overrides(
        [
            "hydra.mode=MULTIRUN", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
            "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=60",
            "hydra.sweeper.n_trials=8", "hydra.sweeper.params.optim.lr=interval(0.001,0.1)",
            "optim=sgd,adam", "optim.lr=0.01,0.1", "model.hidden=[32],[64]", "+regularization=[l2,dropout]",
            "data.path=${oc.env:HOME}/Fish.csv", "experiment=digits_mlp",
        ],
        Path("multirun.yaml"),
    )  # fmt: skip


def test_nnexp_sweep_resume_of_a_hostile_sweep_is_one_line_exit_2_and_runs_nothing(
    tmp_path, monkeypatch, capsys
):
    """`nnexp -m resume=SWEEP` through the command's main() in this process (a refused sweep resume as a
    process: tests/test_sweep_resume.py::test_a_resume_that_cannot_be_a_sweeps_is_one_line_exit_2_...)."""
    notes, marker = plant_payload(tmp_path)
    sweep = write_sweep(
        tmp_path / "sweep", ["debug=smoke", "seed=0,1"], ["+hydra.callbacks.x._target_=torch.load"]
    )
    record = yaml.safe_load((sweep / "multirun.yaml").read_text())
    record["hydra"]["overrides"]["hydra"].append(f"+hydra.callbacks.x.f={notes}")
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(record))
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    assert nnexp_exit_code(monkeypatch, "-m", f"resume={sweep}") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("nnexp: error:") and stderr.count("\n") == 1
    assert "multirun.yaml" in stderr and "hydra.callbacks" in stderr
    assert not marker.exists()
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before


# --- nnexp-report: it shows a run, and runs nothing from it -------------------------------------------


def test_nnexp_report_shows_a_hostile_run_as_data_says_what_it_names_and_runs_nothing(
    run_copy, tmp_path, capsys
):
    from nnexp.look.report import main as report_main

    marker = plant_in_saved_config(run_copy, "model.hidden", None)
    plant_in_checkpoint(run_copy, "model")
    assert report_main([str(run_copy), "--csv", str(tmp_path / "report.csv")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "model.hidden._target_" in line]
    assert len(warnings) == 1 and "nnexp will not resume it or predict with it" in warnings[0]
    assert not marker.exists()


def test_the_sweep_page_links_only_run_pages_nnexp_wrote(tmp_path):
    from test_report import fake_run

    from nnexp.look.page import PAGE_FILE, write_run_page, written_by_nnexp
    from nnexp.look.report import main as report_main

    sweep = tmp_path / "sweep"
    ours, theirs = fake_run(sweep / "0", ["optim.lr=0.1"], 0.9), fake_run(sweep / "1", ["optim.lr=0.2"], 0.8)
    write_run_page(ours)
    write_run_page(theirs)
    page = theirs / PAGE_FILE  # someone's own page in the shared folder: a script, no policy
    page.write_text("<!DOCTYPE html><html><body><script>document.title='pwned'</script></body></html>")
    assert written_by_nnexp(ours / PAGE_FILE) and not written_by_nnexp(page)
    assert report_main([str(sweep), "--html", "--out", str(tmp_path / "sweep.html")]) == 0
    links = (tmp_path / "sweep.html").read_text()
    assert 'href="sweep/0/report.html"' in links and "sweep/1/report.html" not in links


# --- found by a hostile-user pass --------------------------------------------------------------------


@pytest.mark.parametrize("subdir", ["/elsewhere/victim", "../../escape${hydra.job.num}", "same"])
def test_a_recorded_sweep_subdir_may_only_number_the_jobs_inside_the_sweep(tmp_path, subdir):
    sweep = write_sweep(tmp_path / "sweep", SMOKE, [f"hydra.sweep.subdir={subdir}"])
    with pytest.raises(UntrustedConfig, match="outside the sweep or in one another"):
        sweep_to_resume([f"resume={sweep}"])
    check_recorded_overrides(["hydra.sweep.subdir=job_${hydra.job.num}"], Path("multirun.yaml"))


def test_a_sweep_resume_refuses_a_job_whose_saved_config_names_code_before_launching(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SMOKE, [])
    marker = plant_in_saved_config(sweep / "0", "model.hidden", None)
    with pytest.raises(UntrustedConfig, match=r"0/.hydra/config.yaml: model.hidden._target_"):
        sweep_to_resume([f"resume={sweep}"])
    assert not marker.exists()


def test_a_resume_refuses_code_in_the_checkpoints_copy_of_the_config(run_copy):
    from nnexp.runs.folder import RunFolder
    from nnexp.runs.resume import Resumed

    marker = plant_in_checkpoint(run_copy, "model")
    cfg = resume_config([f"resume={run_copy}", "trainer.epochs=3", "force=true"])[1]
    with pytest.raises(UntrustedConfig, match=r"checkpoint.pt: model._target_"):
        Resumed.load(RunFolder(run_copy), cfg)
    assert not marker.exists()


def test_an_error_line_escapes_control_characters_a_folder_may_hold(capsys):
    from nnexp.errors import exit_with

    with pytest.raises(SystemExit):
        exit_with(UntrustedConfig("run\nx: key \x1b]0;PWNED\x07 names code"))
    assert capsys.readouterr().err == "nnexp: error: run\\nx: key \\x1b]0;PWNED\\x07 names code\n"
