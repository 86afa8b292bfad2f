"""Decode one untrusted image file into a clean RGB picture, and resize it by one documented policy.

Every caller that starts from raw file bytes (ingestion, training, prediction, the CLI) goes through
``load_image`` so that a picture looks the same to the model wherever it came from.
"""
from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}  # compare lower-cased
RESIZE_POLICIES = ("center_crop", "pad", "stretch")
DEFAULT_KEEP_SIZE = 512

# Only the decoders behind IMAGE_EXTENSIONS are offered to Pillow: other plugins (EPS runs Ghostscript,
# for one) are attack surface we do not need. The JPEG opener also returns MPO, which phone cameras write.
_ALLOWED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
_RESAMPLE = Image.Resampling.LANCZOS
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class ImageError(ValueError):
    """A file that cannot be used as an image; ``reason`` says why in plain words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_image(data: bytes, *, max_pixels: int = 40_000_000, max_bytes: int = 50_000_000,
                 keep_size: int | None = DEFAULT_KEEP_SIZE) -> Image.Image:
    """Decode untrusted file bytes into an upright RGB image.

    Args:
        data: the whole file.
        max_pixels: refuse images whose declared width x height is larger, before decoding the pixels.
        max_bytes: refuse files larger than this.
        keep_size: if not None, downscale (never upscale) so the shorter side is at most this many pixels.

    Returns a loaded ``PIL.Image.Image`` in mode RGB: EXIF orientation applied, transparency composited
    on white, high bit depths scaled to 8 bits, the first frame of an animation.

    Raises ImageError (with ``.reason``) for anything that is not a usable image.
    """
    if not data:
        raise ImageError("empty file")
    if len(data) > max_bytes:
        raise ImageError(f"file too large: {_megabytes(len(data), round_up=True)} MB, "
                         f"limit {_megabytes(max_bytes)} MB")
    non_image = _sniff_markup(data)
    if non_image:
        raise ImageError(non_image)

    image = _open_checked(data, max_pixels)
    if keep_size is not None:
        # JPEG can decode straight to a smaller power-of-two scale: far less memory for camera photos.
        scale = keep_size / min(image.size)
        if scale < 1:
            image.draft(None, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    try:
        image.load()
    except Exception as error:  # Pillow's decoders raise a zoo of types for broken input.
        raise ImageError(_corrupt_reason(error)) from None

    image = _upright(image)
    image = _to_rgb(image)
    if keep_size is not None and min(image.size) > keep_size:
        scale = keep_size / min(image.size)
        new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(new_size, _RESAMPLE, reducing_gap=3.0)
    return image


def resize_image(img: Image.Image, size: int, policy: str = "center_crop") -> np.ndarray:
    """Resize a picture to a ``size`` x ``size`` uint8 RGB array.

    Policies: ``"center_crop"`` (default) scales the shorter side to ``size`` and crops the centre;
    ``"pad"`` scales the longer side to ``size`` and letterboxes with black; ``"stretch"`` ignores aspect.
    """
    _check_size_and_policy(size, policy)
    img = _to_rgb(img)
    if policy == "center_crop":
        resized = ImageOps.fit(img, (size, size), method=_RESAMPLE, centering=(0.5, 0.5))
    elif policy == "pad":
        resized = ImageOps.pad(img, (size, size), method=_RESAMPLE, color=(0, 0, 0), centering=(0.5, 0.5))
    else:
        resized = img.resize((size, size), _RESAMPLE)
    return np.array(resized, dtype=np.uint8)


def load_image(data: bytes, size: int, policy: str = "center_crop", **limits) -> np.ndarray:
    """Decode file bytes and resize them: the one path every caller uses for a raw file.

    ``limits`` are passed to ``decode_image`` (``max_pixels``, ``max_bytes``, ``keep_size``). The default
    ``keep_size`` never drops below ``size``, so the intermediate downscale cannot cost resolution.
    """
    _check_size_and_policy(size, policy)
    limits.setdefault("keep_size", max(size, DEFAULT_KEEP_SIZE))
    return resize_image(decode_image(data, **limits), size, policy)


def _check_size_and_policy(size, policy) -> None:
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(RESIZE_POLICIES)}; got {policy!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer number of pixels; got {size!r}")


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only, and refuse images whose declared size is over the limit."""
    try:
        # Pillow's own guard warns past MAX_IMAGE_PIXELS and raises past twice that; both mean "too big".
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        match = re.search(r"\((\d+) pixels\)", str(error))
        pixels = match.group(1) if match else "more than the limit of"
        pillow_limit = Image.MAX_IMAGE_PIXELS or max_pixels
        if isinstance(error, Image.DecompressionBombError):
            pillow_limit *= 2
        raise ImageError(f"image too large: {pixels} pixels, limit {min(max_pixels, pillow_limit)}") from None
    except UnidentifiedImageError:
        raise ImageError(_unrecognised_reason(data)) from None
    except Exception as error:
        raise ImageError(_corrupt_reason(error)) from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise ImageError(f"image too large: {pixels} pixels, limit {max_pixels}")
    if pixels == 0:
        raise ImageError("truncated or corrupt image (zero width or height)")
    return image


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # A broken EXIF block should not cost the user a good picture: keep it as stored.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    has_alpha = mode in _ALPHA_MODES or (mode == "P" and (
        "transparency" in image.info or (image.palette is not None and image.palette.mode == "RGBA")))
    has_alpha = has_alpha or (mode in ("L", "RGB") and "transparency" in image.info)
    try:
        if has_alpha:
            # Composite on white: a transparent background shown as black would become a feature.
            foreground = image.convert("RGBA")
            canvas = Image.new("RGBA", foreground.size, (255, 255, 255, 255))
            canvas.alpha_composite(foreground)
            return canvas.convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError):
        raise ImageError(f"unsupported colour mode {mode}") from None


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale one channel of 16-bit, 32-bit or float samples to 0..255."""
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return (values >> 8).astype(np.uint8)
    is_float = values.dtype.kind == "f"
    values = values.astype(np.float32)
    finite = np.isfinite(values)
    low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    if is_float and 0.0 <= low and high <= 1.0:
        scaled = values * 255.0
    elif 0.0 <= low and high <= 255.0:
        scaled = values
    elif 0.0 <= low and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)


def _sniff_markup(data: bytes) -> str | None:
    """Recognise SVG and HTML by their opening text: Pillow would only say 'cannot identify'."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg") or (head.startswith((b"<?xml", b"<!doctype svg")) and b"<svg" in head):
        return "SVG is not supported"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
            head.startswith(b"<") and b"<html" in head):
        return "not an image (looks like HTML)"
    return None


def _unrecognised_reason(data: bytes) -> str:
    head = data[:2048]
    if head.startswith(b"%PDF"):
        return "not an image (looks like PDF)"
    if head.startswith(b"%!PS"):
        return "PostScript/EPS is not supported"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return ("HEIC/HEIF (a phone's photo format) is not supported: convert to JPEG or PNG (on an iPhone, "
                "Settings > Camera > Formats > Most Compatible takes JPEG photos)")
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF is not supported: convert to JPEG or PNG"
    if head.startswith(b"PK\x03\x04"):
        return "not an image (looks like a zip file)"
    if _looks_like_text(head):
        return "not an image (looks like text)"
    return "not an image (unrecognised file format)"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # Cutting at 2048 bytes can split a character; a clean prefix still counts as text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return printable >= 0.95 * max(1, len(text))


def _corrupt_reason(error: Exception) -> str:
    detail = str(error).strip()
    if not detail or "truncated" in detail.lower():
        return "truncated or corrupt image"
    return f"truncated or corrupt image ({detail[:120]})"


def _megabytes(count: int, round_up: bool = False) -> str:
    """Bytes as MB for messages; sizes over a limit round up so they never print equal to it."""
    tenths = math.ceil(count / 100_000) if round_up else count // 100_000
    return f"{tenths / 10:.1f}".removesuffix(".0")
