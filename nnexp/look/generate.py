"""`nnexp-generate RUN_DIR`: continue a prefix with the language model a finished run saved.

nnexp-generate outputs/2026-11-23/08-00-00 --prefix "the time machine" --num-tokens 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nnexp.errors import DataError, UserError, exit_with, first_line

MAX_TOKENS = 100_000  # a book's chapter; more is a typo (it would run for hours, printing nothing)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="nnexp-generate", description="Continue a text prefix with a language model from a finished run."
    )
    parser.add_argument("run_dir", type=Path, help="a run folder of a language-model run (data=time_machine)")
    parser.add_argument("--prefix", default="time traveller", help="text to continue (default: %(default)s)")
    parser.add_argument("--num-tokens", type=int, default=100, help="tokens to add (default: %(default)s)")
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="0: most likely token (default); > 0: sample"
    )
    parser.add_argument("--seed", type=int, default=0, help="for sampling (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.num_tokens <= MAX_TOKENS or args.temperature < 0:
        parser.error(f"--num-tokens must be from 0 to {MAX_TOKENS:,} and --temperature >= 0")
    try:
        print(generate_from_run(args.run_dir, args.prefix, args.num_tokens, args.temperature, args.seed))
    except UserError as error:
        exit_with(error)


def generate_from_run(run_dir: Path, prefix: str, num_tokens: int, temperature: float, seed: int = 0) -> str:
    import torch

    from nnexp.data.text import Tokenizer, Vocab
    from nnexp.look.saved import load_saved_run
    from nnexp.runs.folder import CHECKPOINT_FILE, VOCAB_FILE
    from nnexp.train.generation import generate

    checkpoint_path, vocab_path = run_dir / CHECKPOINT_FILE, run_dir / VOCAB_FILE
    for needed in (checkpoint_path, vocab_path):
        if not needed.is_file():
            raise DataError(
                f"{needed} does not exist: give the folder of a finished language-model run "
                f"(one with {CHECKPOINT_FILE} and {VOCAB_FILE})"
            )
    try:
        record = json.loads(vocab_path.read_text(encoding="utf-8"))
        vocab, tokenizer = Vocab(record["tokens"]), Tokenizer(**record["tokenizer"])
    except (ValueError, KeyError, TypeError) as error:  # cut off, not JSON, or not a vocabulary
        raise DataError(
            f"{vocab_path} is damaged ({type(error).__name__}: {first_line(error)}); it is written when a "
            f"language-model run starts: run the experiment again"
        ) from None
    check_prefix(prefix, vocab, tokenizer)
    model = load_saved_run(run_dir).model
    return generate(
        model,
        vocab,
        tokenizer,
        prefix,
        num_tokens,
        temperature,
        torch.Generator().manual_seed(seed),
    )


def check_prefix(prefix: str, vocab: Any, tokenizer: Any) -> None:
    """DataError when the prefix, read as the run read its text, has no token the vocabulary knows: the
    model would start from <unk> alone and continue nothing that was given."""
    from nnexp.data.text import UNK

    tokens = tokenizer.tokenize(prefix)
    if any(token in vocab.ids and token != UNK for token in tokens):
        return
    unit = "character" if tokenizer.token == "char" else "word"
    known = [token for token in vocab.tokens if token != UNK]
    shown = ", ".join(repr(token) for token in known[:KNOWN_SHOWN])
    more = f" and {len(known) - KNOWN_SHOWN} more" if len(known) > KNOWN_SHOWN else ""
    read = f" once read as the run read its text ({_preprocessing(tokenizer)})" if prefix.strip() else ""
    raise DataError(
        f"the prefix {prefix[:40]!r} has no {unit} this run's vocabulary knows{read}; it knows "
        f"{shown}{more}: give a prefix written with them, e.g. --prefix {_example(known, tokenizer)!r}"
    )


KNOWN_SHOWN = 12  # the vocabulary's tokens named in the refusal, most frequent first


def _preprocessing(tokenizer: Any) -> str:
    steps = []
    if tokenizer.replace:
        steps.append(f"runs of {tokenizer.replace} become one space")
    if tokenizer.lowercase:
        steps.append("lower-cased")
    return ", ".join(steps) or "as it is"


def _example(known: list[str], tokenizer: Any) -> str:
    """A prefix of known tokens: the default one where it is known, else the most frequent tokens."""
    for example in ("time traveller", "the"):
        if all(token in known for token in tokenizer.tokenize(example)):
            return example
    return tokenizer.join([token for token in known if token.strip()][:3])


if __name__ == "__main__":
    main()
