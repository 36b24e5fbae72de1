"""The oracle: slow, obviously correct NumPy that every fastnn result is compared against.

Two parts:

* The seed notebook's classes, copied verbatim (``Dense_Layer``, ``Activation_Relu``,
  ``Activation_Softmax``, ``Loss_CategoricalCrossentropy``).  They compute in whatever
  dtype NumPy's promotion gives, exactly as the notebook does.
* Helper functions for the network API (``MLP``), computed in float64 whatever the model's
  dtype, so they measure the fast kernels' rounding instead of sharing it.

Plain NumPy only: no fastnn, no Numba, no pytest (``bench/`` imports this too).
"""

import numpy as np

# --- Tolerances ---------------------------------------------------------------------
# Every comparison in the suite allows, elementwise,
#
#     |fast - reference| <= rtol * |reference| + ulps * eps * scale + atol
#
# with one row of constants per dtype the fast code computes in (``TOL``).  ``scale`` is
# the magnitude of what was summed to get the value (e.g. |x| @ |W| + |b| for a dense
# layer, ``logit_scale`` for a network): rounding in a sum is proportional to the size of
# its terms, not of its result, so a relative tolerance alone is either too loose or
# fails on honest cancellation.  Probabilities are compared in log space (softmax turns
# an absolute logit error into a relative probability error).
#
# * rtol: error of one well-conditioned step or of a long sum's result (exp, log, a
#   division, a mean).  float32 kernels use Cephes-style polynomial exp/log (~1 ulp,
#   eps32 = 1.2e-7); float64 uses libm.  Measured worst: loss vs the notebook's float32
#   class 2.6e-7 relative (NumPy's float32 pairwise mean is the less accurate side);
#   float64 loss 2.6e-15 on <= 300 samples.  float32 4e-6 (~32 eps) also covers the
#   O(log n) growth of NumPy's float32 mean; float64 1e-13 covers the O(sqrt(n)) growth
#   of a float64 sum up to ~1e6 samples (100k are tested).
# * ulps: multiplier on eps * scale.  Measured worst over 600 random networks (1-5
#   layers, widths up to 512) and layers (up to 64 x 64, logits up to 1e4): 2.5
#   (Dense_Layer vs np.dot), 1.2 (softmax), 0.9 (MLP.forward; reference.logit_scale
#   already carries a factor of the depth), in both dtypes.  32 leaves >10x headroom;
#   a real bug (wrong bias, skipped ReLU, wrong layout) is off by O(1) * scale, ~1e5
#   (float32) to ~1e14 (float64) ulps; test_checks_catch_small_errors guards that.
# * atol: values that can honestly be ~0.  A loss at its lower clip -log(1 - 1e-7) is
#   ~1e-7 but known only to a few eps absolute (the log of a sum ~1 rounded in the
#   model's dtype): 4 eps.
TOL = {
    np.float32: {"rtol": 4e-6, "atol": 5e-7, "ulps": 32},
    np.float64: {"rtol": 1e-13, "atol": 1e-15, "ulps": 32},
}

#: Probabilities below this (float32 / float64) may underflow to 0 in the fast code; they
#: are only checked to be tiny, not compared in log space.
PROB_FLOOR = {np.float32: 1e-30, np.float64: 1e-290}

#: The notebook's clip bounds for the cross-entropy.
CLIP_LO = 1e-7
CLIP_HI = 1 - 1e-7


def tol(dtype):
    """The ``TOL`` row (rtol, atol, ulps) plus ``eps`` for this dtype."""
    key = np.dtype(dtype).type
    return dict(TOL[key], eps=float(np.finfo(key).eps))


# --- The seed notebook's classes, verbatim ---------------------------------------------


class Dense_Layer:
  def __init__(self , n_inputs , n_neurons):
    self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)  # noqa: NPY002 (verbatim)
    self.biases = np.zeros((1, n_neurons))

  def forward(self, inputs):
        # Save input for backward pass if needed
        self.inputs = inputs
        # Linear transformation: output = XW + b
        self.output = np.dot(inputs , self.weights) + self.biases

class Activation_Relu:
  def forward(self, inputs):
    self.output = np.maximum(0, inputs)


class Activation_Softmax:
  def forward(self, inputs):
    exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
    probabilities = exp_values / np.sum(exp_values, axis=1,keepdims=True)
    self.output = probabilities

class Loss_CategoricalCrossentropy:
    def forward(self, y_pred, y_true):
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        if len(y_true.shape) == 2:
            y_true = np.argmax(y_true, axis=1)
        correct_confidences = y_pred_clipped[range(len(y_pred)), y_true]
        negative_log_likelihoods = -np.log(correct_confidences)
        return np.mean(negative_log_likelihoods)


# --- Helpers --------------------------------------------------------------------------


def dense(x, W, b):
    """``x @ W + b`` (b of shape (n,) or (1, n))."""
    return np.dot(x, W) + b


def relu(z):
    return np.maximum(0, z)


def softmax(z):
    """Row-wise softmax, row max subtracted first (finite for any finite z)."""
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def labels_of(y):
    """Integer labels from 1-D labels or 2-D one-hot rows."""
    y = np.asarray(y)
    return np.argmax(y, axis=1) if y.ndim == 2 else y.astype(np.int64)


def crossentropy(p, y, clip_dtype=None):
    """Mean of ``-log(clip(p[i, y_i], 1e-7, 1 - 1e-7))``, computed in float64.

    ``clip_dtype`` rounds the clip bounds to that dtype first, as ``np.clip`` does for an
    array of that dtype (default: ``p``'s dtype).  It matters only at the upper bound:
    ``float32(1 - 1e-7)`` is ``1 - 2**-23``, so a confident float32 sample costs
    ``1.19e-7``, not ``1.0e-7``."""
    p = np.asarray(p)
    dt = np.dtype(clip_dtype if clip_dtype is not None else p.dtype)
    if dt.kind != "f":
        dt = np.dtype(np.float64)
    lo = float(dt.type(CLIP_LO))
    hi = float(dt.type(CLIP_HI))
    labels = labels_of(y)
    picked = p[np.arange(len(p)), labels].astype(np.float64)
    return float(np.mean(-np.log(np.clip(picked, lo, hi))))


def accuracy(p, y):
    """Fraction of rows whose ``np.argmax`` (first maximum) equals the label."""
    return float(np.mean(np.argmax(p, axis=1) == labels_of(y)))


def mlp_param_count(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def mlp_params_split(sizes, params):
    """[(W, b), ...] from the flat layout: per layer W (row-major sizes[l] x sizes[l+1])
    then b (sizes[l+1])."""
    sizes = [int(s) for s in sizes]
    params = np.asarray(params)
    assert params.shape == (mlp_param_count(sizes),), (params.shape, sizes)
    out = []
    off = 0
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        W = params[off:off + a * b].reshape(a, b)
        off += a * b
        bias = params[off:off + b]
        off += b
        out.append((W, bias))
    return out


def mlp_params_join(layers):
    """Inverse of ``mlp_params_split``: one flat vector from [(W, b), ...]."""
    return np.concatenate([np.concatenate([W.ravel(), np.ravel(b)]) for W, b in layers])


def mlp_logits(sizes, params, X):
    """Logits in float64.  X is first rounded to the parameters' dtype: the model sees its
    inputs in its own dtype (fastnn's dtype policy)."""
    params = np.asarray(params)
    a = np.asarray(X).astype(params.dtype).astype(np.float64)
    layers = mlp_params_split(sizes, params.astype(np.float64))
    for k, (W, b) in enumerate(layers):
        a = dense(a, W, b)
        if k < len(layers) - 1:
            a = relu(a)
    return a


def mlp_forward(sizes, params, X):
    """Softmax probabilities of the network (float64)."""
    return softmax(mlp_logits(sizes, params, X))


def mlp_loss(sizes, params, X, y):
    """(mean clipped cross-entropy, accuracy) in float64; clip bounds in the model dtype."""
    p = mlp_forward(sizes, params, X)
    return crossentropy(p, y, clip_dtype=np.asarray(params).dtype), accuracy(p, y)


def top2_margin(z):
    """Per row, largest minus second largest value (inf with a single column)."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] < 2:
        return np.full(z.shape[0], np.inf)
    s = np.sort(z, axis=1)
    return s[:, -1] - s[:, -2]


def dot_dtype(x, W):
    """The dtype NumPy computes ``np.dot(x, W)`` in (at least float32): the precision a
    dense layer's result is known to, whatever the bias dtype promotes it to."""
    dt = np.result_type(np.asarray(x).dtype, np.asarray(W).dtype, np.float32)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def logit_scale(sizes, params, X):
    """Per row, the size of the sums that produced the logits: |x| pushed through
    |W| and |b| layer by layer (ReLU never increases a magnitude), times the number of
    layers.  Rounding error of logits computed in ``params.dtype`` is a small multiple of
    ``eps * logit_scale``."""
    params = np.asarray(params)
    a = np.abs(np.asarray(X).astype(params.dtype).astype(np.float64))
    layers = mlp_params_split(sizes, params.astype(np.float64))
    for W, b in layers:
        a = np.dot(a, np.abs(W)) + np.abs(b)
    return len(layers) * np.max(a, axis=1)


def softmax_scale(z):
    """Elementwise size of what softmax(z)'s log is made of: log p_j = (z_j - m) - log S,
    where rounding in z_j - m is ~eps |z_j - m| and in log S ~eps (1 + log n_classes)."""
    z = np.asarray(z, dtype=np.float64)
    return np.abs(z - np.max(z, axis=1, keepdims=True)) + 1 + np.log(z.shape[1])


def dense_scale(x, W, b):
    """Elementwise size of the terms summed in ``x @ W + b``."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    return np.dot(x, np.abs(np.asarray(W, dtype=np.float64))) + np.abs(
        np.asarray(b, dtype=np.float64))


# --- Comparisons ----------------------------------------------------------------------


def _fail(msg, actual, expected, bad):
    bad = np.atleast_1d(bad)
    actual, expected = np.atleast_1d(actual), np.atleast_1d(expected)
    idx = tuple(int(i[0]) for i in np.nonzero(bad))
    raise AssertionError(
        f"{msg}: {int(np.count_nonzero(bad))} of {bad.size} elements out of tolerance; "
        f"first at {idx}: fast={actual[idx]!r} reference={expected[idx]!r}"
    )


def assert_close(actual, expected, dtype, scale=0.0, msg="values differ"):
    """``|actual - expected| <= rtol |expected| + ulps eps scale + atol`` elementwise."""
    t = tol(dtype)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{msg}: shape {a.shape} != {e.shape}"
    assert np.all(np.isfinite(a)), f"{msg}: fast result is not finite: {a}"
    allowed = t["rtol"] * np.abs(e) + t["ulps"] * t["eps"] * np.asarray(scale) + t["atol"]
    bad = ~(np.abs(a - e) <= allowed)
    if np.any(bad):
        _fail(msg, a, e, np.broadcast_to(bad, a.shape))


def assert_probs_close(actual, expected, dtype, scale=0.0, msg="probabilities differ"):
    """Softmax rows: finite, in [0, 1], summing to 1, and equal to ``expected`` in log
    space within ``rtol + ulps eps scale`` (``scale`` per row, e.g. ``logit_scale``, or
    per element, e.g. ``softmax_scale``); entries below ``PROB_FLOOR`` need only be
    tiny."""
    t = tol(dtype)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{msg}: shape {a.shape} != {e.shape}"
    assert np.all(np.isfinite(a)), f"{msg}: not finite"
    assert np.all((a >= 0) & (a <= 1)), f"{msg}: outside [0, 1]"
    sums = a.sum(axis=1)
    sum_tol = 4 * t["eps"] * max(a.shape[1], 1) + t["rtol"]
    bad_sum = ~(np.abs(sums - 1) <= sum_tol)
    if np.any(bad_sum):
        _fail(f"{msg}: rows do not sum to 1", sums, np.ones_like(sums), bad_sum)
    floor = PROB_FLOOR[np.dtype(dtype).type]
    scale = np.asarray(scale, dtype=np.float64)
    row_scale = np.broadcast_to(scale.reshape(-1, 1) if scale.ndim == 1 else scale, a.shape)
    big = e > floor
    with np.errstate(divide="ignore"):
        err = np.abs(np.log(a) - np.log(np.where(big, e, 1.0)))
    allowed = t["rtol"] + t["ulps"] * t["eps"] * row_scale
    bad = big & ~(err <= allowed)
    bad |= ~big & ~(a <= 10 * floor)
    if np.any(bad):
        _fail(msg, a, e, bad)


def allowed_classes(logits, bound):
    """Boolean mask: the classes an argmax may honestly return when logits are known to
    +-bound per row (those within 2 * bound of the row maximum)."""
    z = np.asarray(logits, dtype=np.float64)
    bound = np.asarray(bound, dtype=np.float64).reshape(-1, 1)
    return z >= z.max(axis=1, keepdims=True) - 2 * bound


def assert_argmax_consistent(pred, logits, bound, msg="predictions differ"):
    """Every prediction is the reference argmax, except where another class is within
    the rounding bound of the maximum (then any such class is accepted)."""
    pred = np.asarray(pred)
    ok = allowed_classes(logits, bound)
    assert pred.shape == (ok.shape[0],), f"{msg}: shape {pred.shape}"
    assert np.all((pred >= 0) & (pred < ok.shape[1])), f"{msg}: out of range {pred}"
    bad = ~ok[np.arange(len(pred)), pred]
    if np.any(bad):
        _fail(msg, pred, np.argmax(logits, axis=1), bad)


def correct_count_window(logits, y, bound):
    """(lo, hi): the number of correct argmax predictions is certainly >= lo and <= hi
    when logits are known to +-bound per row."""
    labels = labels_of(y)
    ok = allowed_classes(logits, bound)
    rows = np.arange(len(labels))
    ambiguous = ok.sum(axis=1) > 1
    surely = ~ambiguous & (np.argmax(logits, axis=1) == labels)
    maybe = ok[rows, labels]
    return int(surely.sum()), int(maybe.sum())


# --- Random search (``fastnn.search``) ---------------------------------------------------

#: The 1/5th success rule: sigma x2 on an improving step, x2**-1/4 otherwise, kept
#: within [scale * 2**-12, scale * 2**10] (the bounds fastnn documents).
SEARCH_ADAPT_UP, SEARCH_ADAPT_DOWN = 2.0, 2.0 ** -0.25
SEARCH_ADAPT_MIN, SEARCH_ADAPT_MAX = 2.0 ** -12, 2.0 ** 10


def random_search(sizes, params, X, y, noise, *, strategy="perturb", iterations, scale,
                  candidates=1, chains=1, adapt=False, target_loss=None, patience=None):
    """The book's random search, step by step and chain after chain, losses in float64.

    ``params``: the flat starting parameters (their dtype is the search's dtype).
    ``noise(chain, step, candidate, size, sigma, dtype)``: that candidate's noise, an
    array of ``dtype`` (``fastnn.gaussian_noise`` with the seed bound: this module stays
    plain NumPy).  At step i of chain c, candidate k is ``cur + noise(c, i, k, ...)``
    ("perturb", added in the parameters' dtype) or the noise alone ("random"); the
    step's best candidate (the lowest k wins a tie) replaces ``cur`` only if its loss is
    strictly lower.  ``adapt`` multiplies sigma by ``SEARCH_ADAPT_UP`` after an
    improving step and ``SEARCH_ADAPT_DOWN`` otherwise (clamped).  A chain stops once
    its loss is ``<= target_loss`` or after ``patience`` steps without improvement.

    Returns one dict per chain: ``params``, ``loss``, ``accuracy``, ``sigma``, ``steps``
    (done), ``last`` (step of the last improvement, -1: none), ``stopped``
    (None, "target_loss" or "patience"), ``evaluations``, ``history`` ((steps, losses,
    accuracies) arrays of the improvements) and ``decisions``: every pair of losses a
    decision compared, shape (m, 2), so a caller can see whether a rounding error of its
    own size could have flipped one (best vs current loss each step; best vs second best
    when the best was taken; loss vs target_loss)."""
    sizes = [int(s) for s in sizes]
    start = np.array(params, copy=True)
    dt = start.dtype
    random = {"perturb": False, "random": True}[strategy]
    target = -np.inf if target_loss is None else float(target_loss)
    loss0, acc0 = mlp_loss(sizes, start, X, y)
    out = []
    for c in range(chains):
        cur, loss, acc, sigma = start.copy(), loss0, acc0, float(scale)
        last, stopped = -1, ("target_loss" if loss <= target else None)
        hist, decisions = [], []
        if target_loss is not None:
            decisions.append((loss, target))
        s = 0
        while s < iterations and stopped is None:
            trials = []
            for k in range(candidates):
                z = noise(c, s, k, start.size, sigma, dt)
                assert z.dtype == dt and z.shape == start.shape
                trials.append(z if random else z + cur)  # rounded in the model dtype
            losses = [mlp_loss(sizes, t, X, y) for t in trials]
            kb = min(range(candidates), key=lambda k: (losses[k][0], k))
            decisions.append((losses[kb][0], loss))
            success = losses[kb][0] < loss
            if success:
                rest = sorted(lo for k, (lo, _) in enumerate(losses) if k != kb)
                if rest:
                    decisions.append((losses[kb][0], rest[0]))
                cur, (loss, acc), last = trials[kb], losses[kb], s
                hist.append((s, loss, acc))
            if adapt:
                sigma *= SEARCH_ADAPT_UP if success else SEARCH_ADAPT_DOWN
                sigma = min(max(sigma, scale * SEARCH_ADAPT_MIN), scale * SEARCH_ADAPT_MAX)
            if target_loss is not None:
                decisions.append((loss, target))
            if loss <= target:
                stopped = "target_loss"
            elif patience is not None and s - last >= patience:
                stopped = "patience"
            s += 1
        h = np.array(hist, dtype=np.float64).reshape(-1, 3)
        out.append(dict(
            params=cur, loss=loss, accuracy=acc, sigma=sigma, steps=s, last=last,
            stopped=stopped, evaluations=s * candidates,
            history=(h[:, 0].astype(np.int64), h[:, 1], h[:, 2]),
            decisions=np.array(decisions, dtype=np.float64).reshape(-1, 2)))
    return out
