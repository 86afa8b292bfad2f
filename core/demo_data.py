"""A built-in demo dataset that needs no download: generated pictures of shapes on busy backgrounds.

Each picture varies colour, size, position, rotation, background texture and pixel noise, so a model has
to learn the shape rather than a colour or a position. Picture i of a class depends only on
(seed, class, i): asking for more pictures per class keeps the first ones unchanged.
"""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw

from core import ingest

# Alphabetical, as every Dataset orders its classes: label k means the same shape whether the pictures
# come from generate() or from write_demo_data() read back by ingest.from_folder.
CLASSES = ("circle", "square", "star", "triangle")
_SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down, which anti-aliases their edges
_MIN_COLOUR_DISTANCE = 110.0  # shape vs background colour, in RGB units: keeps shapes visible
# Outer radius per shape relative to a circle's, chosen so all shapes cover about the same area:
# otherwise "big blob" would be a shortcut for "circle".
_RADIUS_FACTOR = {"circle": 0.8, "square": 1.0, "triangle": 1.2, "star": 1.2}


def generate(per_class: int = 30, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Generate ``per_class`` pictures of each shape in CLASSES.

    Returns ``(images, labels, classes)``: uint8 images (N, size, size, 3), int64 labels (N,) grouped by
    class, and the class names. The same seed gives identical bytes; a different seed different pictures.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer; got {per_class!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer of at least 16 pixels; got {size!r}")
    images = np.empty((len(CLASSES) * per_class, size, size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.int64), per_class)
    grid = _unit_grid(size)
    for label, shape in enumerate(CLASSES):
        for index in range(per_class):
            rng = np.random.default_rng([seed, label, index])
            images[label * per_class + index] = _picture(shape, size, rng, grid)
    return images, labels, list(CLASSES)


def as_dataset(per_class: int = 30, size: int = 64, seed: int = 0) -> ingest.Dataset:
    """The demo pictures as a Dataset, with paths like "circle/circle_000.png"."""
    images, labels, classes = generate(per_class, size, seed)
    paths = [_file_name(classes[label], index % per_class) for index, label in enumerate(labels)]
    return ingest.Dataset(images, labels, classes, paths, [], size)


def write_demo_data(out_dir, per_class: int = 30, size: int = 64, seed: int = 0) -> str:
    """Write ``out_dir/<class>/<class>_<i:03d>.png`` for every demo picture; return out_dir."""
    images, labels, classes = generate(per_class, size, seed)
    out_dir = os.fspath(out_dir)
    for name in classes:
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    for index, (picture, label) in enumerate(zip(images, labels)):
        relative = _file_name(classes[label], index % per_class)
        Image.fromarray(picture).save(os.path.join(out_dir, *relative.split("/")))
    return out_dir


def _file_name(shape: str, index: int) -> str:
    return f"{shape}/{shape}_{index:03d}.png"


def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in 0..1, shared by all the background textures of one size."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(axis, axis)  # x, y


def _picture(shape: str, size: int, rng: np.random.Generator, grid) -> np.ndarray:
    shape_colour = rng.uniform(0, 255, 3)
    background = _background(size, rng, grid, shape_colour)
    coverage = _shape_mask(shape, size, rng)[..., None]
    # Slight shading across the shape, so its colour is not one flat value either.
    shading = 1.0 + rng.uniform(-0.15, 0.15) * (grid[0] - 0.5)[..., None]
    foreground = np.clip(shape_colour * shading, 0, 255)
    picture = background * (1.0 - coverage) + foreground * coverage
    picture += rng.normal(0.0, rng.uniform(3.0, 10.0), picture.shape)
    return np.clip(picture, 0, 255).round().astype(np.uint8)


def _background(size: int, rng: np.random.Generator, grid, shape_colour: np.ndarray) -> np.ndarray:
    """A gradient, stripes or soft blobs in two colours that stay far from the shape's colour."""
    first, second = _distant_colour(rng, shape_colour), _distant_colour(rng, shape_colour)
    x, y = grid
    kind = rng.integers(3)
    if kind == 0:  # linear gradient at a random angle
        angle = rng.uniform(0, 2 * math.pi)
        mix = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle) + 0.5
    elif kind == 1:  # soft stripes at a random angle and frequency
        angle = rng.uniform(0, math.pi)
        frequency = rng.uniform(2.0, 6.0)
        phase = rng.uniform(0, 2 * math.pi)
        along = x * math.cos(angle) + y * math.sin(angle)
        mix = 0.5 + 0.5 * np.sin(2 * math.pi * frequency * along + phase)
    else:  # a few gaussian blobs
        mix = np.zeros_like(x)
        for _ in range(int(rng.integers(2, 6))):
            centre = rng.uniform(0, 1, 2)
            width = rng.uniform(0.1, 0.3)
            mix += np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * width ** 2))
        mix = mix / max(float(mix.max()), 1e-6)
    mix = np.clip(mix, 0.0, 1.0)[..., None]
    return first * (1.0 - mix) + second * mix


def _distant_colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - avoid) >= _MIN_COLOUR_DISTANCE:
            return colour
    return 255.0 - avoid  # the complement is always far enough


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Anti-aliased coverage in 0..1 of one randomly placed, sized and rotated shape."""
    big = size * _SUPERSAMPLE
    radius = rng.uniform(0.2, 0.32) * _RADIUS_FACTOR[shape] * big
    margin = radius + 0.04 * big
    centre_x, centre_y = rng.uniform(margin, big - margin, 2)
    rotation = rng.uniform(0, 2 * math.pi)
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse((centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius), fill=255)
    else:
        draw.polygon(_outline(shape, centre_x, centre_y, radius, rotation), fill=255)
    small = mask.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _outline(shape: str, centre_x: float, centre_y: float, radius: float, rotation: float) -> list[tuple]:
    if shape == "square":
        radii = [radius] * 4
    elif shape == "triangle":
        radii = [radius] * 3
    elif shape == "star":
        # Inner radius well under half the outer one keeps the points sharp even at 32 px.
        radii = [radius if point % 2 == 0 else radius * 0.42 for point in range(10)]
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(CLASSES)}")
    step = 2 * math.pi / len(radii)
    return [(centre_x + r * math.cos(rotation + k * step), centre_y + r * math.sin(rotation + k * step))
            for k, r in enumerate(radii)]
