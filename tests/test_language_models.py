"""Recurrent language models: the models, the hidden state in training, generation, and the CLI presets."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import nnexp
from conftest import copy_run, exit_code_of, read_summary
from nnexp.data.tasks import task_of
from nnexp.data.text import Tokenizer, TokenSplit, Vocab
from nnexp.errors import ConfigError, UserError
from nnexp.look.generate import main as generate_main
from nnexp.models.recurrent import GRU, LSTM, RNN
from nnexp.train.generation import generate
from nnexp.train.loop import evaluate, train_one_epoch

LANGUAGE_MODEL = task_of("language_model")
WORDS = [
    "the",
    "time",
    "traveller",
    "for",
    "so",
    "it",
    "will",
    "be",
    "convenient",
    "to",
    "speak",
    "of",
    "him",
    "was",
    "expounding",
    "a",
    "recondite",
    "matter",
    "to",
    "us",
    "his",
    "grey",
    "eyes",
    "shone",
    "and",
    "twinkled",
    "and",
    "his",
    "usually",
    "pale",
    "face",
    "was",
    "flushed",
    "and",
    "animated",
]
GENERATE = (
    [shutil.which("nnexp-generate")]
    if shutil.which("nnexp-generate")
    else [sys.executable, "-m", "nnexp.look.generate"]
)
# Small settings for smoke runs: the presets' batch shapes need more text than a test should train on.
SMALL = [
    "trainer.epochs=2",
    "trainer.batch_size=4",
    "data.num_steps=8",
    "trainer.max_batches_per_epoch=40",
    "generation.num_tokens=12",
]


def write_book(path: Path, words: int = 2500, seed: int = 0) -> Path:
    """A few pages of English-looking lines, built from one sentence's words."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(words // 12)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    return write_book(tmp_path_factory.mktemp("text") / "book.txt")


# --- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", [RNN, GRU, LSTM])
@pytest.mark.parametrize("embedding_dim", [None, 8])
def test_a_model_maps_token_ids_to_next_token_logits_and_hands_back_its_state(model_class, embedding_dim):
    model = model_class((35,), 28, hidden_size=16, num_layers=2, dropout=0.1, embedding_dim=embedding_dim)
    logits, state = model(torch.randint(28, (4, 7)))
    assert logits.shape == (4, 7, 28)
    h = state[0] if model_class is LSTM else state
    assert h.shape == (2, 4, 16)  # (layers, B, H)
    assert isinstance(model.rnn, {RNN: nn.RNN, GRU: nn.GRU, LSTM: nn.LSTM}[model_class])
    assert model.rnn.dropout == 0.1 and (model.embedding is None) == (embedding_dim is None)


def test_the_state_carries_the_context_from_one_call_to_the_next():
    torch.manual_seed(0)
    model = GRU((10,), 12, hidden_size=8).eval()
    tokens = torch.randint(12, (2, 10))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :6])
    rest, _ = model(tokens[:, 6:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)


# --- the hidden state in training ------------------------------------------------------------------


class StateSpy(nn.Module):
    """Wraps a model and records the state each call starts from."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.received: list[torch.Tensor | None] = []
        self.returned: list[torch.Tensor] = []

    def forward(self, tokens, state=None):
        self.received.append(state)
        logits, new_state = self.model(tokens, state)
        self.returned.append(new_state)
        return logits, new_state


@pytest.mark.parametrize("partition", ["sequential", "random"])
def test_sequential_batches_carry_the_state_detached_and_random_batches_start_from_zeros(partition):
    torch.manual_seed(0)
    spy = StateSpy(RNN((5,), 10, hidden_size=6))
    split = TokenSplit(torch.randint(1, 10, (400,)), num_steps=5, partition=partition)
    optimizer = torch.optim.SGD(spy.parameters(), lr=0.1)
    batches = list(split.batches(4, torch.Generator().manual_seed(0)))
    metrics = train_one_epoch(
        spy, batches, nn.functional.cross_entropy, optimizer, LANGUAGE_MODEL, carry_state=split.carries_state
    )
    assert metrics["tokens"] == len(batches) * 4 * 5
    assert spy.received[0] is None
    if partition == "sequential":
        for received, previous in zip(spy.received[1:], spy.returned[:-1], strict=True):
            torch.testing.assert_close(received, previous.detach())
            assert received.grad_fn is None and previous.grad_fn is not None
    else:
        assert all(state is None for state in spy.received)


def test_perplexity_is_the_exponential_of_the_mean_token_loss():
    torch.manual_seed(0)
    model = LSTM((5,), 10, hidden_size=6)
    split = TokenSplit(torch.randint(1, 10, (200,)), num_steps=5, partition="sequential")
    metrics = evaluate(model, split, nn.functional.cross_entropy, LANGUAGE_MODEL, batch_size=4)
    assert metrics["perplexity"] == pytest.approx(torch.tensor(metrics["loss"]).exp().item())
    assert 5 < metrics["perplexity"] < 20  # an untrained model is near uniform over 10 tokens


# --- generation ------------------------------------------------------------------------------------


class NextLetter(nn.Module):
    """Predicts the letter after the last one read, whatever came before."""

    def __init__(self, vocab: Vocab) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.successor = torch.tensor([vocab.ids.get(chr(ord(t) + 1), 0) if len(t) == 1 else 0
                                       for t in vocab.tokens])  # fmt: skip
        self.size = len(vocab)

    def forward(self, tokens, state=None):
        logits = nn.functional.one_hot(self.successor[tokens], self.size).float() * 10 + self.weight
        return logits, (state or 0) + tokens.shape[1]


def test_greedy_generation_continues_the_preprocessed_prefix_token_by_token():
    vocab = Vocab.build(list(" abcdefghij"))
    text = generate(NextLetter(vocab), vocab, Tokenizer(), "B-A, C!", num_tokens=5)
    assert text == "b a cdefgh"  # the prefix as the model reads it, then five predicted letters


def test_sampling_is_reproducible_with_a_seed_and_varies_with_temperature():
    torch.manual_seed(0)
    vocab = Vocab.build(list(" abcdefghij"))
    model = GRU((5,), len(vocab), hidden_size=8)

    def sample(seed, temperature):
        return generate(
            model, vocab, Tokenizer(), "abc", 30, temperature, torch.Generator().manual_seed(seed)
        )

    assert sample(1, 1.0) == sample(1, 1.0)
    assert len({sample(seed, 5.0) for seed in range(4)}) > 1
    assert model.training  # generation leaves the model as it found it


# --- the CLI ---------------------------------------------------------------------------------------


def metrics_rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / "metrics.csv").open()))


@pytest.fixture
def preset_run(book, session_runs):
    """The folder of a preset trained on the small book, once per session, in-process (nnexp.run). That a
    text run never imports torchvision is checked on a real process in tests/test_images.py."""

    def run(preset: str) -> Path:
        return session_runs(f"experiment={preset}", f"data.path={book}", *SMALL, "generation.every=1")

    return run


def generate_exit(*args: object) -> int:
    return exit_code_of(generate_main, *args)


@pytest.mark.parametrize("preset", ["time_machine_rnn", "time_machine_gru", "time_machine_lstm"])
def test_each_preset_trains_on_a_small_text_and_records_perplexity_and_samples(preset, preset_run):
    folder = preset_run(preset)
    rows = metrics_rows(folder)
    assert len(rows) == 2 and float(rows[-1]["train_perplexity"]) < float(rows[0]["train_perplexity"]) < 30
    assert int(rows[0]["tokens_per_s"]) > 0
    has_val = preset != "time_machine_rnn"  # the lecture's run trains on all 10,000 characters
    assert ("val_perplexity" in rows[0]) == has_val
    summary = read_summary(folder)
    assert summary["status"] == "completed" and summary["data"]["task"] == "language_model"
    assert summary["data"]["num_outputs"] == len(json.loads((folder / "vocab.json").read_text())["tokens"])
    final = summary["metrics"]["final"]
    assert final["train_perplexity"] == pytest.approx(torch.tensor(final["train_loss"]).exp().item())
    samples = (folder / "samples.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in samples] == ["epoch 1", "final"]
    assert all(line.split(": ", 1)[1].startswith("time traveller") for line in samples)
    # the run's log (printed to the console by the CLI) shows the sample too
    assert "sample (final): time traveller" in (folder / "nnexp.log").read_text()


def test_nnexp_generate_continues_a_prefix_from_a_finished_run(preset_run, capsys):
    folder = preset_run("time_machine_gru")
    assert generate_exit(folder, "--prefix", "The Time", "--num-tokens", "15") == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("the time") and len(text) == len("the time") + 15
    # The run's own final sample came from the same checkpoint and vocabulary, greedily.
    final = (folder / "samples.txt").read_text().splitlines()[-1].removeprefix("final: ")
    assert generate_exit(folder, "--prefix", "time traveller", "--num-tokens", "12") == 0
    assert capsys.readouterr().out.strip() == final


def test_nnexp_generate_on_a_folder_without_a_run_exits_2_with_one_line(tmp_path):
    """The installed command, as a process: exit code 2 and one line naming the missing checkpoint."""
    missing = subprocess.run([*GENERATE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "checkpoint.pt" in missing.stderr
    assert missing.stderr.startswith("nnexp: error: ") and missing.stdout == ""


@pytest.mark.parametrize(
    ("damaged", "content"),
    [
        ("vocab.json", b'{"tokens": ["a", '),  # cut off mid-write
        ("vocab.json", b"[1, 2, 3]\n"),  # JSON, but not a vocabulary
        ("vocab.json", b"\xff\xfe\x00garbage"),  # not text
        ("checkpoint.pt", bytes(range(256)) * 8),  # not an archive torch.save wrote
    ],
)
def test_nnexp_generate_names_a_damaged_run_file_in_one_line(preset_run, tmp_path, capsys, damaged, content):
    copy = copy_run(preset_run("time_machine_gru"), tmp_path / "run")
    (copy / damaged).write_bytes(content)
    assert generate_exit(copy) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("nnexp: error: "), err
    assert damaged in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content", [b"<!DOCTYPE html><html><body>Access Denied</body></html>\n", b"The Time Tra"]
)
def test_a_corrupted_or_html_file_at_the_default_path_is_refused_with_the_checksum(
    content, tmp_path, monkeypatch
):
    root = tmp_path / "data"
    root.mkdir()
    (root / "timemachine.txt").write_bytes(content)
    monkeypatch.setenv("NNEXP_DATA_ROOT", str(root))
    with pytest.raises(UserError) as refused:
        nnexp.run(["data=time_machine", "model=rnn"], output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    [line] = str(refused.value).splitlines()
    assert line.startswith(f"{root / 'timemachine.txt'}: sha1 {hashlib.sha1(content).hexdigest()}")
    assert "090b5e7e70c295757f55df93cb0a180b9691891a" in line
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_the_default_source_is_downloaded_into_data_root_when_missing(book, tmp_path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(book.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{book.name}"
        sha1 = hashlib.sha1(book.read_bytes()).hexdigest()
        args = [
            "data=time_machine",
            "model=gru",
            "model.hidden_size=8",
            f"data.url={url}",
            f"data.sha1={sha1}",
        ]
        result = nnexp.run(
            [*args, f"data.root={tmp_path / 'root'}", *SMALL[1:], "trainer.epochs=1"],
            output_dir=tmp_path / "run",
        )
    finally:
        server.shutdown()
    assert result.status == "completed"
    assert (tmp_path / "root" / book.name).read_bytes() == book.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data=time_machine", "model=mlp"], "data=time_machine is token data and model=mlp is not"),
        (["model=gru"], "model=gru is a language model and needs token data"),
        (
            ["data=time_machine", "model=rnn", "data.partition=shuffled"],
            "data.partition=shuffled is not allowed",
        ),
        (
            ["data=time_machine", "model=lstm", "trainer.batch_size=full"],
            "trainer.batch_size=full does not apply",
        ),
    ],
)
def test_mismatched_settings_are_refused_before_anything_runs(args, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        nnexp.run(args, output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_a_validation_tail_too_short_for_one_batch_is_refused_before_training(book, tmp_path):
    overrides = ["experiment=time_machine_gru", f"data.path={book}", "data.val_fraction=0.01"]
    with pytest.raises(UserError) as refused:
        nnexp.run(overrides, output_dir=tmp_path / "run")
    assert refused.value.exit_code == 2
    assert "trainer.batch_size=32 x data.num_steps=35 needs more than 1,120 tokens" in str(refused.value)
    assert not (tmp_path / "run" / "metrics.csv").exists()
