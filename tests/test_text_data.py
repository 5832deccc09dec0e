"""Text data: the lecture's tokenizer and vocabulary, the d2l minibatch schemes, download and checksum."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from nnexp.config.data_fit import check_token_batches
from nnexp.data.text import (
    UNK,
    Tokenizer,
    TokenSplit,
    Vocab,
    fetch,
    load_text,
    random_batches,
    sequential_batches,
)
from nnexp.errors import ConfigError, DataError

TOY = torch.arange(35)  # the lecture's toy sequence


def as_lists(batches) -> list[tuple[list[list[int]], list[list[int]]]]:
    return [(x.tolist(), y.tolist()) for x, y in batches]


def shifted(rows: list[list[int]]) -> list[list[int]]:
    return [[token + 1 for token in row] for row in rows]


# --- tokenizer and vocabulary ---------------------------------------------------------------------


def test_the_lecture_preprocessing_maps_non_letters_to_one_space_per_line_and_lower_cases():
    text = "The Time Machine, by H. G. Wells [1898]\n\n  I.  \nThe Time-Traveller's"
    tokenizer = Tokenizer()
    assert tokenizer.lines(text) == ["the time machine by h g wells", "", "i", "the time traveller s"]
    # Lines are joined without a separator, as the lecture does: "wells" runs into "i".
    assert "".join(tokenizer.tokenize(text)) == "the time machine by h g wellsithe time traveller s"
    assert Tokenizer(token="word").tokenize(text)[-6:] == ["wells", "i", "the", "time", "traveller", "s"]


def test_preprocessing_is_configurable():
    text = "Hello, World!\n"
    assert Tokenizer(replace=None, lowercase=False).tokenize(text) == list("Hello, World!")
    assert Tokenizer(token="word", replace="[^A-Za-z,]+").tokenize(text) == ["hello,", "world"]
    assert Tokenizer(token="word").join(["a", "b"]) == "a b" and Tokenizer().join(["a", "b"]) == "ab"


def test_the_vocabulary_puts_unk_then_reserved_tokens_then_tokens_by_falling_frequency():
    tokens = list("abbcccdddd") + ["e"]
    vocab = Vocab.build(tokens, reserved_tokens=("<bos>",))
    assert vocab.tokens == [UNK, "<bos>", "d", "c", "b", "a", "e"]  # a and e tie: first seen first
    assert vocab.encode(["d", "zzz", "<bos>"]) == [2, 0, 1]
    assert vocab.decode([2, 3, 0]) == ["d", "c", UNK]


def test_min_freq_sends_rare_tokens_to_unk():
    vocab = Vocab.build(list("abbccc"), min_freq=2)
    assert vocab.tokens == [UNK, "c", "b"]
    assert vocab.encode(list("abc")) == [0, 2, 1]


# --- minibatches, derived by hand on range(35) with batch size 2 and 5 steps ---------------------


@pytest.mark.parametrize(
    ("offset", "inputs"),
    [
        # 34 usable tokens -> two rows of 17: 0..16 and 17..33 -> three batches of 5 columns.
        (0, [[[0, 1, 2, 3, 4], [17, 18, 19, 20, 21]],
             [[5, 6, 7, 8, 9], [22, 23, 24, 25, 26]],
             [[10, 11, 12, 13, 14], [27, 28, 29, 30, 31]]]),
        # From 2: 32 tokens -> rows 2..17 and 18..33.
        (2, [[[2, 3, 4, 5, 6], [18, 19, 20, 21, 22]],
             [[7, 8, 9, 10, 11], [23, 24, 25, 26, 27]],
             [[12, 13, 14, 15, 16], [28, 29, 30, 31, 32]]]),
        # From 5: 28 tokens -> rows 5..18 and 19..32 of 14 -> only two whole batches.
        (5, [[[5, 6, 7, 8, 9], [19, 20, 21, 22, 23]],
             [[10, 11, 12, 13, 14], [24, 25, 26, 27, 28]]]),
    ],
)  # fmt: skip
def test_sequential_batches_continue_each_other_row_by_row(offset, inputs):
    batches = as_lists(sequential_batches(TOY, batch_size=2, num_steps=5, offset=offset))
    assert batches == [(x, shifted(x)) for x in inputs]


def test_random_batches_take_subsequences_in_the_given_order_and_drop_the_incomplete_rest():
    # From 0: 34 // 5 = 6 subsequences starting at 0, 5, ..., 25; order 3,0 | 5,1 | 4,2.
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    expected = [
        [[15, 16, 17, 18, 19], [0, 1, 2, 3, 4]],
        [[25, 26, 27, 28, 29], [5, 6, 7, 8, 9]],
        [[20, 21, 22, 23, 24], [10, 11, 12, 13, 14]],
    ]
    assert as_lists(random_batches(TOY, 2, 5, offset=0, order=order)) == [(x, shifted(x)) for x in expected]
    # From 3: (35 - 3 - 1) // 5 = 6 subsequences at 3, 8, ..., 28; with 4 per batch one batch, 2 dropped.
    [(x, y)] = as_lists(random_batches(TOY, 4, 5, offset=3, order=torch.tensor([5, 4, 0, 1, 2, 3])))
    assert x == [[28, 29, 30, 31, 32], [23, 24, 25, 26, 27], [3, 4, 5, 6, 7], [8, 9, 10, 11, 12]]
    assert y == shifted(x)


def d2l_seq_data_iter_sequential(corpus, batch_size, num_steps, offset):
    """The book's function, with the random offset passed in."""
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = torch.tensor(corpus[offset : offset + num_tokens]).reshape(batch_size, -1)
    ys = torch.tensor(corpus[offset + 1 : offset + 1 + num_tokens]).reshape(batch_size, -1)
    num_batches = xs.shape[1] // num_steps
    for i in range(0, num_steps * num_batches, num_steps):
        yield xs[:, i : i + num_steps], ys[:, i : i + num_steps]


def test_a_sequential_split_draws_every_offset_from_0_to_num_steps_as_the_book_does():
    split = TokenSplit(TOY, num_steps=5, partition="sequential")
    seen = set()
    for seed in range(60):
        batches = as_lists(split.batches(2, torch.Generator().manual_seed(seed)))
        offset = batches[0][0][0][0]
        seen.add(offset)
        assert batches == as_lists(d2l_seq_data_iter_sequential(list(range(35)), 2, 5, offset))
    assert seen == set(range(6))  # randint(0, num_steps), both ends included
    assert split.carries_state


def test_a_random_split_draws_an_offset_below_num_steps_and_shuffles_whole_subsequences():
    split = TokenSplit(TOY, num_steps=5, partition="random")
    offsets, orders = set(), set()
    for seed in range(60):
        batches = as_lists(split.batches(2, torch.Generator().manual_seed(seed)))
        rows = [row for x, _ in batches for row in x]
        offset = rows[0][0] % 5
        offsets.add(offset)
        orders.add(tuple(row[0] for row in rows))
        assert all(row == list(range(row[0], row[0] + 5)) and row[0] % 5 == offset for row in rows)
        assert len({row[0] for row in rows}) == len(rows) == 2 * ((35 - offset - 1) // 5 // 2)
        assert all(y == shifted(x) for x, y in batches)
    assert offsets == set(range(5)) and len(orders) > 10
    assert not split.carries_state


def test_without_a_generator_a_split_is_read_in_order_from_its_start():
    split = TokenSplit(TOY, num_steps=5, partition="random")
    assert [x[0][0] for x, _ in as_lists(split.batches(2))] == [0, 10, 20]
    assert split.num_batches(2) == 3


def test_a_batch_larger_than_the_split_gives_no_batch_which_the_config_check_refuses():
    split = TokenSplit(TOY, num_steps=5, partition="sequential")
    assert split.num_batches(8) == 0 and split.num_batches(2) == 3
    with pytest.raises(ConfigError, match=r"batch_size=8 x data.num_steps=5 needs more than 40 tokens"):
        check_token_batches(8, split.num_steps, len(split), split.num_batches(8))


def test_load_text_holds_out_the_tail_and_caps_the_corpus(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("abcde fghij\n" * 100)  # 1,100 characters after the lecture preprocessing
    bundle = load_text(str(path), "unused", "http://unused/t.txt", "0" * 40, "char", "[^A-Za-z]+", True,
                       0, [], 1000, 0.1, 5, "random")  # fmt: skip
    assert len(bundle.train) == 900 and len(bundle.val) == 100
    assert bundle.spec.task == "language_model" and bundle.spec.num_outputs == len(bundle.vocab) == 12
    assert bundle.vocab.decode(bundle.val.tokens[:5].tolist()) == list("ijabc")  # characters 900-904
    assert bundle.test is None and set(bundle.splits()) == {"train", "val"}


# --- the default source: download and checksum ---------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/site; yields (folder, base URL)."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def test_the_default_source_is_downloaded_once_and_verified(served, tmp_path):
    site, base = served
    content = b"The Time Traveller (for so it will be convenient to speak of him)\n"
    (site / "timemachine.txt").write_bytes(content)
    target = tmp_path / "root" / "timemachine.txt"
    fetch(f"{base}/timemachine.txt", target, sha1(content))
    assert target.read_bytes() == content
    (site / "timemachine.txt").unlink()  # a second call reads the local copy, no download
    fetch(f"{base}/timemachine.txt", target, sha1(content))


def test_a_download_that_fails_the_checksum_is_refused_and_not_kept(served, tmp_path):
    site, base = served
    page = b"<html><body>403 Forbidden</body></html>"
    (site / "timemachine.txt").write_bytes(page)
    target = tmp_path / "root" / "timemachine.txt"
    expected = "090b5e7e70c295757f55df93cb0a180b9691891a"
    with pytest.raises(DataError) as error:
        fetch(f"{base}/timemachine.txt", target, expected)
    message = str(error.value)
    assert str(target) in message and expected in message and sha1(page) in message
    assert "\n" not in message
    assert list(target.parent.iterdir()) == []


def test_an_unreachable_source_is_one_line_that_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="could not download .* point data.path at a local copy"):
        fetch("http://127.0.0.1:9/timemachine.txt", tmp_path / "timemachine.txt", None)


def test_data_path_reads_any_text_without_a_checksum(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("not the time machine at all\n" * 20)
    bundle = load_text(str(path), str(tmp_path / "nowhere"), "http://127.0.0.1:9/timemachine.txt",
                       "090b5e7e70c295757f55df93cb0a180b9691891a", "word", "[^A-Za-z]+", True, 0, [],
                       None, 0.0, 3, "sequential")  # fmt: skip
    assert bundle.vocab.tokens[1:] == ["not", "the", "time", "machine", "at", "all"]
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(DataError, match="no such file"):
        load_text(
            str(tmp_path / "absent.txt"), "", "", None, "char", None, True, 0, [], None, 0.0, 3, "random"
        )


def test_the_real_text_gives_the_lecture_vocabulary():
    """On the real book (when this machine has a copy): 28 characters, 170,580 tokens."""
    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "timemachine.txt"
    if not real.is_file():
        pytest.skip(f"no copy of the book at {real}")
    bundle = load_text(str(real), "", "", None, "char", "[^A-Za-z]+", True, 0, [], None, 0.0, 35, "random")
    assert len(bundle.vocab) == 28 and bundle.spec.details["num_tokens"] == 170_580
    assert bundle.vocab.tokens[:5] == [UNK, " ", "e", "t", "a"]
    fetch("http://unused/timemachine.txt", real, "090b5e7e70c295757f55df93cb0a180b9691891a")  # passes
