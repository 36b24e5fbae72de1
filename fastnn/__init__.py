"""fastnn: "Neural Networks from Scratch" networks and random search, compiled with Numba.

Drop-in notebook classes (``Dense_Layer``, ``Activation_Relu``, ``Activation_Softmax``,
``Loss_CategoricalCrossentropy`` and the book's ``Layer_Dense``/``Activation_ReLU``) and
``MLP``, a network of any depth with a fused, vectorised loss kernel.  Nothing is
compiled at import; kernels compile on first use (and are cached on disk), or ahead of
time with ``fastnn.warmup()``.
"""

__version__ = "0.1.0"

from .layers import (
    Activation_ReLU,
    Activation_Relu,
    Activation_Softmax,
    Dense_Layer,
    Layer_Dense,
    Loss_CategoricalCrossentropy,
    accuracy,
)
from .network import MLP
from .noise import gaussian_noise
from .search import History, SearchResult, search

__all__ = [
    "MLP",
    "History",
    "SearchResult",
    "search",
    "gaussian_noise",
    "Activation_ReLU",
    "Activation_Relu",
    "Activation_Softmax",
    "Dense_Layer",
    "Layer_Dense",
    "Loss_CategoricalCrossentropy",
    "accuracy",
    "warmup",
]


def warmup(dtypes=("float32", "float64")):
    """Compile (or load from the disk cache) every kernel for the given dtypes.

    Call it once before fanning out to threads or processes, so they do not all compile
    at the same time."""
    import numpy as np

    for dtype in dtypes:
        x = np.zeros((2, 2), dtype=dtype)
        y = np.array([0, 1])
        net = MLP([2, 2, 2], seed=0, dtype=dtype)
        net.evaluate(x, y)
        net.forward(x)
        net.predict(x)
        layer = Dense_Layer(2, 2)
        layer.weights = layer.weights.astype(dtype)
        layer.biases = layer.biases.astype(dtype)
        layer.forward(x)
        relu, soft = Activation_Relu(), Activation_Softmax()
        relu.forward(layer.output)
        soft.forward(relu.output)
        Loss_CategoricalCrossentropy().forward(soft.output, y)
        accuracy(soft.output, y)
