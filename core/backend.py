"""The few backend-specific spots (device, memory growth, gradients, TFLite), one branch per Keras backend.

Everything else in core/ is plain Keras 3 (keras.ops, model.fit, callbacks) and runs on the
TensorFlow, JAX and PyTorch backends alike. Nothing here is imported at module level from a
backend package, so importing core never drags in a backend it does not use.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter is not for users

import keras


def name() -> str:
    """The active Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def configure_device(mixed_precision: bool = False) -> str:
    """Prepare the accelerator and say in words which device trains: a GPU's name, or "CPU".

    On a GPU, memory growth is switched on so several training processes can share it, and
    mixed precision is applied when asked (it only pays off on a GPU, so the CPU ignores it).
    """
    backend = name()
    gpus: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialised in this process: growth cannot change any more
            details = tf.config.experimental.get_device_details(gpu)
            gpus.append(details.get("device_name", gpu.name))
    elif backend == "jax":
        import jax

        # JAX preallocates most of the GPU unless told not to; this must be set before first use.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if gpus and mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if not gpus:
        return f"CPU ({os.cpu_count()} cores, {backend})"
    label = gpus[0] if len(gpus) == 1 else f"{len(gpus)} x {gpus[0]}"
    return f"GPU: {label} ({backend})"


# The feature cache's forward pass (the frozen blocks, once over every picture) can run in bfloat16 where the CPU
# computes it natively: on an AMD EPYC with avx512_bf16 (2 cores) VGG16 at 64 px ran 2.0-2.3x faster (oneDNN) than
# in float32, its block-5 output within 0.4 % (relative norm), and the manual defaults scored the same on real
# photos at 3 seeds. But the seed preset (an unscaled Flatten-Dense head at SGD 1e-4) lost about 6 points on the
# demo shapes (400 pictures, seeds 0-4: 39.5 % against 45.8 % final validation accuracy), so it is not the default:
# TRANSFER_STUDIO_CACHE_PRECISION=bfloat16 asks for it.
FORWARD_PRECISION_ENV = "TRANSFER_STUDIO_CACHE_PRECISION"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def forward_precision() -> str:
    """The dtype the feature cache computes the frozen blocks in: "float32", or "bfloat16" when
    $TRANSFER_STUDIO_CACHE_PRECISION asks for it (fast only where ``native_bfloat16()``)."""
    chosen = os.environ.get(FORWARD_PRECISION_ENV, "").strip().lower()
    return "bfloat16" if chosen == "bfloat16" else "float32"


def native_bfloat16() -> bool:
    """Whether the TensorFlow backend computes bfloat16 natively on this CPU (``NATIVE_BF16_FLAGS``)."""
    return name() == "tensorflow" and bool(set(NATIVE_BF16_FLAGS) & cpu_flags())


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def describe_device() -> str:
    """The device a run would use, without changing any setting (for the app's sidebar)."""
    return configure_device(mixed_precision=False)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception means the device (or host) ran out of memory."""
    text = f"{type(error).__name__}: {error}"
    return isinstance(error, MemoryError) or any(
        marker in text for marker in ("ResourceExhausted", "OOM", "out of memory", "RESOURCE_EXHAUSTED"))


# ---------------------------------------------------------------------- gradients (Grad-CAM)

def gradient(function, x):
    """d sum(function(x)) / dx as a NumPy array; ``function`` maps a tensor to a tensor.

    Gradients are the one thing Keras does not abstract across backends, hence one branch each.
    Grad-CAM uses it with ``function`` = "class score of the layers above the last conv layer".
    """
    import numpy as np

    backend = name()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            total = tf.reduce_sum(function(tensor))
        return tape.gradient(total, tensor).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda value: jnp.sum(function(value)))(jnp.asarray(x)))
    if backend == "torch":
        import torch

        tensor = torch.tensor(x, requires_grad=True)
        function(tensor).sum().backward()
        return tensor.grad.detach().cpu().numpy()
    raise RuntimeError(f"gradients are not supported on the {backend} backend")


# ---------------------------------------------------------------------- export

def export_tflite(model, path: str) -> str:
    """Convert a Keras model to a TFLite flatbuffer (TensorFlow backend only)."""
    if name() != "tensorflow":
        raise RuntimeError("TFLite export needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with open(path, "wb") as handle:
        handle.write(converter.convert())
    return path


def tflite_predict(path: str, images):
    """Run a TFLite model on a batch (used to check an export gives the same answers)."""
    import numpy as np
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=path)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    outputs = []
    for image in np.asarray(images, dtype=np.float32):
        interpreter.resize_tensor_input(input_detail["index"], (1,) + image.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_detail["index"], image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0])
    return np.stack(outputs)
