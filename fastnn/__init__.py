"""fastnn: "Neural Networks from Scratch" networks and random search, compiled with Numba.

Drop-in classes for the seed notebook (``Dense_Layer``, ``Activation_Relu``,
``Activation_Softmax``, ``Loss_CategoricalCrossentropy``) and the nnfs book's training
chapters (``Layer_Dense`` with ``backward`` and L1/L2, ``Activation_ReLU``,
``Layer_Dropout``, ``Layer_Input``, ``Activation_Softmax_Loss_CategoricalCrossentropy``,
``Loss``, ``Accuracy_Categorical``, ``Optimizer_SGD``/``Adagrad``/``RMSprop``/``Adam``),
the book's ``Model``; ``MLP``, a network of any depth with a fused, vectorised loss kernel;
``search``, the book's random search compiled whole, and ``train``, its gradient training
compiled whole; ``sweep`` runs many of them (a ``grid`` of specs) in this process, a
process pool or on a Dask cluster, resumably.  Nothing is compiled at import; kernels
compile on first use (and are cached on disk), or ahead of time with ``fastnn.warmup()``.
"""

__version__ = "0.1.0"

from ._config import target_info
from .layers import (
    Activation_ReLU,
    Activation_Relu,
    Activation_Softmax,
    Dense_Layer,
    Layer_Dense,
    Layer_Dropout,
    Layer_Input,
)
from .losses import (
    Accuracy,
    Accuracy_Categorical,
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Loss,
    Loss_CategoricalCrossentropy,
    accuracy,
)
from .model import Model
from .modelfile import ModelFileError, load, save
from .network import MLP
from .noise import gaussian_noise
from .optimizers import (
    Optimizer_Adagrad,
    Optimizer_Adam,
    Optimizer_RMSprop,
    Optimizer_SGD,
    optimizer_settings,
)
from .search import History, SearchResult, search
from .sweeps import grid, sweep
from .train import (
    TrainHistory,
    TrainResult,
    train,  # the function; its module: from fastnn.train import ...
)
from .warmup import warmup  # the function; its module: from fastnn.warmup import ...

__all__ = [
    "MLP",
    "History",
    "SearchResult",
    "search",
    "train",
    "grid",
    "sweep",
    "TrainResult",
    "TrainHistory",
    "Model",
    "save",
    "load",
    "ModelFileError",
    "gaussian_noise",
    "Activation_ReLU",
    "Activation_Relu",
    "Activation_Softmax",
    "Dense_Layer",
    "Layer_Dense",
    "Loss_CategoricalCrossentropy",
    "accuracy",
    "Layer_Dropout",
    "Layer_Input",
    "Loss",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Accuracy",
    "Accuracy_Categorical",
    "Optimizer_SGD",
    "Optimizer_Adagrad",
    "Optimizer_RMSprop",
    "Optimizer_Adam",
    "optimizer_settings",
    "warmup",
    "target_info",
]

