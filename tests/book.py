"""The nnfs book's classes for classification, chapters 9-15 and 18-22, in plain NumPy:
the reference fastnn's training classes are compared against.

Written for this project from the formulas in issue 9 and the book's documented behaviour
(not copied): same class names, constructor signatures, attributes and methods, the same
NumPy calls where the dtype depends on them, and the same order of floating-point
operations.  Under ``nnfs.init()`` -- which makes ``np.dot``, ``np.zeros``, ``np.eye`` and
``np.random.randn`` return float32 (``np.dot`` computed in float64) -- these classes
therefore give the book's float32 / float64 mix bit for bit.  Two consequences worth
knowing:

* ``np.zeros_like``, ``np.ones_like``, ``np.empty_like`` and ``np.random.binomial`` are not
  patched: the optimizer state takes the parameters' dtype, and a dropout mask is float64
  (an int64 draw divided by a Python float), so a float32 activation times the mask is
  float64 from the dropout layer on, until the next ``np.dot`` rounds back to float32.
* Python floats are "weak" scalars (NEP 50): ``0.9 * float32_array`` stays float32, and so
  does ``learning_rate * (1. / (1. + decay * iterations))`` times a float32 array, while
  the learning rate itself is a Python float (printed with 15-17 digits).

One class serves every chapter: ``forward(inputs, training=None)`` accepts the chapter 9-15
call (``forward(inputs)``) and the chapter 18+ call (``forward(inputs, training)``); a
``Layer_Dropout`` called without ``training`` drops units, as in chapter 15.
``Loss.regularization_loss(layer)`` is chapter 14's per-layer form and
``regularization_loss()`` chapter 18's sum over the remembered trainable layers.
``Model18`` is chapter 18's model (full batch, one line per ``print_every`` epochs),
``Model`` chapters 19-22's (mini-batches, accumulated epoch summaries, ``evaluate``,
``predict``).  Regression and binary heads (sigmoid, linear, MSE/MAE/BCE) are not here;
nor are chapter 21's pickle-based ``save``/``load``.

Plain NumPy only: no fastnn, no Numba, no pytest (``bench/`` imports this too).
"""

import numpy as np

__all__ = [
    "Layer_Dense",
    "Layer_Dropout",
    "Layer_Input",
    "Activation_ReLU",
    "Activation_Softmax",
    "Loss",
    "Loss_CategoricalCrossentropy",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD",
    "Optimizer_Adagrad",
    "Optimizer_RMSprop",
    "Optimizer_Adam",
    "Accuracy",
    "Accuracy_Categorical",
    "Model18",
    "Model",
]


def _l1_sign(values):
    """d|x|/dx as the book takes it: +1, and -1 where x < 0 (so +1 at 0)."""
    sign = np.ones_like(values)
    sign[values < 0] = -1
    return sign


# --- Layers -------------------------------------------------------------------------


class Layer_Dense:
    """Fully connected layer (ch. 3), backward (ch. 9), L1/L2 regularisation (ch. 14),
    ``get_parameters``/``set_parameters`` (ch. 21)."""

    def __init__(self, n_inputs, n_neurons,
                 weight_regularizer_l1=0, weight_regularizer_l2=0,
                 bias_regularizer_l1=0, bias_regularizer_l2=0):
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))
        self.weight_regularizer_l1 = weight_regularizer_l1
        self.weight_regularizer_l2 = weight_regularizer_l2
        self.bias_regularizer_l1 = bias_regularizer_l1
        self.bias_regularizer_l2 = bias_regularizer_l2

    def forward(self, inputs, training=None):
        self.inputs = inputs
        self.output = np.dot(inputs, self.weights) + self.biases

    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        # regularisation gradients, in place, in the book's order: L1 then L2, weights
        # then biases (not divided by the number of samples)
        if self.weight_regularizer_l1 > 0:
            self.dweights += self.weight_regularizer_l1 * _l1_sign(self.weights)
        if self.weight_regularizer_l2 > 0:
            self.dweights += 2 * self.weight_regularizer_l2 * self.weights
        if self.bias_regularizer_l1 > 0:
            self.dbiases += self.bias_regularizer_l1 * _l1_sign(self.biases)
        if self.bias_regularizer_l2 > 0:
            self.dbiases += 2 * self.bias_regularizer_l2 * self.biases
        self.dinputs = np.dot(dvalues, self.weights.T)

    def get_parameters(self):
        return self.weights, self.biases

    def set_parameters(self, weights, biases):
        self.weights = weights
        self.biases = biases


class Layer_Dropout:
    """Dropout (ch. 15; ``training`` from ch. 18).  ``rate`` is the fraction dropped; the
    book stores the keep probability ``1 - rate`` as ``self.rate``.  Unless ``training``
    is given and false, a fresh mask ``binomial(1, keep) / keep`` is drawn from NumPy's
    global RNG on every call; otherwise the output is a copy of the input."""

    def __init__(self, rate):
        self.rate = 1 - rate

    def forward(self, inputs, training=None):
        self.inputs = inputs
        if training is not None and not training:
            self.output = inputs.copy()
            return
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class Layer_Input:
    """The model's input "layer" (ch. 18): passes the data on as ``output``."""

    def forward(self, inputs, training=None):
        self.output = inputs


# --- Activations --------------------------------------------------------------------


class Activation_ReLU:
    """ReLU (ch. 4), backward (ch. 9), ``predictions`` (ch. 18)."""

    def forward(self, inputs, training=None):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0

    def predictions(self, outputs):
        return outputs


class Activation_Softmax:
    """Softmax (ch. 4), backward through each sample's Jacobian (ch. 9),
    ``predictions`` (ch. 18)."""

    def forward(self, inputs, training=None):
        self.inputs = inputs
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)

    def backward(self, dvalues):
        # one sample at a time, as the book does (its rounding and dtypes included):
        # J = diag(s) - s s^T, dinputs_i = J @ dvalues_i
        self.dinputs = np.empty_like(dvalues)
        for index, (probs, grads) in enumerate(zip(self.output, dvalues, strict=True)):
            column = probs.reshape(-1, 1)
            jacobian = np.diagflat(column) - np.dot(column, column.T)
            self.dinputs[index] = np.dot(jacobian, grads)

    def predictions(self, outputs):
        return np.argmax(outputs, axis=1)


# --- Losses -------------------------------------------------------------------------


class Loss:
    """Common loss (ch. 5): mean of the per-sample losses; regularisation (ch. 14 per
    layer, ch. 18 over the remembered trainable layers); accumulation over batches
    (ch. 19).  The book starts accumulating only after ``new_pass()``; here the first
    ``calculate`` starts a pass if none was started (chapters 5-18 never call it)."""

    def regularization_loss(self, layer=None):
        """L1/L2 penalty of ``layer`` (ch. 14) or, without one, the sum over
        ``self.trainable_layers`` (ch. 18), added term by term from an int 0."""
        layers = [layer] if layer is not None else self.trainable_layers
        regularization_loss = 0
        for lay in layers:
            if lay.weight_regularizer_l1 > 0:
                regularization_loss += lay.weight_regularizer_l1 * np.sum(np.abs(lay.weights))
            if lay.weight_regularizer_l2 > 0:
                regularization_loss += lay.weight_regularizer_l2 * np.sum(
                    lay.weights * lay.weights)
            if lay.bias_regularizer_l1 > 0:
                regularization_loss += lay.bias_regularizer_l1 * np.sum(np.abs(lay.biases))
            if lay.bias_regularizer_l2 > 0:
                regularization_loss += lay.bias_regularizer_l2 * np.sum(
                    lay.biases * lay.biases)
        return regularization_loss

    def remember_trainable_layers(self, trainable_layers):
        self.trainable_layers = trainable_layers

    def calculate(self, output, y, *, include_regularization=False):
        sample_losses = self.forward(output, y)
        data_loss = np.mean(sample_losses)
        if not hasattr(self, "accumulated_count"):
            self.new_pass()
        self.accumulated_sum += np.sum(sample_losses)
        self.accumulated_count += len(sample_losses)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def calculate_accumulated(self, *, include_regularization=False):
        data_loss = self.accumulated_sum / self.accumulated_count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self):
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Loss_CategoricalCrossentropy(Loss):
    """Categorical cross-entropy (ch. 5), backward (ch. 9).  Labels are class indices
    (1-D) or one-hot rows (2-D); predictions are clipped to [1e-7, 1 - 1e-7] in the
    forward pass only."""

    def forward(self, y_pred, y_true):
        samples = len(y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        if len(y_true.shape) == 1:
            correct_confidences = y_pred_clipped[range(samples), y_true]
        elif len(y_true.shape) == 2:
            correct_confidences = np.sum(y_pred_clipped * y_true, axis=1)
        return -np.log(correct_confidences)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        labels = len(dvalues[0])
        if len(y_true.shape) == 1:
            y_true = np.eye(labels)[y_true]
        self.dinputs = -y_true / dvalues
        self.dinputs = self.dinputs / samples


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """Softmax and cross-entropy together (ch. 9): ``forward(inputs, y_true)`` (ch. 9-15)
    returns the mean loss and sets ``output``; ``backward`` is ``(p - onehot) / N``.
    Chapter 18's ``Model`` only uses ``backward``."""

    def __init__(self):
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        if len(y_true.shape) == 2:
            y_true = np.argmax(y_true, axis=1)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


# --- Optimizers (ch. 10) -------------------------------------------------------------


class _Optimizer:
    """What every book optimizer shares: the learning-rate decay, evaluated exactly as
    ``learning_rate * (1. / (1. + decay * iterations))`` before each update when
    ``decay`` is non-zero, and ``iterations`` counted by ``post_update_params``."""

    def __init__(self, learning_rate, decay):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (
                1. / (1. + self.decay * self.iterations))

    def post_update_params(self):
        self.iterations += 1


class Optimizer_SGD(_Optimizer):
    """SGD with optional momentum; ``weight_momentums``/``bias_momentums`` are created on
    the layer (``np.zeros_like``) the first time it is updated with momentum."""

    def __init__(self, learning_rate=1., decay=0., momentum=0.):
        super().__init__(learning_rate, decay)
        self.momentum = momentum

    def update_params(self, layer):
        if self.momentum:
            if not hasattr(layer, "weight_momentums"):
                layer.weight_momentums = np.zeros_like(layer.weights)
                layer.bias_momentums = np.zeros_like(layer.biases)
            weight_updates = (self.momentum * layer.weight_momentums
                              - self.current_learning_rate * layer.dweights)
            layer.weight_momentums = weight_updates
            bias_updates = (self.momentum * layer.bias_momentums
                            - self.current_learning_rate * layer.dbiases)
            layer.bias_momentums = bias_updates
        else:
            weight_updates = -self.current_learning_rate * layer.dweights
            bias_updates = -self.current_learning_rate * layer.dbiases
        layer.weights += weight_updates
        layer.biases += bias_updates


class Optimizer_Adagrad(_Optimizer):
    """Adagrad: ``cache += g**2; w += -lr * g / (sqrt(cache) + eps)``."""

    def __init__(self, learning_rate=1., decay=0., epsilon=1e-7):
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_cache += layer.dweights ** 2
        layer.bias_cache += layer.dbiases ** 2
        layer.weights += (-self.current_learning_rate * layer.dweights
                          / (np.sqrt(layer.weight_cache) + self.epsilon))
        layer.biases += (-self.current_learning_rate * layer.dbiases
                         / (np.sqrt(layer.bias_cache) + self.epsilon))


class Optimizer_RMSprop(_Optimizer):
    """RMSprop: ``cache = rho * cache + (1 - rho) * g**2``, then as Adagrad."""

    def __init__(self, learning_rate=0.001, decay=0., epsilon=1e-7, rho=0.9):
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon
        self.rho = rho

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_cache = self.rho * layer.weight_cache + (1 - self.rho) * layer.dweights ** 2
        layer.bias_cache = self.rho * layer.bias_cache + (1 - self.rho) * layer.dbiases ** 2
        layer.weights += (-self.current_learning_rate * layer.dweights
                          / (np.sqrt(layer.weight_cache) + self.epsilon))
        layer.biases += (-self.current_learning_rate * layer.dbiases
                         / (np.sqrt(layer.bias_cache) + self.epsilon))


class Optimizer_Adam(_Optimizer):
    """Adam with the book's bias correction ``1 - beta ** (iterations + 1)``.  All four
    state arrays are created together when the layer has no ``weight_cache`` yet (so a
    layer that only has momentums, e.g. from SGD, gets fresh ones)."""

    def __init__(self, learning_rate=0.001, decay=0., epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def update_params(self, layer):
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        step = self.iterations + 1
        layer.weight_momentums = (self.beta_1 * layer.weight_momentums
                                  + (1 - self.beta_1) * layer.dweights)
        layer.bias_momentums = (self.beta_1 * layer.bias_momentums
                                + (1 - self.beta_1) * layer.dbiases)
        weight_momentums_corrected = layer.weight_momentums / (1 - self.beta_1 ** step)
        bias_momentums_corrected = layer.bias_momentums / (1 - self.beta_1 ** step)
        layer.weight_cache = (self.beta_2 * layer.weight_cache
                              + (1 - self.beta_2) * layer.dweights ** 2)
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases ** 2
        weight_cache_corrected = layer.weight_cache / (1 - self.beta_2 ** step)
        bias_cache_corrected = layer.bias_cache / (1 - self.beta_2 ** step)
        layer.weights += (-self.current_learning_rate * weight_momentums_corrected
                          / (np.sqrt(weight_cache_corrected) + self.epsilon))
        layer.biases += (-self.current_learning_rate * bias_momentums_corrected
                         / (np.sqrt(bias_cache_corrected) + self.epsilon))


# --- Accuracy (ch. 18; accumulation ch. 19) --------------------------------------------


class Accuracy:
    """Common accuracy: mean of ``compare``'s booleans, accumulated over batches (ch. 19;
    the first ``calculate`` starts a pass if none was started, as for ``Loss``)."""

    def calculate(self, predictions, y):
        comparisons = self.compare(predictions, y)
        accuracy = np.mean(comparisons)
        if not hasattr(self, "accumulated_count"):
            self.new_pass()
        self.accumulated_sum += np.sum(comparisons)
        self.accumulated_count += len(comparisons)
        return accuracy

    def calculate_accumulated(self):
        return self.accumulated_sum / self.accumulated_count

    def new_pass(self):
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Accuracy_Categorical(Accuracy):
    """Classification accuracy; one-hot labels are turned into indices unless
    ``binary``."""

    def __init__(self, *, binary=False):
        self.binary = binary

    def init(self, y):
        pass

    def compare(self, predictions, y):
        if not self.binary and len(y.shape) == 2:
            y = np.argmax(y, axis=1)
        return predictions == y


# --- Model ----------------------------------------------------------------------------


class Model18:
    """Chapter 18's model: full-batch training, epochs counted from 1, one line every
    ``print_every`` epochs (the values before that epoch's update, the learning rate it
    used), one validation pass after the last epoch."""

    def __init__(self):
        self.layers = []
        self.softmax_classifier_output = None

    def add(self, layer):
        self.layers.append(layer)

    def set(self, *, loss=None, optimizer=None, accuracy=None):
        if loss is not None:
            self.loss = loss
        if optimizer is not None:
            self.optimizer = optimizer
        if accuracy is not None:
            self.accuracy = accuracy

    def finalize(self):
        """Chain the layers (``prev``/``next``; the loss is the last one's ``next``),
        collect the layers with ``weights``, and use the combined softmax +
        cross-entropy backward when the model ends in exactly that pair."""
        self.input_layer = Layer_Input()
        loss = getattr(self, "loss", None)
        self.trainable_layers = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            layer.prev = self.input_layer if i == 0 else self.layers[i - 1]
            layer.next = self.layers[i + 1] if i < last else loss
            if hasattr(layer, "weights"):
                self.trainable_layers.append(layer)
        self.output_layer_activation = self.layers[last]
        if loss is not None:
            loss.remember_trainable_layers(self.trainable_layers)
        if isinstance(self.layers[-1], Activation_Softmax) and isinstance(
                loss, Loss_CategoricalCrossentropy):
            self.softmax_classifier_output = Activation_Softmax_Loss_CategoricalCrossentropy()

    def train(self, X, y, *, epochs=1, print_every=1, validation_data=None):
        self.accuracy.init(y)
        for epoch in range(1, epochs + 1):
            output = self.forward(X, training=True)
            data_loss, regularization_loss = self.loss.calculate(
                output, y, include_regularization=True)
            loss = data_loss + regularization_loss
            predictions = self.output_layer_activation.predictions(output)
            accuracy = self.accuracy.calculate(predictions, y)
            self._step(output, y)
            if not epoch % print_every:
                print(f"epoch: {epoch}, "
                      f"acc: {accuracy:.3f}, "
                      f"loss: {loss:.3f} ("
                      f"data_loss: {data_loss:.3f}, "
                      f"reg_loss: {regularization_loss:.3f}), "
                      f"lr: {self.optimizer.current_learning_rate}")
        if validation_data is not None:
            X_val, y_val = validation_data
            output = self.forward(X_val, training=False)
            loss = self.loss.calculate(output, y_val)
            predictions = self.output_layer_activation.predictions(output)
            accuracy = self.accuracy.calculate(predictions, y_val)
            print(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")

    def _step(self, output, y):
        """Backward pass, then one optimizer update of every trainable layer."""
        self.backward(output, y)
        self.optimizer.pre_update_params()
        for layer in self.trainable_layers:
            self.optimizer.update_params(layer)
        self.optimizer.post_update_params()

    def forward(self, X, training):
        self.input_layer.forward(X, training)
        for layer in self.layers:
            layer.forward(layer.prev.output, training)
        return layer.output

    def backward(self, output, y):
        if self.softmax_classifier_output is not None:
            # the combined gradient replaces the softmax layer's own backward
            self.softmax_classifier_output.backward(output, y)
            self.layers[-1].dinputs = self.softmax_classifier_output.dinputs
            for layer in reversed(self.layers[:-1]):
                layer.backward(layer.next.dinputs)
            return
        self.loss.backward(output, y)
        for layer in reversed(self.layers):
            layer.backward(layer.next.dinputs)

    def get_parameters(self):
        """[(weights, biases), ...] of the trainable layers (ch. 21)."""
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters):
        for parameter_set, layer in zip(parameters, self.trainable_layers, strict=True):
            layer.set_parameters(*parameter_set)


def _steps(n, batch_size):
    """Batches per pass: ceil(n / batch_size), 1 without a batch size (ch. 19)."""
    if batch_size is None:
        return 1
    steps = n // batch_size
    if steps * batch_size < n:
        steps += 1
    return steps


def _batch(data, step, batch_size):
    if batch_size is None:
        return data
    return data[step * batch_size:(step + 1) * batch_size]


class Model(Model18):
    """Chapters 19-22's model: mini-batches in order (``batch_size``; the last batch may
    be short), per epoch an ``epoch: N`` line, a ``step:`` line for every
    ``print_every``-th step and the last one, a ``training,`` summary of the accumulated
    loss and accuracy, and ``evaluate`` on the validation data; plus ``predict``."""

    def train(self, X, y, *, epochs=1, batch_size=None, print_every=1, validation_data=None):
        self.accuracy.init(y)
        train_steps = _steps(len(X), batch_size)
        for epoch in range(1, epochs + 1):
            print(f"epoch: {epoch}")
            self.loss.new_pass()
            self.accuracy.new_pass()
            for step in range(train_steps):
                batch_X = _batch(X, step, batch_size)
                batch_y = _batch(y, step, batch_size)
                output = self.forward(batch_X, training=True)
                data_loss, regularization_loss = self.loss.calculate(
                    output, batch_y, include_regularization=True)
                loss = data_loss + regularization_loss
                predictions = self.output_layer_activation.predictions(output)
                accuracy = self.accuracy.calculate(predictions, batch_y)
                self._step(output, batch_y)
                if not step % print_every or step == train_steps - 1:
                    print(f"step: {step}, "
                          f"acc: {accuracy:.3f}, "
                          f"loss: {loss:.3f} ("
                          f"data_loss: {data_loss:.3f}, "
                          f"reg_loss: {regularization_loss:.3f}), "
                          f"lr: {self.optimizer.current_learning_rate}")
            epoch_data_loss, epoch_regularization_loss = self.loss.calculate_accumulated(
                include_regularization=True)
            epoch_loss = epoch_data_loss + epoch_regularization_loss
            epoch_accuracy = self.accuracy.calculate_accumulated()
            print(f"training, "
                  f"acc: {epoch_accuracy:.3f}, "
                  f"loss: {epoch_loss:.3f} ("
                  f"data_loss: {epoch_data_loss:.3f}, "
                  f"reg_loss: {epoch_regularization_loss:.3f}), "
                  f"lr: {self.optimizer.current_learning_rate}")
            if validation_data is not None:
                self.evaluate(*validation_data, batch_size=batch_size)

    def evaluate(self, X_val, y_val, *, batch_size=None):
        """Accumulated loss and accuracy over ``X_val`` (no dropout), printed as
        ``validation, acc: ..., loss: ...`` (ch. 20)."""
        validation_steps = _steps(len(X_val), batch_size)
        self.loss.new_pass()
        self.accuracy.new_pass()
        for step in range(validation_steps):
            batch_X = _batch(X_val, step, batch_size)
            batch_y = _batch(y_val, step, batch_size)
            output = self.forward(batch_X, training=False)
            self.loss.calculate(output, batch_y)
            predictions = self.output_layer_activation.predictions(output)
            self.accuracy.calculate(predictions, batch_y)
        validation_loss = self.loss.calculate_accumulated()
        validation_accuracy = self.accuracy.calculate_accumulated()
        print(f"validation, acc: {validation_accuracy:.3f}, loss: {validation_loss:.3f}")

    def predict(self, X, *, batch_size=None):
        """The model's outputs for ``X`` (no dropout), batch by batch, stacked (ch. 22)."""
        output = [
            self.forward(_batch(X, step, batch_size), training=False)
            for step in range(_steps(len(X), batch_size))
        ]
        return np.vstack(output)
