"""Speed options (trainer.precision, trainer.compile, trainer.threads) and the habits that keep epochs fast.

Each option is off by default and each runs here on the CPU. No timings are asserted: those live in
benchmarks/run.py, which is run on demand.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from conftest import compose_config
from nnexp.config.checks import check_config
from nnexp.data import TensorSplit
from nnexp.data.tasks import task_of
from nnexp.data.text import TokenSplit
from nnexp.errors import ConfigError
from nnexp.models.recurrent import GRU
from nnexp.runs import console as console_module
from nnexp.runs.console import TrainingProgress
from nnexp.runs.run import run
from nnexp.train.build import autocast_for
from nnexp.train.loop import evaluate, train_one_epoch

CLASSIFICATION = task_of("classification")
LANGUAGE_MODEL = task_of("language_model")

CPU = torch.device("cpu")
TINY_DIGITS = [
    "trainer.epochs=2",
    "trainer.batch_size=64",
    "device=cpu",
    "model.hidden=[32]",
    "optim.lr=0.01",
]


class Recorder(nn.Module):
    """A linear classifier that notes the dtype of its output and the grad mode of every call."""

    def __init__(self, inputs: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, classes)
        self.calls: list[tuple[torch.dtype, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        self.calls.append((y.dtype, torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
        return y


def classification_split(rows: int = 256) -> TensorSplit:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(rows, 4, generator=generator)
    return TensorSplit(inputs, inputs[:, :3].argmax(dim=1))


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_speed_options_are_off_by_default_and_presets_set_threads_on_the_trainer():
    trainer = compose_config().trainer
    assert (trainer.precision, trainer.compile, trainer.threads) == (32, False, "auto")
    gru = compose_config("experiment=time_machine_gru")
    assert gru.trainer.threads == 1 and "threads" not in gru.device  # one key for threads: trainer.threads


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.precision=16", "trainer.precision"),
        ("trainer.precision=fp8", "trainer.precision"),
        ("trainer.compile=yes", "trainer.compile"),
        ("trainer.threads=0", "trainer.threads"),
        ("trainer.threads=1.5", "trainer.threads"),
    ],
)
def test_bad_speed_settings_are_refused_by_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        check_config(compose_config(override))


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ('trainer.threads="2"', 'trainer.threads="2" is not allowed'),  # text, though it reads as 2
        ('trainer.threads=""', 'trainer.threads="" is not allowed'),
        ("trainer.threads=two", "trainer.threads=two is not allowed"),
    ],
)
def test_a_refused_value_that_is_text_looking_like_a_number_is_shown_quoted(override, said):
    with pytest.raises(ConfigError) as refused:
        check_config(compose_config(override))
    assert str(refused.value).startswith(said)


@pytest.mark.parametrize("override", ["trainer.precision=bf16", "trainer.precision=32", "trainer.threads=2"])
def test_good_speed_settings_pass_the_checks(override):
    check_config(compose_config(override))


def test_bf16_autocasts_the_training_and_evaluation_forward_passes():
    split, model = classification_split(), Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    bf16 = autocast_for("bf16", CPU)
    metrics = train_one_epoch(
        model, split.batches(64), F.cross_entropy, optimizer, CLASSIFICATION, autocast=bf16
    )
    evaluated = evaluate(model, split, F.cross_entropy, CLASSIFICATION, 1024, autocast=bf16)
    assert [dtype for dtype, _, _ in model.calls] == [torch.bfloat16] * 5  # 4 training batches, 1 eval
    assert math.isfinite(metrics["loss"]) and math.isfinite(evaluated["loss"])
    assert model.linear.weight.dtype == torch.float32  # the weights stay float32; only the compute is bf16


def test_precision_32_leaves_the_forward_pass_in_float32():
    split, model = classification_split(), Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, split.batches(64), F.cross_entropy, optimizer, CLASSIFICATION,
                    autocast=autocast_for(32, CPU))  # fmt: skip
    assert {dtype for dtype, _, _ in model.calls} == {torch.float32}


def test_bf16_trains_a_language_model_with_a_carried_state():
    tokens = torch.arange(2000) % 17  # a repeating stream: easy to learn
    split = TokenSplit(tokens, num_steps=10, partition="sequential")
    torch.manual_seed(0)
    model = GRU((10,), 17, hidden_size=32, embedding_dim=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    bf16 = autocast_for("bf16", CPU)
    logits_dtypes = set()
    model.head.register_forward_hook(lambda module, args, output: logits_dtypes.add(output.dtype))
    before = evaluate(model, split, F.cross_entropy, LANGUAGE_MODEL, 8, autocast=bf16)["loss"]
    for epoch in range(3):
        batches = split.batches(8, torch.Generator().manual_seed(epoch))
        train_one_epoch(
            model, batches, F.cross_entropy, optimizer, LANGUAGE_MODEL, carry_state=True, autocast=bf16
        )
    after = evaluate(model, split, F.cross_entropy, LANGUAGE_MODEL, 8, autocast=bf16)["loss"]
    assert math.isfinite(after) and after < before / 2
    assert logits_dtypes == {torch.bfloat16}


def test_a_run_with_precision_bf16_trains_as_float32_does_and_records_it(tmp_path):
    bf16 = run(compose_config(*TINY_DIGITS, "trainer.precision=bf16"), tmp_path / "run", Console(quiet=True))
    fp32 = run(compose_config(*TINY_DIGITS), tmp_path / "fp32", Console(quiet=True))
    assert bf16.status == "completed" and bf16.metrics["val_accuracy"] > 0.8
    for name in ("train_loss", "val_loss", "test_loss"):
        # Same seed and data: bf16 rounding moves the losses a little, and only a little.
        assert bf16.metrics[name] != fp32.metrics[name]
        assert bf16.metrics[name] == pytest.approx(fp32.metrics[name], rel=0.05)
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["trainer"]["precision"] == "bf16"  # a resumed run keeps its precision


@pytest.mark.slow  # the first torch.compile of a graph takes tens of seconds on 2 cores
def test_a_run_with_compile_trains_a_compiled_model_and_keeps_plain_checkpoints(tmp_path):
    cfg = compose_config(*TINY_DIGITS, "trainer.compile=true", "trainer.epochs=1", "regularization=none")
    result = run(cfg, tmp_path / "run", Console(quiet=True))
    assert result.status == "completed" and math.isfinite(result.metrics["train_loss"])
    assert result.model._compiled_call_impl is not None  # nn.Module.compile() compiled it in place
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert not any(key.startswith("_orig_mod.") for key in checkpoint["model"])  # loads without compile


def test_trainer_threads_sets_torchs_cpu_threads_for_the_run_and_gives_the_callers_back(
    tmp_path, restore_threads
):
    torch.set_num_threads(3)
    one = run(compose_config(*TINY_DIGITS, "trainer.epochs=1", "trainer.threads=1"), tmp_path / "one",
              Console(quiet=True))  # fmt: skip
    assert one.summary["provenance"]["threads"] == 1
    assert torch.get_num_threads() == 3  # a notebook's count, or torch's, is back after the run
    null = run(compose_config(*TINY_DIGITS, "trainer.epochs=1", "trainer.threads=null"), tmp_path / "null",
               Console(quiet=True))  # fmt: skip
    assert null.summary["provenance"]["threads"] == 3  # not the run before's 1


def test_evaluation_runs_under_inference_mode():
    split, model = classification_split(), Recorder()
    evaluate(model, split, F.cross_entropy, CLASSIFICATION, 100)
    assert len(model.calls) == 3  # 256 rows in batches of 100
    assert all(inference and not grad for _, grad, inference in model.calls)
    lm = GRU((5,), 7, hidden_size=8)
    seen = []
    lm.register_forward_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
    evaluate(lm, TokenSplit(torch.arange(200) % 7, 5, "sequential"), F.cross_entropy, LANGUAGE_MODEL, 4)
    assert seen and all(seen)


def test_the_training_step_reads_nothing_back_from_the_device_per_batch(monkeypatch):
    """Metrics are summed on the device; the only reads are the epoch's totals (loss and accuracy)."""
    reads = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or item(self))
    split, model = classification_split(1024), Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, split.batches(32, torch.Generator().manual_seed(0)), F.cross_entropy, optimizer,
                    CLASSIFICATION)  # fmt: skip
    assert len(model.calls) == 32 and len(reads) == 2


def test_the_progress_bar_reads_the_loss_only_when_it_refreshes(monkeypatch):
    reads = []
    loss = torch.tensor(0.5)
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or 0.5)
    monkeypatch.setattr(console_module.time, "monotonic", lambda: 1000.0)  # the clock stands still
    shown = Console(force_terminal=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed below
    with TrainingProgress(shown, epochs=1, batches_per_epoch=100) as progress:
        progress.start_epoch(1)
        for _ in range(100):
            progress.on_batch(loss)
    shown.file.close()
    assert len(reads) == 1  # the first batch shows a loss; the next refresh is 0.25 s later


def test_help_and_cfg_job_do_not_import_torch(tmp_path):
    for args in (["--help"], ["--cfg", "job"]):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "nnexp", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        imported = set(re.findall(r"\|\s*([\w.]+)\s*$", result.stderr, flags=re.M))
        assert "nnexp.cli.command" in imported  # the listing is real
        assert not imported & {"torch", "torchvision", "pandas", "sklearn", "matplotlib"}, args
        if args == ["--help"]:
            assert "hydra" not in imported  # answered from configs/ before Hydra starts


def test_the_benchmark_table_reads_every_figure_as_a_ratio_of_times():
    """benchmarks/run.py imports, and its ratios compare times (a rate is inverted first)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    sys.path.insert(0, str(path.parent))  # the suite imports its sibling benchmark modules
    try:
        spec = importlib.util.spec_from_file_location("nnexp_benchmark_suite", path)
        suite = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(suite)
    finally:
        sys.path.remove(str(path.parent))
    epoch = {"what": "mlp", "unit": "s/epoch", "runner": 1.0, "hand": 0.5, "floor": 0.25, "lecture": 8.0}
    epoch["lightning"] = 2.5  # an optional column: `-` where Lightning is not installed
    rate = {"what": "gru", "unit": "tokens/s", "runner": 900.0, "hand": 1000.0, "floor": 1800.0}
    lines = suite.format_rows([epoch, rate]).splitlines()
    assert len(lines) == 4
    assert [cell.strip() for cell in lines[2].split("|")[-6:-1]] == ["2.00x", "4.00x", "8.00x", "2.50x", ""]
    assert [cell.strip() for cell in lines[3].split("|")[-6:-1]] == ["1.11x", "2.00x", "-", "-", ""]
