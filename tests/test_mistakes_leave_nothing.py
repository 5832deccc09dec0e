"""A mistake found once the run has started (in the data, the device, a value only the built objects can
check) is one line and exit 2, and leaves no folder behind: `outputs/` looks as it did before."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from conftest import compose_config, copy_run, run_folders, run_nnexp, write_fish_csv
from nnexp.errors import ConfigError
from nnexp.models.summary import parameter_counts


def write_mistake(tmp_path: Path, kind: str) -> list[str]:
    """The command-line arguments of one mistake, with any file it needs written in its real format."""
    if kind == "empty csv":
        (tmp_path / "empty.csv").write_text("")
        return ["data=csv", "data.path=empty.csv", "data.features=[a]", "data.target=b"]
    if kind == "header only":
        (tmp_path / "header.csv").write_text("a,b\n")
        return ["data=csv", "data.path=header.csv", "data.features=[a]", "data.target=b"]
    if kind == "missing file":
        return ["data=fish", "data.path=no/such/Fish.csv"]
    if kind == "a folder as the file":
        (tmp_path / "folder.csv").mkdir()
        return ["data=fish", "data.path=folder.csv"]
    if kind == "unknown column":
        write_fish_csv(tmp_path / "Fish.csv")
        return ["data=fish", "data.path=Fish.csv", "data.features=[Heigth]"]
    if kind == "target also a feature":
        write_fish_csv(tmp_path / "Fish.csv")
        return ["data=fish", "data.path=Fish.csv", "data.features=[Height,Weight]"]
    if kind == "a column named twice":
        (tmp_path / "twice.csv").write_text("a,a,b\n" + "".join(f"{i},{-i},{2 * i}\n" for i in range(20)))
        return ["data=csv", "data.path=twice.csv", "data.features=[a]", "data.target=b"]
    if kind == "an empty cell":
        rows = "".join(f"{i},{2 * i}\n" for i in range(20))
        (tmp_path / "gap.csv").write_text("a,b\n" + rows + "3,\n")
        return ["data=csv", "data.path=gap.csv", "data.features=[a]", "data.target=b"]
    if kind == "one training row":
        (tmp_path / "two.csv").write_text("a,b\n1,2\n3,4\n")
        return ["data=csv", "data.path=two.csv", "data.features=[a]", "data.target=b"]
    if kind == "a removed group":
        return ["~optim"]
    if kind == "a seed past 2**32":
        return ["seed=99999999999999999999"]
    if kind == "more validation images than images":
        return ["data=fashion_mnist", "data.synthetic=true", "data.val_size=100000"]
    if kind == "a gzipped text":
        with gzip.open(tmp_path / "book.txt.gz", "wt") as handle:
            handle.write("the time machine " * 2000)
        return ["experiment=time_machine_rnn", "data.path=book.txt.gz"]
    if kind == "a gzipped csv":
        with gzip.open(tmp_path / "Fish.csv.gz", "wt") as handle:
            handle.write(write_fish_csv(tmp_path / "Fish.csv").read_text())
        return ["data=fish", "data.path=Fish.csv.gz"]
    if kind == "a workbook named .csv":
        (tmp_path / "sheet.csv").write_bytes(b"PK\x03\x04" + bytes(200))
        return ["data=fish", "data.path=sheet.csv"]
    if kind == "binary bytes as the text":
        (tmp_path / "bytes.txt").write_bytes(bytes(range(256)) * 200)
        return ["experiment=time_machine_rnn", "data.path=bytes.txt"]
    if kind == "semicolons":
        (tmp_path / "semi.csv").write_text("a;b\n" + "".join(f"{i};{2 * i}\n" for i in range(20)))
        return ["data=csv", "data.path=semi.csv", "data.features=[a]", "data.target=b"]
    if kind == "utf-16":
        rows = "a,b\n" + "".join(f"{i},{2 * i}\n" for i in range(20))
        (tmp_path / "wide.csv").write_bytes(
            rows.encode("utf-16")
        )  # with its byte-order mark, as Excel writes
        return ["data=csv", "data.path=wide.csv", "data.features=[a]", "data.target=b"]
    if kind == "an accent unquoted":
        write_fish_csv(tmp_path / "pêche.csv")
        return ["data=fish", "data.path=pêche.csv"]
    if kind == "no gpu":
        return ["device=cuda"]
    if kind == "a model too big for any memory":
        return ["model.hidden=[1000000000000]"]  # 256 TB of weights
    if kind == "lr range upside down":
        return ["+lr_find=exponential", "lr_find.end_lr=1e-9"]
    raise AssertionError(kind)


MISTAKES = {  # the mistake: what its one line says
    "empty csv": "the file is empty",
    "header only": "has a header but no rows",
    "missing file": "no such file",
    "a folder as the file": "data.path=folder.csv is a folder",
    "unknown column": "column 'Heigth' is not in",
    "target also a feature": "data.target='Weight' is also in data.features",
    "a column named twice": "names column 'a' more than once",
    "an empty cell": "column 'b' holds an empty cell at data row 21",
    "one training row": "2 data rows leave 1 for training",
    "a removed group": "the config has no optim (was it removed with ~optim?)",
    "a seed past 2**32": "use a whole number from 0 to 4294967295",
    "more validation images than images": "data.val_size=100000 leaves no rows on one side of the split",
    "a gzipped text": "data.path=book.txt.gz is a gzip file: decompress it",
    "a gzipped csv": "data.path=Fish.csv.gz is a gzip file: decompress it",
    "a workbook named .csv": "data.path=sheet.csv is a zip (an Excel workbook?) file",
    "binary bytes as the text": "characters are not UTF-8 text",
    "semicolons": "the columns are separated by ';', not commas",
    "utf-16": "not UTF-8 text",
    "an accent unquoted": """write it as 'data.path="pêche.csv"'""",
    "no gpu": "no usable CUDA GPU",
    "lr range upside down": "lr_find.end_lr=1e-09 is not allowed",
    "a model too big for any memory": "the model does not fit in this machine's memory",
}


def refused_in_this_process(args: list[str]) -> str:
    """What `nnexp ARGS` says of a mistake, met through nnexp.run: the same checks, the same run, the same
    clean-up, and the UserError whose message the command prints as its one line."""
    import nnexp
    from nnexp.errors import UserError

    with pytest.raises(UserError) as refused:
        nnexp.run(args)
    assert refused.value.exit_code == 2, refused.value
    message = str(refused.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("kind", MISTAKES)
def test_a_mistake_found_after_the_run_started_leaves_no_folder(tmp_path, monkeypatch, kind):
    """Each mistake through nnexp.run, run from tmp_path as the command would be; the command's own exit
    code and one line on stderr are checked in a process by
    tests/test_usage_errors.py::test_the_cli_exits_2_with_one_line_and_no_run_folder (outputs/ made new) and
    test_a_folder_of_the_users_named_as_the_run_folder_keeps_its_files_and_gains_none (a folder named)."""
    if kind == "no gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(tmp_path)
    args = write_mistake(tmp_path, kind)
    assert MISTAKES[kind] in refused_in_this_process(args)
    assert not (tmp_path / "outputs").exists()


def test_a_quoted_path_with_an_accent_is_read(tmp_path, monkeypatch):
    import nnexp

    monkeypatch.chdir(tmp_path)
    write_fish_csv(tmp_path / "pêche.csv")
    result = nnexp.run(["data=fish", 'data.path="pêche.csv"', "model=linear", "trainer.epochs=1"])
    assert result.status == "completed" and result.summary["epochs_completed"] == 1


def test_the_folders_that_were_there_before_stay(tmp_path, monkeypatch, session_runs):
    """outputs/ as it was, its earlier run kept: the new run's folder goes, and only the parents it made."""
    copy_run(session_runs("trainer.epochs=3"), tmp_path / "outputs" / "2026-01-01" / "10-00-00")  # earlier
    before = sorted(path for path in (tmp_path / "outputs").rglob("*"))
    monkeypatch.chdir(tmp_path)
    assert MISTAKES["empty csv"] in refused_in_this_process(write_mistake(tmp_path, "empty csv"))
    assert sorted(path for path in (tmp_path / "outputs").rglob("*")) == before
    assert len(run_folders(tmp_path)) == 1


def test_a_run_folder_named_outright_is_removed_with_the_parents_the_mistake_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = write_mistake(tmp_path, "an empty cell")
    assert "holds an empty cell" in refused_in_this_process([*args, "hydra.run.dir=mine/new/run"])
    assert not (tmp_path / "mine").exists()


def test_a_folder_of_the_users_named_as_the_run_folder_keeps_its_files_and_gains_none(tmp_path):
    """The command itself: Hydra writes its records into the named folder before the mistake is met."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "plan.txt").write_text("try a smaller learning rate\n")
    result = run_nnexp(*write_mistake(tmp_path, "an empty cell"), "hydra.run.dir=notes", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nnexp: error: ") and len(result.stderr.splitlines()) == 1
    assert "holds an empty cell" in result.stderr
    assert [path.name for path in folder.iterdir()] == ["plan.txt"]
    assert (folder / "plan.txt").read_text() == "try a smaller learning rate\n"


def test_a_run_that_cannot_fit_in_the_free_memory_is_refused_before_its_first_step(monkeypatch):
    """The weights, gradients and optimiser state, and each layer's outputs for a batch, against the memory
    free where the run would train: too much is one line naming the fixes, not the out-of-memory killer."""
    from nnexp.train import memory
    from nnexp.train.build import build

    wide = "model.layers=[{conv:{channels:100000,kernel_size:3}},flatten,linear]"
    cfg = compose_config("model=sequential", wide)
    experiment = build(cfg)
    counts = parameter_counts(experiment.model, experiment.data.train.inputs[:1])
    needed, batch_size = memory.run_needs(counts, experiment, cfg.trainer)
    # 100,000 channels of 6 x 6 per example: 14.4 MB, kept and matched by its gradient for 32 examples
    assert batch_size == 32 and needed > 32 * 2 * 100_000 * 36 * 4
    monkeypatch.setattr(memory, "memory_free", lambda device: needed - 1)
    with pytest.raises(ConfigError, match=r"use smaller layers or a smaller trainer.batch_size"):
        memory.refuse_what_does_not_fit(counts, experiment, cfg.trainer)
    monkeypatch.setattr(memory, "memory_free", lambda device: needed)
    memory.refuse_what_does_not_fit(counts, experiment, cfg.trainer)  # just fits: no refusal
