"""Model builders: VGG16 with a freeze depth and a head, the convolutional autoencoder, and the
split of each at its freeze boundary into a frozen lower part and a trainable upper part.

Every classifier takes raw RGB pixels (float, 0..255) and does its own preprocessing inside the
model, so a raw image predicts the same through training, the CLI, the app and an exported file.
"""
from __future__ import annotations

import contextlib
import random as python_random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from core import backend  # noqa: F401  (sets TensorFlow's log level before keras loads it)
import keras
from keras import layers

from core import weights as weight_sources
# Where the ImageNet weights live and the error when they cannot be had belong to core.weights; the names
# stay reachable here for the callers that know them from this module.
from core.weights import IMAGENET_NOTOP_BYTES, IMAGENET_NOTOP_FILE, WeightsError, imagenet_cache_path  # noqa: F401

# VGG16's vocabulary, as keras.applications names its layers.
VGG16_BLOCKS = {1: (64, 2), 2: (128, 2), 3: (256, 3), 4: (512, 3), 5: (512, 3)}  # block -> (filters, convs)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
AUTOENCODER_FILTERS = (32, 64, 128)

ProgressFn = Callable[[float, str], None]


# ---------------------------------------------------------------------- preprocessing

def caffe_preprocess_layer(name: str = "caffe_preprocess") -> layers.Layer:
    """VGG16's preprocessing ('caffe' mode: RGB->BGR, subtract the ImageNet mean) as a fixed 1x1 conv.

    A built-in layer with frozen weights rather than a Lambda, so the saved model loads under
    safe_mode, exports to TFLite and behaves the same on every backend.
    """
    # Zero initialisers draw no random numbers, so a seeded model gets the same head weights as
    # plain Keras code that builds VGG16 and the same head without this layer.
    layer = layers.Conv2D(3, 1, use_bias=True, name=name, trainable=False, kernel_initializer="zeros",
                          bias_initializer="zeros")
    layer.build((None, None, None, 3))
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for out_channel, in_channel in enumerate((2, 1, 0)):  # output BGR from input RGB
        kernel[0, 0, in_channel, out_channel] = 1.0
    layer.set_weights([kernel, -np.asarray(CAFFE_MEAN_BGR, dtype="float32")])
    return layer


def caffe_preprocess(images: np.ndarray) -> np.ndarray:
    """The same preprocessing in NumPy (for checks; the models carry their own)."""
    images = np.asarray(images, dtype="float32")
    return images[..., ::-1] - np.asarray(CAFFE_MEAN_BGR, dtype="float32")


# ---------------------------------------------------------------------- power normalisation

@keras.saving.register_keras_serializable(package="transfer_studio")
class SignedSquareRoot(layers.Layer):
    """sign(x) * sqrt(|x|): power normalisation of pooled features (recipe auto's heads, core.auto).

    A registered layer rather than a Lambda, so a saved model loads under safe_mode wherever core.models
    is imported (prediction, evaluation, export).
    """

    def call(self, inputs):
        return keras.ops.sign(inputs) * keras.ops.sqrt(keras.ops.abs(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="transfer_studio")
class MirrorImage(layers.Layer):
    """The picture's mirror image (left and right swapped), for test-time mirror averaging (core.auto).

    Deterministic, unlike ``RandomFlip``, and registered, so a saved model loads under safe_mode.
    """

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


# ---------------------------------------------------------------------- parameter counts

def block_param_counts() -> list[dict]:
    """Parameters of each VGG16 conv block (independent of image size), for the freeze-depth diagram."""
    rows, in_channels = [], 3
    for block, (filters, convs) in VGG16_BLOCKS.items():
        params = 0
        for _ in range(convs):
            params += 3 * 3 * in_channels * filters + filters
            in_channels = filters
        rows.append({"block": block, "name": f"block{block}", "convs": convs, "filters": filters,
                     "params": params})
    return rows


def boundary_shape(freeze_depth: int, image_size: int) -> tuple[int, int, int]:
    """Shape of one image's activations at the freeze boundary (what the feature cache stores)."""
    if freeze_depth == 0:
        return (image_size, image_size, 3)
    side = image_size
    for _ in range(freeze_depth):
        side //= 2
    return (side, side, VGG16_BLOCKS[freeze_depth][0])


def head_param_count(head: str, image_size: int, n_classes: int) -> int:
    """Trainable parameters of a Keras head on top of block 5 (0 for the classical heads)."""
    channels = 512
    side = boundary_shape(5, image_size)[0]
    if head == "gap":
        return channels * n_classes + n_classes
    if head == "seed":
        flat = side * side * channels
        return flat * 1024 + 1024 + 1024 * n_classes + n_classes
    return 0


def freeze_summary(freeze_depth: int, image_size: int, n_classes: int, head: str = "gap") -> dict:
    """Frozen and trainable parameter counts per block plus the head, and the cache cut."""
    blocks = []
    for row in block_param_counts():
        blocks.append({**row, "frozen": row["block"] <= freeze_depth})
    frozen = sum(row["params"] for row in blocks if row["frozen"])
    trainable = sum(row["params"] for row in blocks if not row["frozen"])
    head_params = head_param_count(head, image_size, n_classes)
    cache_shape = boundary_shape(freeze_depth, image_size) if freeze_depth > 0 else None
    return {
        "blocks": blocks,
        "head": {"name": head, "params": head_params},
        "frozen_params": frozen,
        "trainable_params": trainable + head_params,
        "cache_cut": f"after block{freeze_depth}_pool" if freeze_depth > 0 else None,
        "cache_shape": list(cache_shape) if cache_shape else None,
        "cache_bytes_per_image": int(np.prod(cache_shape)) * 2 if cache_shape else 0,
    }


# ---------------------------------------------------------------------- VGG16

def load_vgg16_base(image_size: int, weights: str = "imagenet", progress: ProgressFn | None = None):
    """keras.applications.VGG16 without its top, with weights "imagenet", "none" or a file path.

    "imagenet" loads Keras's cache (~/.keras/models), else the server's $TRANSFER_STUDIO_WEIGHTS file, else
    downloads through Keras; where they come from is core.weights' concern. A WeightsError says in plain
    words what to choose instead. Inside ``reusing_bases()`` a base built by an earlier run of this process
    comes back as new instead (see there).
    """
    key = _base_key(image_size, weights) if _pool.active else None
    if key is not None:
        kept = next((entry for entry in _pool.bases if entry.key == key and not entry.lent), None)
        if kept is not None:
            kept.lend()
            return kept.base
    before = python_random.getstate()
    base = weight_sources.load_base(image_size, weights, progress)
    draws = _draws_between(before, python_random.getstate()) if key is not None else None
    if draws is not None:
        entry = _KeptBase(key, base, draws)
        entry.lent = True
        _pool.bases.append(entry)
        del _pool.bases[:-_pool.MAX_BASES]  # the oldest go: each holds two copies of VGG16's 58 MB
    return base


# ---------------------------------------------------------------------- the built VGG16, kept between runs

# A warm worker (core.workers) runs one training after another in one process; building VGG16 and reading its
# 58 MB of weights is most of a cached run's fixed cost (about 0.3-0.8 s on 2 cores). So a run borrows built
# bases (``reusing_bases``) and gives them back when it ends; the next run with the same image size and weights
# gets one as if it were new: its weights put back from a copy taken when it was built (fine-tuning changes
# them), every layer trainable again, and Python's random generator moved on as the build would have moved it
# (Keras draws each initializer's seed from it, so the head's start is the same as after a real build). Within
# one run every call gets a base of its own (recipe auto holds one for its features while another fine-tunes).

class _BasePool:
    MAX_BASES = 3

    def __init__(self):
        self.active = 0  # nesting depth of reusing_bases()
        self.bases: list[_KeptBase] = []

    def lent_entry_of(self, model: keras.Model) -> "_KeptBase | None":
        """The lent kept base whose layers ``model`` is built on, if any."""
        layers_of_model = {id(layer) for layer in model.layers}
        return next((entry for entry in self.bases if entry.lent
                     and any(id(layer) in layers_of_model for layer in entry.base.layers[1:])), None)


class _KeptBase:
    def __init__(self, key: tuple, base: keras.Model, draws: int):
        self.key, self.base, self.draws = key, base, draws
        self.weights = [np.array(w) for w in base.get_weights()]
        self.copies: dict[tuple, keras.Model] = {}  # reduced_precision_copy's, made from these weights
        self.lent = False

    def lend(self) -> None:
        self.base.set_weights(self.weights)
        self.base.trainable = True  # every layer, as keras.applications builds them
        for _ in range(self.draws):
            python_random.randint(1, int(1e9))  # what keras.random.make_default_seed draws per initializer
        self.lent = True


_pool = _BasePool()


@contextlib.contextmanager
def reusing_bases():
    """Within this context, ``load_vgg16_base`` hands out VGG16 bases kept from earlier contexts (a run's
    models are dropped when it ends), each at most once at a time; at its end every base lent goes back."""
    _pool.active += 1
    try:
        yield
    finally:
        _pool.active -= 1
        if not _pool.active:
            for entry in _pool.bases:
                entry.lent = False


def forget_kept_bases() -> None:
    """Drop every kept base (tests compare a run with and without one)."""
    _pool.bases.clear()


def _base_key(image_size: int, weights: str) -> tuple | None:
    """What a kept base must match: size, weights (a file by its path, size and time) and the dtype policy;
    None when a base must not be kept: random weights are drawn from the run's seed."""
    if weights == "none":
        return None
    found = weight_sources.imagenet_file() if weights == "imagenet" else (Path(weights).expanduser(), "file")
    if found is None or not found[0].is_file():
        return None  # a download or an error: nothing to keep yet
    stat = found[0].stat()
    return (image_size, str(found[0].resolve()), stat.st_size, stat.st_mtime_ns,
            keras.config.dtype_policy().name, keras.backend.backend())


def _draws_between(before, after, limit: int = 1000) -> int | None:
    """How many ``randint(1, 1e9)`` calls take Python's random generator from state ``before`` to ``after``."""
    replay = python_random.Random()
    replay.setstate(before)
    for draws in range(limit + 1):
        if replay.getstate() == after:
            return draws
        replay.randint(1, int(1e9))
    return None


def vgg16_layer_block(layer_name: str) -> int | None:
    if layer_name.startswith("block") and "_" in layer_name:
        return int(layer_name[5:layer_name.index("_")])
    return None


@dataclass
class SplitModel:
    """A classifier and the two halves it is made of, sharing the same layer objects.

    ``full`` maps raw images to class probabilities (what is saved and served). ``lower`` maps raw
    images to the activations at the freeze boundary (None when nothing is frozen) and ``upper``
    maps those activations to probabilities: training ``upper`` on cached activations trains the
    very same weights as training ``full`` on images.
    """

    full: keras.Model
    lower: keras.Model | None
    upper: keras.Model
    feature_layer: str  # the last conv layer (Grad-CAM) / the feature output for classical heads


def head_layers(head: str, n_classes: int, dropout: float, seed: int) -> list[layers.Layer]:
    """The Keras heads: 'gap' (GlobalAveragePooling -> Dropout -> Dense) and 'seed' (Flatten -> Dense 1024)."""
    if head == "gap":
        stack = [layers.GlobalAveragePooling2D(name="head_pool")]
        if dropout > 0:
            stack.append(layers.Dropout(dropout, seed=seed, name="head_dropout"))
    elif head == "seed":
        stack = [layers.Flatten(name="head_flatten"), layers.Dense(1024, activation="relu", name="head_dense")]
    elif head == "none":
        return []
    else:
        raise ValueError(f"head {head!r} is not a Keras head; allowed: gap, seed")
    # The GAP head's classifier starts at zero: every class equally likely, so the first loss is ln(classes)
    # (1.39 for 4) instead of 30-130 from random weights on VGG16's large activations, and on the demo data
    # the default recipe reached 79-88 % validation accuracy instead of 71-79 % (seeds 0 and 1). The seed
    # head keeps Keras's default initialiser: it is the seed's recipe, compared against plain Keras code.
    initializer = "zeros" if head == "gap" else "glorot_uniform"
    # float32 output keeps softmax stable under mixed precision
    return stack + [layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions",
                                 kernel_initializer=initializer)]


def augmentation_layers(seed: int) -> list[layers.Layer]:
    """Random flip, rotation and zoom; active in training only, identity at inference."""
    return [
        layers.RandomFlip("horizontal", seed=seed, name="augment_flip"),
        layers.RandomRotation(0.1, seed=seed, name="augment_rotation"),
        layers.RandomZoom(0.1, seed=seed, name="augment_zoom"),
    ]


def _split(stages: list[tuple[str, list]], boundary_index: int, image_size: int, head: str,
           n_classes: int, dropout: float, seed: int, feature_layer: str, name: str) -> SplitModel:
    """Wire stages of layers into full, lower and upper models that share the layer objects.

    ``stages`` is a list of (stage name, layers); stages[:boundary_index] are frozen and cached.
    """
    stages = stages + [("head", head_layers(head, n_classes, dropout, seed))]
    image_input = keras.Input((image_size, image_size, 3), name="image")
    x = image_input
    boundary = None
    for index, (_, stage_layers) in enumerate(stages):
        if index == boundary_index:
            boundary = x
        for layer in stage_layers:
            x = layer(x)
    full = keras.Model(image_input, x, name=name)

    if boundary_index == 0:
        return SplitModel(full=full, lower=None, upper=full, feature_layer=feature_layer)
    lower = keras.Model(image_input, boundary, name=f"{name}_frozen_part")
    upper_input = keras.Input(tuple(boundary.shape[1:]), name="boundary_features")
    x = upper_input
    for _, stage_layers in stages[boundary_index:]:
        for layer in stage_layers:  # the same layer objects: weights are shared with ``full``
            x = layer(x)
    upper = keras.Model(upper_input, x, name=f"{name}_trainable_part")
    return SplitModel(full=full, lower=lower, upper=upper, feature_layer=feature_layer)


def build_vgg16_classifier(n_classes: int, *, image_size: int = 64, weights: str = "imagenet",
                           freeze_depth: int = 5, head: str = "gap", dropout: float = 0.3,
                           augment: bool = False, seed: int = 0,
                           progress: ProgressFn | None = None) -> SplitModel:
    """VGG16 transfer model: raw image -> [augmentation] -> caffe preprocessing -> 5 conv blocks -> head.

    Args:
        n_classes: number of output classes (>= 2).
        image_size: square input size in pixels, 32..224.
        weights: "imagenet", "none" or the path of a VGG16 no-top weights file.
        freeze_depth: the first ``freeze_depth`` of the five conv blocks are frozen (0..5).
        head: "gap" or "seed" for a Keras head; "svm"/"random_forest" give the frozen blocks
            1..freeze_depth with a global-average-pooled feature output (the classical head is
            fitted outside Keras on the features at the freeze boundary).
        dropout: dropout rate of the gap head.
        augment: put random flip/rotation/zoom in front (then nothing can be cached).
    Returns:
        SplitModel whose ``lower`` covers preprocessing plus blocks 1..freeze_depth.
    """
    if not 0 <= freeze_depth <= 5:
        raise ValueError(f"freeze_depth must be 0..5, got {freeze_depth}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    base = load_vgg16_base(image_size, weights, progress)
    blocks: dict[int, list] = {b: [] for b in VGG16_BLOCKS}
    for layer in base.layers[1:]:
        block = vgg16_layer_block(layer.name)
        layer.trainable = block > freeze_depth
        blocks[block].append(layer)
    prefix = augmentation_layers(seed) if augment else []
    stages = [("input", prefix + [caffe_preprocess_layer()])]
    classical = head in ("svm", "random_forest")
    if classical and freeze_depth < 1:
        raise ValueError("the svm and random_forest heads need frozen features: freeze_depth 1..5")
    last_block = freeze_depth if classical else 5
    stages += [(f"block{b}", blocks[b]) for b in VGG16_BLOCKS if b <= last_block]
    if classical:
        stages.append(("features", [layers.GlobalAveragePooling2D(name="feature_pool")]))
    boundary_index = freeze_depth + 1 if freeze_depth > 0 else 0
    if augment:
        boundary_index = 0
    last_conv = f"block{last_block}_conv{VGG16_BLOCKS[last_block][1]}"
    return _split(stages, boundary_index, image_size, head if not classical else "none", n_classes,
                  dropout, seed, last_conv, "vgg16_transfer")


def set_freeze_depth(split: SplitModel, freeze_depth: int) -> None:
    """Re-freeze the VGG16 blocks of an existing model (two-phase fine-tuning)."""
    for layer in split.full.layers:
        block = vgg16_layer_block(layer.name)
        if block is not None:
            layer.trainable = block > freeze_depth


# ---------------------------------------------------------------------- autoencoder

# The decoder mirrors AUTOENCODER_FILTERS with narrower layers (most of its compute is at full resolution).
AUTOENCODER_DECODER_FILTERS = (64, 32, 16)
# BatchNormalization momentum: a small run has few steps (3 per epoch for 96 images), and the default
# 0.99 would leave the moving statistics, used at inference and after transfer, far from the data's.
AUTOENCODER_NORM_MOMENTUM = 0.9


def build_autoencoder(image_size: int, seed: int = 0) -> tuple[keras.Model, list[layers.Layer]]:
    """Convolutional autoencoder: raw image -> encoder -> bottleneck feature map -> decoder -> image in 0..1.

    Encoder: rescaling to 0..1, then per stage a 3x3 conv (ReLU), BatchNormalization and 2x2 max pooling,
    giving an (image_size/8, image_size/8, 128) bottleneck. The normalisation makes the reconstruction
    loss fall fast within a few dozen steps and gives the transferred features unit scale (without it
    they average ~0.04, too small for a head trained at Adam 1e-3 to move). Decoder: three stride-2
    transposed convs, narrower than the encoder (most of the compute sits at full resolution), and a
    sigmoid conv to 3 channels.

    Returns (autoencoder, encoder_layers). The encoder layers are shared with the classifier that
    transfers them; their names all start with "encoder_" (fine-tuning unfreezes them by that prefix).
    """
    if image_size % 8:
        raise ValueError(f"the autoencoder needs an image size divisible by 8, got {image_size}")
    initializer = keras.initializers.GlorotUniform(seed=seed)
    encoder_layers: list[layers.Layer] = [layers.Rescaling(1.0 / 255, name="encoder_rescale")]
    for index, filters in enumerate(AUTOENCODER_FILTERS, start=1):
        encoder_layers += [
            layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=initializer,
                          name=f"encoder_conv{index}"),
            layers.BatchNormalization(momentum=AUTOENCODER_NORM_MOMENTUM, name=f"encoder_norm{index}"),
            layers.MaxPooling2D(2, name=f"encoder_pool{index}"),
        ]
    image_input = keras.Input((image_size, image_size, 3), name="image")
    x = image_input
    for layer in encoder_layers:
        x = layer(x)
    for index, filters in enumerate(AUTOENCODER_DECODER_FILTERS, start=1):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu",
                                   kernel_initializer=initializer, name=f"decoder_up{index}")(x)
    x = layers.Conv2D(3, 3, padding="same", activation="sigmoid", dtype="float32",
                      kernel_initializer=initializer, name="reconstruction")(x)
    return keras.Model(image_input, x, name="autoencoder"), encoder_layers


@keras.saving.register_keras_serializable(package="transfer_studio")
def reconstruction_loss(x, x_hat):
    """The seed's loss L = 1/(2N) sum_i ||x_i - x_hat_i||^2 (per-image squared error, halved, batch mean)."""
    squared = keras.ops.square(x - x_hat)
    per_image = keras.ops.sum(keras.ops.reshape(squared, (keras.ops.shape(squared)[0], -1)), axis=1)
    return 0.5 * keras.ops.mean(per_image)


def build_encoder_classifier(encoder_layers: list[layers.Layer], n_classes: int, *, image_size: int,
                             head: str = "gap", dropout: float = 0.3, seed: int = 0,
                             freeze_encoder: bool = True) -> SplitModel:
    """Transfer an autoencoder's encoder: raw image -> encoder (frozen) -> normalised head.

    The Keras heads are those of VGG16 runs with a BatchNormalization (trained with the head) where
    the features enter the Dense layers: "gap" is GlobalAveragePooling -> head_norm -> Dropout -> Dense,
    "seed" is feature_norm -> Flatten -> Dense 1024 -> Dense. So the head sees features at unit scale
    whatever encoder it sits on: a pretrained one or, for the random-encoder baseline, an untrained one
    (whose normalisation layers still hold their initial statistics); pooled encoder features are
    otherwise far smaller than VGG16's and a head at Adam 1e-3 barely moves in a few dozen steps.
    The classical heads standardise (SVM) or ignore scale (random forest) themselves.
    """
    for layer in encoder_layers:
        layer.trainable = not freeze_encoder
    classical = head in ("svm", "random_forest")
    stages = [("encoder", list(encoder_layers))]
    if classical:
        stages.append(("features", [layers.GlobalAveragePooling2D(name="feature_pool")]))
        split_head = "none"
    elif head == "gap":
        pooled = [layers.GlobalAveragePooling2D(name="head_pool"), layers.BatchNormalization(name="head_norm")]
        if dropout > 0:
            pooled.append(layers.Dropout(dropout, seed=seed, name="head_dropout"))
        pooled.append(layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions"))
        stages.append(("head_gap", pooled))
        split_head = "none"
    else:
        stages.append(("features", [layers.BatchNormalization(name="feature_norm")]))
        split_head = head
    return _split(stages, 1 if freeze_encoder else 0, image_size, split_head,
                  n_classes, dropout, seed, f"encoder_conv{len(AUTOENCODER_FILTERS)}", "encoder_transfer")


# ---------------------------------------------------------------------- training helpers

def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be adam or sgd, got {name!r}")


def compile_classifier(model: keras.Model, optimizer: str, learning_rate: float, momentum: float = 0.9,
                       jit_compile="auto"):
    """Categorical cross-entropy with accuracy. ``jit_compile=False`` suits small models on cached
    features, where XLA's one-off compile costs more than the whole training it would speed up."""
    model.compile(optimizer=make_optimizer(optimizer, learning_rate, momentum),
                  loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def compute_features(model: keras.Model, images: np.ndarray, batch_size: int = 32,
                     dtype: str = "float16", progress: ProgressFn | None = None,
                     message: str = "computing features") -> np.ndarray:
    """Run ``model`` over images in batches, reporting progress; stored as ``dtype`` (float16 halves memory)."""
    outputs = []
    total = len(images)
    started = time.perf_counter()
    for start in range(0, total, batch_size):
        batch = np.asarray(images[start:start + batch_size], dtype="float32")
        outputs.append(np.asarray(model.predict_on_batch(batch)).astype(dtype))
        if progress:
            done = min(start + batch_size, total)
            elapsed = time.perf_counter() - started
            left = elapsed / done * (total - done)
            progress(done / total, f"{message}: {done}/{total} images, about {left:.0f} s left")
    if not outputs:
        return np.zeros((0,) + tuple(model.output_shape[1:]), dtype=dtype)
    return np.concatenate(outputs)


def reduced_precision_copy(model: keras.Model, dtype: str) -> keras.Model:
    """A copy of ``model`` that computes, and holds its weights, in ``dtype`` ("bfloat16"), for the frozen forward
    pass (core.backend.forward_precision). Weights held in the low precision are cast once here, not at every
    batch as a mixed policy would (measured: that cast cost more than half of what bfloat16 saved).

    A copy of a base lent by ``reusing_bases`` is kept with it: the frozen part a run caches has the weights the
    base was lent with, so the next run of the same freeze depth takes the copy instead of making one (0.2-0.4 s).
    """
    entry = _pool.lent_entry_of(model)
    key = (dtype, tuple(layer.name for layer in model.layers))
    if entry is not None and key in entry.copies:
        return entry.copies[key]

    def in_dtype(layer):
        config = {**layer.get_config(), "dtype": dtype}
        for name in ("kernel_initializer", "bias_initializer"):
            if name in config:
                config[name] = "zeros"  # the weights are copied below: nothing to draw
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=in_dtype)
    copy.set_weights(model.get_weights())
    if entry is not None:
        entry.copies[key] = copy
    return copy


def count_params(model: keras.Model) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable, frozen
