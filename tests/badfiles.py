"""Generates the bad-file corpus at test time: real files that users upload, good and broken, nothing committed."""
from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def encode(image: Image.Image, fmt: str, **save_options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def solid(colour=RED, size=(48, 40), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def noise(size=(64, 64), seed=0) -> Image.Image:
    """Noise compresses badly, so a file cut in half really misses image data."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def jpeg(colour=RED, size=(48, 40)) -> bytes:
    return encode(solid(colour, size), "JPEG", quality=95)


def png(colour=RED, size=(48, 40)) -> bytes:
    return encode(solid(colour, size), "PNG")


def truncated_jpeg() -> bytes:
    data = encode(noise(), "JPEG", quality=95)
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    data = encode(noise(), "PNG")
    return data[: len(data) // 2]


def text_file() -> bytes:
    return b"This is a shopping list, not a picture.\nmilk\neggs\n" * 5


def html_page() -> bytes:
    return b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not found</body></html>\n"


def svg_drawing() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n')


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A tiny valid-looking PNG whose header claims a huge picture (RGB, 8 bits)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixel_rows = zlib.compress(b"\x00" * 1000)  # far too little data, but decoding must never start
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixel_rows)
            + png_chunk(b"IEND", b""))


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG", quality=95)  # red in CMYK


def png_16bit(value=65535) -> bytes:
    image = Image.fromarray(np.full((32, 40), value, dtype=np.uint16))
    assert image.mode == "I;16"
    return encode(image, "PNG")


def palette_with_transparency() -> bytes:
    """Palette PNG: left half transparent (index 0), right half red (index 1)."""
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    image.paste(1, (20, 0, 40, 40))
    return encode(image, "PNG", transparency=0)


def rgba_png() -> bytes:
    """Left half fully transparent black, right half opaque blue."""
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((*BLUE, 255), (20, 0, 40, 40))
    return encode(image, "PNG")


def grey_png(level=128) -> bytes:
    return encode(Image.new("L", (40, 40), level), "PNG")


def bilevel_png() -> bytes:
    return encode(Image.new("1", (40, 40), 1), "PNG")


def grey_alpha_png() -> bytes:
    return encode(Image.new("LA", (40, 40), (0, 0)), "PNG")  # fully transparent -> white


def animated_gif() -> bytes:
    """Three frames: red, green, blue. Only the first (red) may be used."""
    frames = [solid(colour, (40, 40)) for colour in (RED, GREEN, BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    """Stored 60 wide x 40 high with a red block top-left; EXIF orientation 6 (rotate 90 degrees clockwise).

    Shown upright it is 40 wide x 60 high with the red block top-right.
    """
    image = solid(BLUE, (60, 40))
    image.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def other_format(fmt: str, colour=GREEN) -> bytes:
    return encode(solid(colour, (40, 40)), fmt)


# What a folder of user files looks like: (path, bytes, expectation), where the expectation is
# "keep", "ignore" (clutter: neither kept nor reported) or a word the skip reason must contain.
def corpus() -> list[tuple[str, bytes, str]]:
    return [
        ("cats/plain.jpg", jpeg(), "keep"),
        ("cats/UPPER.JPG", jpeg(), "keep"),
        ("cats/long.jpeg", jpeg(), "keep"),
        ("cats/LONG.JPEG", jpeg(), "keep"),
        ("cats/mixed.Png", png(), "keep"),
        ("cats/cmyk.jpg", cmyk_jpeg(), "keep"),
        ("cats/rotated.jpg", exif_rotated_jpeg(), "keep"),
        ("cats/truncated.jpg", truncated_jpeg(), "truncated"),
        ("cats/list.jpg", text_file(), "text"),
        ("cats/notes.txt", text_file(), "not an image file (.txt)"),
        ("cats/._plain.jpg", b"\x00\x05\x16\x07AppleDouble", "ignore"),
        ("cats/Thumbs.db", b"\xd0\xcf\x11\xe0" + b"\x00" * 60, "ignore"),
        ("chats noirs/rgba.png", rgba_png(), "keep"),
        ("chats noirs/palette.png", palette_with_transparency(), "keep"),
        ("chats noirs/grey.png", grey_png(), "keep"),
        ("chats noirs/bilevel.png", bilevel_png(), "keep"),
        ("chats noirs/grey_alpha.png", grey_alpha_png(), "keep"),
        ("chats noirs/deep.png", png_16bit(), "keep"),
        ("chats noirs/page.png", html_page(), "HTML"),
        ("chats noirs/drawing.png", svg_drawing(), "SVG"),
        ("chats noirs/bomb.png", bomb_png(), "too large"),
        ("chats noirs/truncated.png", truncated_png(), "truncated"),
        ("chats noirs/empty.png", b"", "empty"),
        ("кошки/animated.gif", animated_gif(), "keep"),
        ("кошки/bitmap.bmp", other_format("BMP"), "keep"),
        ("кошки/modern.webp", other_format("WEBP"), "keep"),
        ("кошки/scan.tif", other_format("TIFF"), "keep"),
        ("кошки/scan2.tiff", other_format("TIFF"), "keep"),
        ("猫/one.png", png(GREEN), "keep"),
        ("猫/2024/nested.png", png(BLUE), "keep"),
        ("stray.png", png(), "not in a class folder"),
        (".DS_Store", b"\x00\x00\x00\x01Bud1", "ignore"),
        ("desktop.ini", b"[.ShellClassInfo]\n", "ignore"),
        (".hidden/secret.png", png(), "ignore"),
    ]


EMPTY_CLASS = "empty class"
CORPUS_CLASSES = sorted(["cats", "chats noirs", "кошки", "猫", EMPTY_CLASS])


def write_tree(root, files: list[tuple[str, bytes, str]], empty_folders=(EMPTY_CLASS,)) -> str:
    """Write the files (and the empty class folders) under root; return root."""
    root = os.fspath(root)
    for relative, data, _ in files:
        path = os.path.join(root, *relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    for folder in empty_folders:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    return root


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip in memory holding ``members`` (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
