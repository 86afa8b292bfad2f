"""Decoding untrusted image bytes into clean RGB, and the one resize policy every caller shares."""
import warnings

import numpy as np
import pytest
from PIL import Image

import badfiles
from core.images import (IMAGE_EXTENSIONS, RESIZE_POLICIES, ImageError, decode_image, load_image,
                         resize_image)


def close(pixel, colour, tolerance=12):
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, colour))


GOOD = [(path, data) for path, data, expected in badfiles.corpus()
        if expected == "keep" and path.lower().endswith(tuple(IMAGE_EXTENSIONS))]
BAD = [(path, data, expected) for path, data, expected in badfiles.corpus()
       if expected not in ("keep", "ignore") and "class folder" not in expected
       and not expected.startswith("not an image file")]


@pytest.mark.parametrize("path,data", GOOD, ids=[path for path, _ in GOOD])
def test_every_good_file_decodes_to_rgb(path, data):
    image = decode_image(data)
    assert image.mode == "RGB" and min(image.size) > 0


@pytest.mark.parametrize("path,data,word", BAD, ids=[path for path, _, _ in BAD])
def test_every_bad_file_raises_image_error_with_a_reason(path, data, word):
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert word.lower() in caught.value.reason.lower()
    assert isinstance(caught.value, ValueError) and str(caught.value) == caught.value.reason


def test_specific_reasons_read_as_plain_words():
    reasons = {}
    for name, data in [("empty", b""), ("html", badfiles.html_page()), ("svg", badfiles.svg_drawing()),
                       ("text", badfiles.text_file()), ("truncated", badfiles.truncated_jpeg())]:
        with pytest.raises(ImageError) as caught:
            decode_image(data)
        reasons[name] = caught.value.reason
    assert reasons == {"empty": "empty file", "html": "not an image (looks like HTML)",
                       "svg": "SVG is not supported", "text": "not an image (looks like text)",
                       "truncated": "truncated or corrupt image"}


def test_heic_and_avif_are_refused_with_advice():
    """HEIC stays refused (see README, "Pictures"): a phone photo gets the way to a JPEG, not "corrupt"."""
    for brand, words in ((b"heic", "HEIC/HEIF (a phone's photo format) is not supported: convert to JPEG or PNG"),
                         (b"mif1", "Most Compatible"), (b"avif", "AVIF is not supported: convert to JPEG or PNG")):
        box = (24).to_bytes(4, "big") + b"ftyp" + brand + b"\0\0\0\0" + brand + bytes(64)
        with pytest.raises(ImageError) as caught:
            decode_image(box)
        assert words in caught.value.reason


def test_cmyk_jpeg_becomes_red_rgb():
    image = decode_image(badfiles.cmyk_jpeg())
    assert image.mode == "RGB" and close(image.getpixel((20, 20)), (255, 0, 0), 20)


def test_16_bit_png_is_scaled_not_clipped():
    assert close(decode_image(badfiles.png_16bit(65535)).getpixel((0, 0)), (255, 255, 255), 1)
    assert close(decode_image(badfiles.png_16bit(32768)).getpixel((0, 0)), (128, 128, 128), 1)
    assert close(decode_image(badfiles.png_16bit(1000)).getpixel((0, 0)), (4, 4, 4), 1)


@pytest.mark.parametrize("data,opaque", [(badfiles.palette_with_transparency(), badfiles.RED),
                                         (badfiles.rgba_png(), badfiles.BLUE)])
def test_transparency_is_composited_on_white(data, opaque):
    image = decode_image(data)
    assert image.getpixel((5, 20)) == (255, 255, 255)
    assert close(image.getpixel((35, 20)), opaque, 1)


def test_grey_and_bilevel_become_rgb():
    assert decode_image(badfiles.grey_png(90)).getpixel((3, 3)) == (90, 90, 90)
    assert decode_image(badfiles.bilevel_png()).getpixel((3, 3)) == (255, 255, 255)
    assert decode_image(badfiles.grey_alpha_png()).getpixel((3, 3)) == (255, 255, 255)


def test_animated_gif_uses_the_first_frame():
    assert close(decode_image(badfiles.animated_gif()).getpixel((20, 20)), badfiles.RED, 3)


def test_exif_orientation_is_applied():
    image = decode_image(badfiles.exif_rotated_jpeg(), keep_size=None)
    assert image.size == (40, 60)  # stored 60x40, orientation 6 turns it upright
    assert close(image.getpixel((30, 10)), badfiles.RED, 20)  # the marker moved top-left -> top-right
    assert close(image.getpixel((10, 10)), badfiles.BLUE, 20)
    assert close(image.getpixel((20, 50)), badfiles.BLUE, 20)


def test_pixel_limit_is_checked_from_the_header():
    with pytest.raises(ImageError, match=r"image too large: 49000000 pixels, limit 40000000"):
        decode_image(badfiles.bomb_png(7000, 7000))
    with pytest.raises(ImageError, match=r"image too large: 1920 pixels, limit 100"):
        decode_image(badfiles.png(size=(48, 40)), max_pixels=100)


def test_pillow_bomb_guard_is_reported_not_warned():
    # 100 million pixels: over Pillow's own warning threshold but under a raised max_pixels.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match=r"image too large: 100000000 pixels, limit 89478485"):
            decode_image(badfiles.bomb_png(10_000, 10_000), max_pixels=500_000_000)
        with pytest.raises(ImageError, match=r"image too large: 10000000000 pixels"):
            decode_image(badfiles.bomb_png(), max_pixels=500_000_000)


def test_byte_limit():
    with pytest.raises(ImageError, match=r"^file too large: 1.5 MB, limit 1 MB$"):
        decode_image(b"\xff" * 1_500_000, max_bytes=1_000_000)


def test_keep_size_downscales_the_shorter_side_and_never_upscales():
    wide = badfiles.png(size=(200, 100))
    assert decode_image(wide, keep_size=50).size == (100, 50)
    assert decode_image(wide, keep_size=500).size == (200, 100)
    assert decode_image(wide, keep_size=None).size == (200, 100)
    photo = badfiles.encode(badfiles.noise((800, 600)), "JPEG")  # goes through JPEG draft decoding
    assert decode_image(photo, keep_size=100).size == (133, 100)


def three_blocks() -> Image.Image:
    """90x30: red, green, blue squares side by side."""
    image = Image.new("RGB", (90, 30), badfiles.RED)
    image.paste(badfiles.GREEN, (30, 0, 60, 30))
    image.paste(badfiles.BLUE, (60, 0, 90, 30))
    return image


def test_center_crop_keeps_the_middle():
    array = resize_image(three_blocks(), 16)
    assert array.shape == (16, 16, 3) and array.dtype == np.uint8
    # Edge pixels blend a little with the cropped-off neighbours (the filter reaches past the crop box).
    assert close(array[2, 2], badfiles.GREEN, 3) and close(array[13, 13], badfiles.GREEN, 3)


def test_pad_letterboxes_with_black():
    array = resize_image(three_blocks(), 30, "pad")
    assert tuple(array[0, 15]) == (0, 0, 0) and tuple(array[29, 15]) == (0, 0, 0)
    assert close(array[15, 2], badfiles.RED, 3) and close(array[15, 27], badfiles.BLUE, 3)


def test_stretch_ignores_aspect():
    array = resize_image(three_blocks(), 30, "stretch")
    assert close(array[0, 2], badfiles.RED, 3) and close(array[29, 27], badfiles.BLUE, 3)
    assert close(array[15, 15], badfiles.GREEN, 3)


def test_unknown_policy_names_the_allowed_ones():
    with pytest.raises(ValueError) as caught:
        resize_image(three_blocks(), 16, "zoom")
    assert all(policy in str(caught.value) for policy in RESIZE_POLICIES) and "zoom" in str(caught.value)
    with pytest.raises(ValueError, match="size"):
        resize_image(three_blocks(), 0)


def test_resize_accepts_any_mode():
    assert resize_image(Image.new("RGBA", (20, 10), (0, 0, 0, 0)), 8)[4, 4].tolist() == [255, 255, 255]


def test_load_image_is_decode_then_resize():
    data = badfiles.exif_rotated_jpeg()
    for policy in RESIZE_POLICIES:
        expected = resize_image(decode_image(data, keep_size=None), 24, policy)
        np.testing.assert_array_equal(load_image(data, 24, policy), expected)
    assert load_image(badfiles.png(size=(900, 700)), 600).shape == (600, 600, 3)
    with pytest.raises(ImageError, match="too large"):
        load_image(badfiles.png(), 24, max_pixels=10)
