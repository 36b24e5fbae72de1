"""The book's ``Model`` (chapters 18-22) for classification, on the compiled trainer.

Same methods and printed lines as the book's class: ``add``, ``set(loss=, optimizer=,
accuracy=)``, ``finalize``, ``train(X, y, *, epochs, batch_size, print_every,
validation_data)``, ``evaluate``, ``predict``, and ``forward``/``backward`` for code that
calls them.  ``train`` does not run the book's Python loop: when the layers are dense
layers with ReLU between them (dropout allowed after a ReLU) ending in softmax with
categorical cross-entropy, the whole loop runs in ``fastnn.train``'s kernels, and the
lines are printed from what they recorded -- the chapter 18 format without
``batch_size``, chapter 19's with it.  To stay the book's numbers, it trains the way the
book's ``Model`` does: batches in order (no shuffle), dropout masks drawn from NumPy's
global generator exactly as the book's ``Layer_Dropout`` draws them, the optimizer's
state and iterations continued and written back to the layers and the optimizer.

Other stacks (sigmoid outputs and binary cross-entropy, linear outputs and regression)
raise ``NotImplementedError``; ``_HEADS`` is where they would be added.
"""


import numpy as np

from . import modelfile
from . import train as _train
from ._validation import as_matrix, as_positive_int
from .layers import Layer_Input, dot_result_dtype
from .network import MLP

#: (output activation, loss) class names -> how the compiled trainer handles them
_HEADS = {
    ("Activation_Softmax", "Loss_CategoricalCrossentropy"): "softmax_crossentropy",
}
_SUPPORTED = ("Layer_Dense, Activation_ReLU and Layer_Dropout layers ending in "
              "Activation_Softmax, with Loss_CategoricalCrossentropy and "
              "Accuracy_Categorical")


class Model:
    """The book's model: a list of layers, a loss, an optimizer and an accuracy."""

    def __init__(self):
        self.layers = []
        self.softmax_classifier_output = None
        self.loss = self.optimizer = self.accuracy = None
        self.made_by = None  # the last train's record, written by save()

    def add(self, layer):
        self.layers.append(layer)

    def set(self, *, loss=None, optimizer=None, accuracy=None):
        """Set what is given (chapter 21: a model loaded for inference needs no
        optimizer)."""
        if loss is not None:
            self.loss = loss
        if optimizer is not None:
            self.optimizer = optimizer
        if accuracy is not None:
            self.accuracy = accuracy

    def finalize(self):
        """Link the layers (``prev``/``next``, as the book does), find the trainable
        ones and tell the loss about them."""
        if not self.layers:
            raise ValueError("the model has no layers: add them before finalize()")
        if getattr(self, "loss", None) is None:
            raise ValueError("call model.set(loss=..., optimizer=..., accuracy=...) "
                             "before finalize() (loss is missing)")
        self.input_layer = Layer_Input()
        self.trainable_layers = []
        count = len(self.layers)
        for i, layer in enumerate(self.layers):
            layer.prev = self.input_layer if i == 0 else self.layers[i - 1]
            layer.next = self.layers[i + 1] if i < count - 1 else self.loss
            if hasattr(layer, "weights"):
                self.trainable_layers.append(layer)
        self.output_layer_activation = self.layers[-1]
        if hasattr(self.loss, "remember_trainable_layers"):
            self.loss.remember_trainable_layers(self.trainable_layers)
        if self._head() == "softmax_crossentropy":
            from .losses import Activation_Softmax_Loss_CategoricalCrossentropy
            self.softmax_classifier_output = Activation_Softmax_Loss_CategoricalCrossentropy()

    def _head(self):
        return _HEADS.get((type(self.layers[-1]).__name__, _base_name(self.loss)))

    def _check(self):
        if not hasattr(self, "trainable_layers"):
            raise ValueError("call model.finalize() before train, evaluate or predict")
        if self._head() is None:
            raise NotImplementedError(
                f"fastnn's Model runs {type(self.layers[-1]).__name__} with "
                f"{type(self.loss).__name__} only through the book's own Model; supported: "
                f"{_SUPPORTED}")
        accuracy = getattr(self, "accuracy", None)
        if accuracy is not None and _base_name(accuracy) != "Accuracy_Categorical":
            raise NotImplementedError(f"accuracy {type(accuracy).__name__} is not supported; "
                                      f"supported: {_SUPPORTED}")
        if accuracy is not None and getattr(accuracy, "binary", False):
            raise NotImplementedError("Accuracy_Categorical(binary=True) is for binary "
                                      f"outputs; supported: {_SUPPORTED}")

    # -- training ----------------------------------------------------------------------
    def train(self, X, y, *, epochs=1, batch_size=None, print_every=1, validation_data=None):
        """Train for ``epochs`` epochs, printing what the book's ``Model.train`` prints:
        without ``batch_size`` (chapter 18) a line per ``print_every`` epochs and the
        validation line at the end; with it (chapter 19) ``epoch:``, the ``step:`` lines
        of every ``print_every``-th and the last step, the ``training,`` summary and,
        with ``validation_data``, the ``validation,`` line of every epoch."""
        self._check()
        if getattr(self, "optimizer", None) is None:
            raise ValueError("call model.set(optimizer=...) before train")
        print_every = as_positive_int(print_every, "print_every")
        if hasattr(self.accuracy, "init"):
            self.accuracy.init(y)
        self._train(X, y, epochs, batch_size, print_every, validation_data, _nnfs_dot())

    def _train(self, X, y, epochs, batch_size, print_every, validation_data, nnfs_dot):
        """``train``'s run; ``nnfs_dot``: whether ``np.dot`` is nnfs's (``fastnn.warmup``
        compiles that case without patching NumPy)."""
        opts = _train._check_options(
            self.optimizer, epochs, batch_size, False, {}, None, None, 0, False, None, None,
            60.0, None, None)
        opts.update(masks="numpy", record_steps=batch_size is not None)
        stack = _train.Stack.of(self.layers, None)
        if stack.dtype == np.float32 and nnfs_dot:
            # the book's numbers under nnfs.init(): float32 arrays, float64 products
            # and dropout (kernels/train_book.py), computed on float64 arrays
            opts.update(arithmetic="book")
            stack = _train.Stack.of(self.layers, np.float64)
        per_epoch = batch_size is not None and validation_data is not None
        data = _train.Data.of(stack, X, y, validation_data if per_epoch else None)
        printer = _Printer(print_every, batch_size is not None, per_epoch)
        run = _PrintingRun(stack, data, opts, printer)
        try:
            run.execute()
        finally:
            result = run.finish()
            self.made_by = modelfile.provenance("train", run.arguments(), result, data.x,
                                                data.labels, data.xv)
        if run.stopped == "interrupted":
            raise KeyboardInterrupt  # as the book's loop would, with the model updated
        if validation_data is not None and not per_epoch:
            self._validate(*validation_data, batch_size=batch_size)

    def evaluate(self, X_val, y_val, *, batch_size=None):
        """Print the validation loss and accuracy (chapter 20's line): the mean data loss
        and accuracy over all samples, dropout off (``batch_size`` changes nothing but
        how the book would have split the work)."""
        self._check()
        if batch_size is not None:
            as_positive_int(batch_size, "batch_size")
        self._validate(X_val, y_val, batch_size=batch_size)

    def _validate(self, X_val, y_val, batch_size=None):
        loss, acc = self._network().evaluate(*self._data(X_val, y_val))
        print(f"validation, acc: {acc:.3f}, loss: {loss:.3f}")

    def predict(self, X, *, batch_size=None):
        """The model's output (softmax probabilities, one row per sample), as the book's
        ``predict`` returns it."""
        self._check()
        if batch_size is not None:
            as_positive_int(batch_size, "batch_size")
        net = self._network()
        return net.forward(as_matrix(X, "X", n_cols=net.n_inputs, dtype=net.dtype))

    def _network(self):
        """An ``MLP`` holding the layers' current parameters (dropout off)."""
        stack = _train.Stack.of(self.layers, None)
        net = MLP(stack.sizes.tolist(), seed=0, dtype=stack.dtype)
        net.params = stack.flat()
        return net

    def _data(self, X, y):
        stack = _train.Stack.of(self.layers, None)
        data = _train.Data.of(stack, X, y, None)
        return data.x, data.labels

    # -- model files (chapter 21, without pickle) -------------------------------------------
    def get_parameters(self):
        """``[(weights, biases), ...]`` of the trainable layers (chapter 21)."""
        self._finalized()
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters):
        """Assign ``[(weights, biases), ...]`` to the trainable layers (chapter 21); the
        count and every shape must match."""
        self._finalized()
        parameters = list(parameters)
        if len(parameters) != len(self.trainable_layers):
            raise ValueError(f"parameters has {len(parameters)} (weights, biases) pairs, "
                             f"but the model has {len(self.trainable_layers)} trainable "
                             "layers")
        for i, (pair, layer) in enumerate(zip(parameters, self.trainable_layers,
                                              strict=True)):
            weights, biases = pair
            want = np.shape(layer.weights)
            if np.shape(weights) != want or np.size(biases) != want[1]:
                raise ValueError(f"parameters[{i}] has shapes {np.shape(weights)}, "
                                 f"{np.shape(biases)}; layer {i} needs {want}, "
                                 f"(1, {want[1]})")
            layer.set_parameters(weights, biases)

    def save_parameters(self, path):
        """Write the parameters to ``path`` (chapter 21; a ``.npz`` model file, not a
        pickle)."""
        from . import modelfile
        return modelfile.save_parameters(self.get_parameters(), path)

    def load_parameters(self, path):
        """Read parameters written by ``save_parameters`` (or any model file with the
        same layer sizes) into the layers."""
        from . import modelfile
        params, meta, _ = modelfile.read(path)
        pairs = list(modelfile._split(params, meta["sizes"]))
        self.set_parameters(pairs)

    def save(self, path, *, metadata=None):
        """Write the whole model to ``path`` (chapter 21; a ``.npz`` model file, not a
        pickle): layers, parameters, loss, accuracy, the optimizer's settings and the
        state it keeps on the layers."""
        from . import modelfile
        return modelfile.save(self, path, metadata=metadata)

    @staticmethod
    def load(path):
        """The ``Model`` saved in ``path``, finalized, ready to predict, evaluate or
        train on (chapter 21's ``Model.load``)."""
        from . import modelfile
        return modelfile.load(path, expect="model")

    def _finalized(self):
        if not hasattr(self, "trainable_layers"):
            raise ValueError("call model.finalize() first")

    # -- the book's passes, for code that calls them -----------------------------------
    def forward(self, X, training):
        self.input_layer.forward(X, training)
        for layer in self.layers:
            layer.forward(layer.prev.output, training)
        return layer.output

    def backward(self, output, y):
        if self.softmax_classifier_output is not None:
            self.softmax_classifier_output.backward(output, y)
            self.layers[-1].dinputs = self.softmax_classifier_output.dinputs
            for layer in reversed(self.layers[:-1]):
                layer.backward(layer.next.dinputs)
            return
        self.loss.backward(output, y)
        for layer in reversed(self.layers):
            layer.backward(layer.next.dinputs)

    def __repr__(self):
        return f"Model({', '.join(type(layer).__name__ for layer in self.layers)})"


def _nnfs_dot():
    """Whether ``np.dot`` is ``nnfs.init()``'s: float32 products of float64 arrays
    (computed in float64 and rounded)."""
    return dot_result_dtype(np.float64, np.float64) == np.float32


def _base_name(obj):
    """The first of the book's class names in ``obj``'s class hierarchy (a user's
    subclass of the book's class counts as it)."""
    known = {name for pair in _HEADS for name in pair} | {"Accuracy_Categorical"}
    for cls in type(obj).__mro__:
        if cls.__name__ in known:
            return cls.__name__
    return type(obj).__name__


class _PrintingRun(_train.Training):
    """A training run that prints the book's lines after every chunk."""

    def __init__(self, stack, data, opts, printer):
        super().__init__(stack, data, opts)
        self.printer = printer

    def advance(self, budget):
        super().advance(budget)
        self.printer.show(self)


class _Printer:
    """The book's ``Model.train`` lines from the trainer's records."""

    def __init__(self, print_every, batches, per_epoch_validation):
        self.every = print_every
        self.batches = batches
        self.validation = per_epoch_validation
        self.epochs_shown = 0

    def show(self, run):
        records = run._records()
        steps = run.take_steps()
        if not self.batches:
            for row in records[self.epochs_shown:]:
                epoch = int(row[0]) + 1
                if not epoch % self.every:
                    acc = row[4] / row[5]
                    data_loss, reg_loss = row[1], row[2]
                    print(f"epoch: {epoch}, acc: {acc:.3f}, loss: {data_loss + reg_loss:.3f} "
                          f"(data_loss: {data_loss:.3f}, reg_loss: {reg_loss:.3f}), "
                          f"lr: {float(row[6])}")
            self.epochs_shown = len(records)
            return
        last_step = run.n_batches - 1
        ended = {int(row[0]): row for row in records[self.epochs_shown:]}
        for row in steps:
            epoch, step = int(row[0]), int(row[1])
            if step == 0:
                print(f"epoch: {epoch + 1}")
            if not step % self.every or step == last_step:
                acc = row[4] / row[5]
                print(f"step: {step}, acc: {acc:.3f}, loss: {row[2] + row[3]:.3f} "
                      f"(data_loss: {row[2]:.3f}, reg_loss: {row[3]:.3f}), "
                      f"lr: {float(row[6])}")
            if step == last_step and epoch in ended:
                end = ended[epoch]
                acc = end[4] / end[5]
                print(f"training, acc: {acc:.3f}, loss: {end[1] + end[3]:.3f} "
                      f"(data_loss: {end[1]:.3f}, reg_loss: {end[3]:.3f}), "
                      f"lr: {float(end[6])}")
                if self.validation:
                    nv = run.data.xv.shape[0]
                    print(f"validation, acc: {end[8] / nv:.3f}, loss: {end[7]:.3f}")
        self.epochs_shown = len(records)
