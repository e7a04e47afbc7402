"""Torch modules for kernelized attention: :class:`KernelizedAttention` (softmax, random-feature and learned
kernels, one estimator per head), the :class:`KLTransformer` encoder classifier, diagnostics (how far
learning moved the kernel, the feature floor of positive maps) and the synthetic tasks and runner of the
kernel-learning experiment (:mod:`kerneltheory.nn.tasks`, :mod:`kerneltheory.nn.experiment`)."""

from .attention import HeadMaps, KernelizedAttention
from .diagnostics import attention_distance, feature_floor, kernel_distance, model_diagnostics, spectrum_shift
from .transformer import EncoderLayer, KLTransformer

__all__ = [
    "EncoderLayer",
    "HeadMaps",
    "KLTransformer",
    "KernelizedAttention",
    "attention_distance",
    "feature_floor",
    "kernel_distance",
    "model_diagnostics",
    "spectrum_shift",
]
