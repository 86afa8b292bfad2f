"""A second small real-photo set, made like ../shared/tools/real_devset.py from other scikit-image photographs.

Usage: python -m bench.second_photo_set OUT_DIR [--size 64] [--train 10] [--test 40]
Writes OUT_DIR/train/<class>/*.png and OUT_DIR/test/<class>/*.png: 12 classes, one photograph each;
training crops from the left half, test crops from the right half, so no test pixel is seen in training.
A check that a choice tuned on one photo set is not tuned to it alone (README, recipe auto's table).
"""
import argparse
import os

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "grass", "gravel", "brick", "horse",
          "text", "clock", "logo")


def _rgb(picture) -> np.ndarray:
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        picture = picture.astype("float32")
        picture = (255 * (picture - picture.min()) / (picture.max() - picture.min() + 1e-9)).astype(np.uint8)
    if picture.ndim == 2:
        picture = np.stack([picture] * 3, -1)
    return picture[..., :3]


def main() -> None:
    import skimage.data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train", type=int, default=10)
    parser.add_argument("--test", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    for name in PHOTOS:
        picture = _rgb(getattr(skimage.data, name)())
        height, width = picture.shape[:2]
        side = min(args.size, height, width // 2)
        for part, half, count in (("train", 0, args.train), ("test", 1, args.test)):
            folder = os.path.join(args.out, part, name)
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                left = int(rng.integers(0, width // 2 - side + 1)) + half * (width // 2)
                top = int(rng.integers(0, height - side + 1))
                crop = Image.fromarray(picture[top:top + side, left:left + side]).resize((args.size, args.size))
                crop.save(os.path.join(folder, f"{index:03d}.png"))
    print(args.out)


if __name__ == "__main__":
    main()
