"""fastnn: "Neural Networks from Scratch" networks and random search, compiled with Numba.

Drop-in notebook classes (``Dense_Layer``, ``Activation_Relu``, ``Activation_Softmax``,
``Loss_CategoricalCrossentropy`` and the book's ``Layer_Dense``/``Activation_ReLU``) and
``MLP``, a network of any depth with a fused, vectorised loss kernel.  Nothing is
compiled at import; kernels compile on first use (and are cached on disk), or ahead of
time with ``fastnn.warmup()``.
"""

__version__ = "0.1.0"

from ._config import target_info
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
from .warmup import warmup  # the function; its module: from fastnn.warmup import ...

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
    "target_info",
]

