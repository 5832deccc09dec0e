"""nnexp-predict reads an image file as the user meant it, whatever its pixel format (issue 23).

The same digit is the same digit as an 8-bit or 16-bit PNG, with a palette, with a transparent background,
as CMYK, stored sideways with an EXIF orientation or as the first frame of an animation: each reads as the
plain grey PNG does and gets its class. What looks unlike the training images (light on dark) gets one line
in nnexp's words: a light background, dark strokes on a transparent one, a picture far larger than the
training size. A decompression bomb is refused from its header in one line, exit 2, with no PIL text.

One short digits run (3 epochs), trained in this process once; 15 of scikit-learn's digits drawn 8 times
larger (64x64), ink bright on a dark background as in the data.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nnexp
from conftest import exit_code_of
from nnexp.data.digits import PIXEL_MAX, digits_arrays
from nnexp.errors import DataError
from nnexp.look import images_in
from nnexp.look.images_in import image_pixels
from nnexp.look.predict import load_image, main, predict_images
from nnexp.look.saved import load_saved_run

ZOOM = 8  # 64x64 drawings of the 8x8 digits: at the size warning's threshold, not over it


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits") / "run"
    return nnexp.run(["trainer.epochs=3", "outputs.views=false"], output_dir=folder).run_dir


@pytest.fixture(scope="module")
def saved(run):
    return load_saved_run(run)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """15 digits as grey levels 0..16, each 64x64."""
    images = digits_arrays()[0][:15]
    return np.stack([np.kron(image, np.ones((ZOOM, ZOOM))) for image in images])


def grey8(levels: np.ndarray) -> np.ndarray:
    return np.round(levels * 255 / PIXEL_MAX).astype(np.uint8)


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def classes(saved, paths: list[Path], invert: bool = False) -> list[str]:
    return list(predict_images(saved, paths, invert)["predicted"])


def main_exit(*args: object) -> int:
    return exit_code_of(main, *args)


def test_a_16_bit_png_is_scaled_by_its_full_range_and_gets_the_8_bit_pngs_classes(
    saved, digits, tmp_path, capsys
):
    eight = [save(Image.fromarray(grey8(d)), tmp_path / f"d{i}_8bit.png") for i, d in enumerate(digits)]
    sixteen = [
        save(Image.fromarray(np.round(d * 65535 / PIXEL_MAX).astype(np.uint16)), tmp_path / f"d{i}_16bit.png")
        for i, d in enumerate(digits)
    ]
    assert Image.open(sixteen[0]).mode in ("I;16", "I")  # really 16 bits a pixel (Pillow < 10 says "I")
    for levels, path8, path16 in zip(digits, eight, sixteen, strict=True):
        exact = torch.tensor(levels[None, ::ZOOM, ::ZOOM] / PIXEL_MAX, dtype=torch.float32)
        # the data's scale; value / 65535, not clipped at 255: a 16-bit digit is the digit, to a 65535th
        torch.testing.assert_close(load_image(path16, saved.spec), exact, atol=1e-4, rtol=0)
        torch.testing.assert_close(load_image(path8, saved.spec), exact, atol=0.5 / 255 + 1e-6, rtol=0)
    assert classes(saved, sixteen) == classes(saved, eight)
    assert capsys.readouterr().err == ""  # plain digits at 8 times the training size: nothing to warn about


def test_palette_transparent_cmyk_and_exif_rotated_copies_of_a_digit_get_the_plain_ones_class(
    saved, digits, tmp_path
):
    plain, copies = [], {}
    for i, levels in enumerate(digits):
        grey = Image.fromarray(grey8(levels))
        plain.append(save(grey, tmp_path / f"plain{i}.png"))
        palette = grey.convert("P")
        background = int(np.asarray(palette)[grey8(levels) == 0][0])  # the palette entry of black
        orientation = Image.Exif()
        orientation[0x0112] = 6  # "rotate 90 degrees clockwise to show"
        sideways = grey.transpose(Image.Transpose.ROTATE_90)  # stored as a camera held sideways does
        white = Image.new("L", grey.size, 255)
        made = {
            "palette": save(palette, tmp_path / f"palette{i}.png"),
            "palette, transparent background": save(
                palette, tmp_path / f"palette_t{i}.png", transparency=background
            ),
            "RGBA, white ink, opacity as grey": save(
                Image.merge("RGBA", [white, white, white, grey]), tmp_path / f"rgba{i}.png"
            ),
            "LA, white ink, opacity as grey": save(Image.merge("LA", [white, grey]), tmp_path / f"la{i}.png"),
            "EXIF-rotated": save(sideways, tmp_path / f"exif{i}.png", exif=orientation),
            "CMYK JPEG": save(grey.convert("RGB").convert("CMYK"), tmp_path / f"cmyk{i}.jpg", quality=95),
        }
        for kind, path in made.items():
            copies.setdefault(kind, []).append(path)
    expected = classes(saved, plain)
    for kind, paths in copies.items():
        assert classes(saved, paths) == expected, kind
        if kind != "CMYK JPEG":  # lossless: the very pixels, to a grey level
            for path, original in zip(paths, plain, strict=True):
                torch.testing.assert_close(
                    load_image(path, saved.spec), load_image(original, saved.spec), atol=1.01 / 255, rtol=0,
                    msg=kind,
                )  # fmt: skip


def test_16_bit_and_float_pixel_modes_are_read_by_their_full_range():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every grey level once
    plain = image_pixels(Image.fromarray(levels), 1)
    big_endian = (levels.astype(">u2") * 257).tobytes()  # 257 * v: v on 0..255 is v * 257 on 0..65535
    modes = {
        "I;16": Image.fromarray(levels.astype(np.uint16) * 257),
        "I;16B": Image.frombytes("I;16B", (16, 16), big_endian),
        "I": Image.fromarray(levels.astype(np.int32) * 257),
        "F on 0..1": Image.fromarray(levels.astype(np.float32) / 255),
        "F on 0..255": Image.fromarray(levels.astype(np.float32)),
        "1": Image.fromarray(levels).point(lambda v: 255 if v >= 128 else 0).convert("1"),
    }
    for mode, image in modes.items():
        expected = (plain >= 0.5).astype(np.float32) if mode == "1" else plain
        np.testing.assert_allclose(image_pixels(image, 1), expected, atol=1e-6, err_msg=mode)
        assert image_pixels(image, 3).shape == (16, 16, 3), mode  # a grey image for an RGB run
    np.testing.assert_allclose(image_pixels(modes["I;16"], 1, invert=True), 1 - plain, atol=1e-6)


def test_dark_strokes_on_a_transparent_background_are_named_and_invert_reads_them(saved, digits, tmp_path):
    """Transparent pixels become the training images' dark background (so dark strokes on them need
    --invert, as on white paper)."""
    ink = Image.fromarray(grey8(digits[0]))  # opacity: where the digit is drawn
    black = Image.new("L", ink.size, 0)
    drawing = save(Image.merge("RGBA", [black, black, black, ink]), tmp_path / "pen.png")
    plain = save(Image.fromarray(grey8(digits[0])), tmp_path / "plain.png")
    notes: list[str] = []
    load_image(drawing, saved.spec, warn=notes.append)
    assert len(notes) == 1 and "pen.png" in notes[0] and "transparent background" in notes[0], notes
    assert "pass --invert" in notes[0]
    notes.clear()
    inverted = load_image(drawing, saved.spec, invert=True, warn=notes.append)
    assert notes == []
    torch.testing.assert_close(inverted, load_image(plain, saved.spec), atol=1.01 / 255, rtol=0)


def test_an_animated_image_gives_its_first_frame_and_says_so(saved, digits, tmp_path, capsys):
    first, second = Image.fromarray(grey8(digits[0])), Image.fromarray(grey8(digits[1]))
    animated = save(first, tmp_path / "animated.png", save_all=True, append_images=[second])
    plain = save(first, tmp_path / "plain.png")
    assert classes(saved, [animated]) == classes(saved, [plain])
    err = capsys.readouterr().err
    assert err.startswith("nnexp: warning: ") and err.count("\n") == 1
    assert "animated.png is animated (2 frames): only its first frame is used" in err


def test_a_light_background_gets_one_warning_line_suggesting_invert(run, saved, digits, tmp_path, capsys):
    paper = save(Image.fromarray(255 - grey8(digits[2])), tmp_path / "on_paper.png")  # dark ink on white
    plain = save(Image.fromarray(grey8(digits[2])), tmp_path / "plain.png")
    assert main_exit(run, paper) == 0
    out, err = capsys.readouterr()
    assert "1 predictions" in out
    assert err.startswith(f"nnexp: warning: {paper} has a light background"), err
    assert err.count("\n") == 1 and "light background" in err and "pass --invert" in err
    assert main_exit(run, paper, "--invert") == 0
    assert capsys.readouterr().err == ""
    assert classes(saved, [paper], invert=True) == classes(saved, [plain])
    assert main_exit(run, plain, "--invert") == 0  # a dark background made light by --invert
    assert "leave out --invert" in capsys.readouterr().err


def test_an_image_far_larger_than_the_training_size_gets_a_warning(saved, digits, tmp_path):
    at_threshold = save(Image.fromarray(grey8(digits[3])), tmp_path / "64.png")  # 8 times 8x8: fine
    larger = save(Image.fromarray(grey8(digits[3])).resize((80, 80), Image.NEAREST), tmp_path / "80.png")
    notes: list[str] = []
    load_image(at_threshold, saved.spec, warn=notes.append)
    assert notes == []
    load_image(larger, saved.spec, warn=notes.append)
    assert notes == [
        f"{larger} is 80x80 pixels, 10 times the 8x8 the run was trained on: shrinking it averages thin "
        f"strokes away; crop it to the drawing, or draw thicker"
    ]


def test_a_refused_image_is_the_only_line_even_beside_one_that_warns(run, digits, tmp_path, capsys):
    paper = save(Image.fromarray(255 - grey8(digits[4])), tmp_path / "on_paper.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    before = sorted(tmp_path.iterdir())
    assert main_exit(run, paper, broken, "--out", tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnexp: error: ") and "broken.png" in err, err
    assert sorted(tmp_path.iterdir()) == before


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(width: int, height: int) -> bytes:
    """The signature and header of a 1-bit greyscale PNG."""
    return PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid black 1-bit PNG of width x height pixels: a few dozen KB on disk, written a row at a time
    (PIL would hold a byte per pixel in memory to write it)."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(png_header(width, height) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_from_its_header_in_one_line_exit_2(run, tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png", 20_000, 20_000)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(Image.DecompressionBombError):  # what reached the user before: PIL's traceback
        Image.open(bomb)
    command = shutil.which("nnexp-predict")
    command = [command] if command else [sys.executable, "-m", "nnexp.look.predict"]
    environment = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    result = subprocess.run([*command, str(run), str(bomb), "--out", str(tmp_path / "out.csv")],
                            capture_output=True, text=True, timeout=120, env=environment)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"nnexp: error: {bomb} is 20000x20000 pixels, over nnexp-predict's limit of "
        f"{images_in.MAX_PIXELS:,} pixels: resize it first (the run was trained on 8x8 images)\n"
    )
    assert "PIL" not in result.stderr and "Decompression" not in result.stderr and result.stdout == ""
    assert sorted(tmp_path.iterdir()) == [bomb]


def test_the_size_limit_is_nnexps_own_checked_before_decoding(saved, digits, tmp_path, monkeypatch):
    """PIL's check is not what decides (nor what speaks); nnexp's limit is met from the header alone."""
    image = save(Image.fromarray(grey8(digits[5])), tmp_path / "digit.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # 64x64 is over twice it: PIL would refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning of PIL's either
        load_image(image, saved.spec, warn=pytest.fail)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # PIL's setting is put back
    garbage = tmp_path / "garbage.png"  # a header, then no pixels: reading them would fail
    garbage.write_bytes(png_header(64, 64) + png_chunk(b"IDAT", b"not pixels") + png_chunk(b"IEND", b""))
    monkeypatch.setattr(images_in, "MAX_PIXELS", 64 * 63)
    for path in (image, garbage):
        with pytest.raises(DataError, match=r"is 64x64 pixels, over nnexp-predict's limit of 4,032"):
            load_image(path, saved.spec)
