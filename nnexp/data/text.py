"""Text as one stream of token ids: a tokenizer, a vocabulary, and the d2l book's two minibatch schemes.

The default source is the Dive into Deep Learning copy of H. G. Wells' *The Time Machine*, downloaded
into `data.root` and checked against its sha1; `data.path` reads any other text file as it is.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from nnexp.data import DataBundle, DataSpec
from nnexp.data.files import refuse_compressed
from nnexp.errors import DataError

Partition = Literal["random", "sequential"]
UNK = "<unk>"
DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class Tokenizer:
    """The lecture's preprocessing: per line, runs of `replace` become one space, strip, lower-case."""

    token: Literal["char", "word"] = "char"
    replace: str | None = "[^A-Za-z]+"  # a regex; null keeps every character
    lowercase: bool = True

    def lines(self, text: str) -> list[str]:
        pattern = re.compile(self.replace) if self.replace else None
        lines = [pattern.sub(" ", line) if pattern else line for line in text.splitlines()]
        return [line.strip().lower() if self.lowercase else line.strip() for line in lines]

    def tokenize(self, text: str) -> list[str]:
        # As in the lecture, lines are joined without a separator: a line's last word runs into the next.
        if self.token == "char":
            return [char for line in self.lines(text) for char in line]
        return [word for line in self.lines(text) for word in line.split()]

    def join(self, tokens: list[str]) -> str:
        return ("" if self.token == "char" else " ").join(tokens)


class Vocab:
    """Token <-> id. Id 0 is `<unk>`, then the reserved tokens, then the rest by falling frequency."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.ids = {token: index for index, token in enumerate(tokens)}

    @classmethod
    def build(cls, tokens: list[str], min_freq: int = 0, reserved_tokens: tuple[str, ...] = ()) -> Vocab:
        # sorted() is stable, so tokens of equal count keep the order they first appear in (as d2l).
        counts = sorted(collections.Counter(tokens).items(), key=lambda item: item[1], reverse=True)
        ordered = [UNK, *dict.fromkeys(token for token in reserved_tokens if token != UNK)]
        ordered += [token for token, count in counts if count >= min_freq and token not in ordered]
        return cls(ordered)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.ids.get(token, 0) for token in tokens]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.tokens[index] for index in ids]


def sequential_batches(
    corpus: torch.Tensor, batch_size: int, num_steps: int, offset: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """d2l's seq_data_iter_sequential: row i of batch k+1 continues row i of batch k."""
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = corpus[offset : offset + num_tokens].view(batch_size, -1)  # (B, L)
    ys = corpus[offset + 1 : offset + 1 + num_tokens].view(batch_size, -1)
    for start in range(0, (xs.shape[1] // num_steps) * num_steps, num_steps):
        yield xs[:, start : start + num_steps], ys[:, start : start + num_steps]  # (B, T) each


def random_batches(
    corpus: torch.Tensor, batch_size: int, num_steps: int, offset: int, order: torch.Tensor
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """d2l's seq_data_iter_random: subsequence `order[j]` after `offset`, so adjacent batches are unrelated.

    `order` is a permutation of the subsequence numbers 0 .. (len(corpus) - offset - 1) // num_steps - 1.
    """
    steps = torch.arange(num_steps, device=corpus.device)
    starts = offset + order.to(corpus.device) * num_steps
    for first in range(0, (len(order) // batch_size) * batch_size, batch_size):
        positions = starts[first : first + batch_size, None] + steps  # (B, T)
        yield corpus[positions], corpus[positions + 1]


class TokenSplit:
    """A stretch of the token stream, cut into (B, T) batches of inputs and next-token targets.

    `batches(batch_size, generator)` draws a random offset (and for `random` an order) from the
    generator; without one it starts at 0 in order, which is how evaluation reads a split.
    """

    def __init__(self, tokens: torch.Tensor, num_steps: int, partition: Partition) -> None:
        self.tokens = tokens
        self.num_steps = num_steps
        self.partition = partition

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def carries_state(self) -> bool:
        """Whether a batch continues the previous one, so the hidden state should be carried over."""
        return self.partition == "sequential"

    def to(self, device: torch.device) -> TokenSplit:
        return TokenSplit(self.tokens.to(device), self.num_steps, self.partition)

    def num_batches(self, batch_size: int) -> int:
        """Batches at offset 0; a random offset may leave one fewer. 0: too short for one batch, which
        training refuses before it starts (config/data_fit.py)."""
        if self.partition == "sequential":
            return ((len(self) - 1) // batch_size) // self.num_steps
        return ((len(self) - 1) // self.num_steps) // batch_size

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.partition == "sequential":
            offset = 0 if generator is None else _randint(self.num_steps + 1, generator)
            return sequential_batches(self.tokens, batch_size, self.num_steps, offset)
        offset = 0 if generator is None else _randint(self.num_steps, generator)
        num_subsequences = (len(self) - offset - 1) // self.num_steps
        order = (
            torch.arange(num_subsequences)
            if generator is None
            else torch.randperm(num_subsequences, generator=generator)
        )
        return random_batches(self.tokens, batch_size, self.num_steps, offset, order)


def _randint(high: int, generator: torch.Generator) -> int:
    """A whole number in [0, high)."""
    return int(torch.randint(high, (1,), generator=generator))


@dataclass
class TextBundle(DataBundle):
    """A DataBundle of TokenSplits, with the vocabulary and tokenizer that turn ids back into text."""

    vocab: Vocab = field(default_factory=lambda: Vocab([UNK]))
    tokenizer: Tokenizer = field(default_factory=Tokenizer)

    def to(self, device: torch.device) -> TextBundle:
        moved = {name: split.to(device) for name, split in self.splits().items()}
        return dataclasses.replace(self, **moved)

    def vocab_record(self) -> dict[str, Any]:
        """What `vocab.json` in the run folder holds: enough to encode a prompt and decode ids later."""
        return {"tokenizer": dataclasses.asdict(self.tokenizer), "tokens": self.vocab.tokens}


def read_text(source: Path) -> str:
    """The file as text; a compressed or binary file is refused, not trained on as replacement characters.

    A few bytes that are not UTF-8 (a Latin-1 accent) are replaced: the tokenizer turns them into spaces.
    """
    refuse_compressed(source, f"data.path={source}", "give the text file")
    raw = source.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    unreadable = text.count("\ufffd") + text.count("\x00")
    if unreadable > max(10, len(text) // 100):
        raise DataError(
            f"data.path={source}: {unreadable:,} of its {len(text):,} characters are not UTF-8 text; "
            f"give a plain text file (convert it with iconv -t UTF-8)"
        )
    return text


def load_text(
    path: str | None,
    root: str,
    url: str,
    sha1: str | None,
    token: Literal["char", "word"],
    replace: str | None,
    lowercase: bool,
    min_freq: int,
    reserved_tokens: list[str],
    max_tokens: int | None,
    val_fraction: float,
    num_steps: int,
    partition: Partition,
) -> TextBundle:
    """Tokenise the text at `path` (or the downloaded default), keep `max_tokens`, hold out the tail."""
    if path is None:
        source = Path(root) / Path(url).name
        fetch(url, source, sha1)
    else:
        source = Path(path)
        if not source.is_file():
            raise DataError(f"data.path={path}: no such file; point data.path at a text file")
    text = read_text(source)

    tokenizer = Tokenizer(token, replace, lowercase)
    tokens = tokenizer.tokenize(text)
    if not tokens:
        raise DataError(f"{source}: no {token} tokens are left after preprocessing")
    vocab = Vocab.build(tokens, min_freq, tuple(reserved_tokens))
    corpus = torch.tensor(vocab.encode(tokens), dtype=torch.long)
    if max_tokens is not None:
        corpus = corpus[:max_tokens]

    num_val = int(len(corpus) * val_fraction)
    train = TokenSplit(corpus[: len(corpus) - num_val], num_steps, partition)
    val = TokenSplit(corpus[len(corpus) - num_val :], num_steps, partition) if num_val else None
    spec = DataSpec(
        name=source.stem,
        task="language_model",
        input_shape=(num_steps,),
        num_outputs=len(vocab),
        sizes={"train": len(train), **({"val": len(val)} if val else {})},  # tokens
        details={
            "path": str(source.resolve()),
            "token": token,
            "vocab_size": len(vocab),
            "num_tokens": len(corpus),
            "most_frequent": vocab.tokens[1:11],
            "partition": partition,
            "validation": f"the last {val_fraction:.0%} of the tokens" if val else "none",
        },
    )
    return TextBundle(spec, train, val, None, vocab=vocab, tokenizer=tokenizer)


def fetch(url: str, target: Path, sha1: str | None) -> None:
    """Make sure `target` holds the file at `url`: download it if absent; check its sha1 either way."""
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
                partial.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError, ValueError) as error:
            partial.unlink(missing_ok=True)
            reason = getattr(error, "reason", None) or error
            raise DataError(
                f"could not download {url} to {target} ({reason}); copy the file there, "
                f"or point data.path at a local copy"
            ) from None
        try:
            verify_sha1(partial, sha1, shown_as=target)
        except DataError:
            partial.unlink()
            raise
        partial.replace(target)
        return
    verify_sha1(target, sha1)


def verify_sha1(path: Path, expected: str | None, shown_as: Path | None = None) -> None:
    if expected is None:
        return
    actual = hashlib.sha1(path.read_bytes()).hexdigest()
    if actual != expected.lower():
        raise DataError(
            f"{shown_as or path}: sha1 {actual} does not match the expected {expected} "
            f"(a truncated download or an error page?); delete it to download again, "
            f"or point data.path at a good copy"
        )
