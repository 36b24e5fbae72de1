"""Optional peers: the book's random search in PyTorch (eager) and in JAX (compiled).

Run from the repository root (not part of the default test run; each peer is skipped
when it is not installed, neither is a dependency of fastnn)::

    pip install torch "jax[cpu]"            # optional; CPU builds are enough
    python -m pytest bench/test_bench_peers.py --benchmark-json=bench-peers.json
    python bench/report.py bench-peers.json

The workload is ``test_bench_search.py``'s ``search_book``: nnfs ``spiral_data(100,
3)`` (float32), 2-3-3, perturbation search from ``MLP([2, 3, 3], seed=0)``'s
parameters, 10,000 steps, noise scale 0.05, a step kept if the loss drops.  One group
per peer, ``search_book_<peer>|2-3-3|n=300|10000_steps``, holds fastnn (the subject,
``fastnn.search`` in serial mode on one thread, as in ``search_book``) and the peer
(a baseline through ``extra_info["role"]``), so the report's ratio is fastnn against
that peer:

* ``torch-eager``: PyTorch eager under ``torch.no_grad()``, float32, every buffer
  allocated once (``addmm``/``clamp_`` with ``out=``), ``log_softmax`` + ``gather``
  for the clipped loss, one ``torch.randn`` per step from a seeded ``Generator``, the
  keep-or-not decision in Python (``.item()``); ``torch.set_num_threads(1)`` while timed.
* ``jax-jit``: the whole loop in one ``jax.jit``-compiled ``lax.fori_loop`` (noise from
  ``jax.random.fold_in(key, step)``, the decision by ``jnp.where``); compilation
  excluded (the correctness check compiles it).  XLA picks its own CPU threads;
  ``cpu_per_wall`` in ``extra_info`` records how many cores each implementation kept
  busy.

Each peer draws its own random numbers, so the final losses differ (recorded as
``final_loss``); what is checked before timing is that each peer computes the same loss
function as fastnn (on the start and on fastnn's result) and that its search lowers the
loss over the same number of evaluations.  Under ``--benchmark-disable`` (CI's smoke
run) the searches shrink to a few steps.
"""

import importlib.util
import math
import resource
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn

PEERS = {"torch": "torch-eager", "jax": "jax-jit"}
#: timed rounds per implementation (a torch round is ~1-2 s)
ROUNDS = {"fastnn": 15, "torch": 3, "jax": 7}


def _load(name, path):
    """A module loaded by its path (``bench`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: ``bench/test_bench_search.py``: the book workload, its data and check, fastnn's timing.
search_bench = _load("fastnn_bench_search", Path(__file__).with_name("test_bench_search.py"))
BOOK, SEED, RTOL = search_bench.BOOK, search_bench.SEED, search_bench.RTOL
#: the clip bounds in log space, as float32 rounds them (float32(1 - 1e-7) = 1 - 2**-23)
LOG_LO = math.log(float(np.float32(1e-7)))
LOG_HI = math.log(float(np.float32(1 - 1e-7)))


@pytest.fixture(scope="module")
def smoke(request):
    """True under ``--benchmark-disable``: run every body once on a tiny workload."""
    return bool(request.config.getoption("benchmark_disable", default=False))


@pytest.fixture(scope="module")
def book(smoke):
    """(X, y, start params, steps, fastnn's result); fastnn compiled and checked."""
    _, X, y, start, iterations = search_bench.prepared(BOOK, smoke)
    result = fastnn.search(fastnn.MLP(list(BOOK.sizes), seed=0), X, y,
                           iterations=iterations, scale=BOOK.scale, seed=SEED)
    return X, y, start, iterations, result


def cpu_per_wall(fn):
    """Run ``fn`` once; process CPU seconds per wall-clock second (1.0: one busy core)."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return round(cpu / (t1 - t0), 2)


# -- PyTorch eager ----------------------------------------------------------------------
class TorchSearch:
    """The book's perturbation search in PyTorch eager mode, float32, no autograd."""

    def __init__(self, torch, X, y, sizes):
        self.torch = torch
        n, (d, hid, c) = X.shape[0], sizes
        self.X = torch.from_numpy(np.ascontiguousarray(X, np.float32))
        self.y = torch.from_numpy(np.asarray(y, np.int64)).reshape(-1, 1)
        n_params = d * hid + hid + hid * c + c
        self.best, self.trial, self.noise = (torch.empty(n_params) for _ in range(3))
        t, o = self.trial, 0
        self.W1 = t[o:o + d * hid].view(d, hid)
        o += d * hid
        self.b1 = t[o:o + hid]
        o += hid
        self.W2 = t[o:o + hid * c].view(hid, c)
        o += hid * c
        self.b2 = t[o:o + c]
        self.h, self.z = torch.empty(n, hid), torch.empty(n, c)

    def loss(self):
        """Mean clipped cross-entropy of the parameters in ``self.trial`` (a float)."""
        torch = self.torch
        torch.addmm(self.b1, self.X, self.W1, out=self.h)
        self.h.clamp_(min=0)
        torch.addmm(self.b2, self.h, self.W2, out=self.z)
        picked = torch.log_softmax(self.z, dim=1).gather(1, self.y)
        return -picked.clamp_(LOG_LO, LOG_HI).mean().item()

    def loss_of(self, params):
        with self.torch.no_grad():
            self.trial.copy_(self.torch.from_numpy(np.asarray(params, np.float32)))
            return self.loss()

    def __call__(self, start, iterations, scale, seed):
        """Search from ``start``; returns (best loss, evaluations)."""
        torch = self.torch
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.trial.copy_(torch.from_numpy(np.asarray(start, np.float32)))
            self.best.copy_(self.trial)
            best_loss = self.loss()
            for _ in range(iterations):
                torch.randn(self.noise.shape, generator=g, out=self.noise)
                torch.add(self.best, self.noise, alpha=scale, out=self.trial)
                loss = self.loss()
                if loss < best_loss:
                    best_loss = loss
                    self.best.copy_(self.trial)
        return best_loss, iterations


class _TorchOneThread:
    """``torch.set_num_threads(1)`` for the duration (fastnn's book run uses one core)."""

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        self.saved = self.torch.get_num_threads()
        self.torch.set_num_threads(1)

    def __exit__(self, *exc):
        self.torch.set_num_threads(self.saved)


def make_torch(X, y, sizes):
    torch = pytest.importorskip("torch")
    search = TorchSearch(torch, X, y, list(sizes))

    def run(start, iterations, scale, seed):
        with _TorchOneThread(torch):
            return search(start, iterations, scale, seed)

    return run, search.loss_of, f"torch {torch.__version__}"


# -- JAX --------------------------------------------------------------------------------
def make_jax(X, y, sizes):
    jax = pytest.importorskip("jax")
    jnp, lax = jax.numpy, jax.lax
    d, hid, c = sizes
    Xj = jnp.asarray(X, dtype=jnp.float32)
    yj = jnp.asarray(np.asarray(y, np.int32)).reshape(-1, 1)

    def loss(params, X, y):
        o = 0
        W1 = params[o:o + d * hid].reshape(d, hid)
        o += d * hid
        b1 = params[o:o + hid]
        o += hid
        W2 = params[o:o + hid * c].reshape(hid, c)
        o += hid * c
        b2 = params[o:o + c]
        h = jnp.maximum(X @ W1 + b1, 0)
        logp = jax.nn.log_softmax(h @ W2 + b2, axis=1)
        picked = jnp.take_along_axis(logp, y, axis=1)
        return -jnp.mean(jnp.clip(picked, LOG_LO, LOG_HI))

    @jax.jit
    def search(start, key, iterations, scale, X, y):
        def step(i, state):
            best, best_loss = state
            noise = jax.random.normal(jax.random.fold_in(key, i), best.shape, jnp.float32)
            trial = best + scale * noise
            trial_loss = loss(trial, X, y)
            better = trial_loss < best_loss
            return jnp.where(better, trial, best), jnp.where(better, trial_loss, best_loss)

        return lax.fori_loop(0, iterations, step, (start, loss(start, X, y)))

    loss_jit = jax.jit(loss)

    def run(start, iterations, scale, seed):
        _, best_loss = search(jnp.asarray(start, jnp.float32), jax.random.key(seed),
                              iterations, jnp.float32(scale), Xj, yj)
        return float(best_loss.block_until_ready()), iterations

    def loss_of(params):
        return float(loss_jit(jnp.asarray(params, jnp.float32), Xj, yj))

    return run, loss_of, f"jax {jax.__version__} ({jax.devices()[0].platform})"


MAKERS = {"torch": make_torch, "jax": make_jax}


@pytest.fixture(scope="module", params=list(PEERS))
def peer(request, book):
    """(peer name, its search, version, the book workload), checked against fastnn on
    the book workload; skipped if the peer is not installed."""
    name = request.param
    X, y, start, iterations, result = book
    run, loss_of, version = MAKERS[name](X, y, BOOK.sizes)
    first = fastnn.MLP(list(BOOK.sizes), seed=0).loss(X, y)
    assert loss_of(start) == pytest.approx(first, rel=RTOL), name
    assert loss_of(result.params) == pytest.approx(result.loss, rel=RTOL), name
    loss, evaluations = run(start, iterations, BOOK.scale, SEED)  # compiles (jax)
    assert evaluations == iterations and loss < first, (name, loss, first)
    return name, run, version, book


def setup(benchmark, peer_name, impl, iterations, **info):
    search_bench.setup(benchmark, BOOK.group(iterations, f"book_{peer_name}"), impl,
                       evaluations=iterations, **info)


def test_peer_fastnn(benchmark, peer):
    """fastnn in each peer's group (the same run as ``search_book``'s fastnn)."""
    name, _, _, (X, y, _, iterations, _) = peer
    setup(benchmark, name, "fastnn", iterations, threads=1)
    result = search_bench.fastnn_rounds(benchmark, BOOK.sizes, X, y,
                                        rounds=ROUNDS["fastnn"], iterations=iterations,
                                        scale=BOOK.scale)
    assert result.mode == "serial" and result.evaluations == iterations
    benchmark.extra_info["final_loss"] = result.loss
    benchmark.extra_info["cpu_per_wall"] = cpu_per_wall(lambda: fastnn.search(
        fastnn.MLP(list(BOOK.sizes), seed=0), X, y, iterations=iterations,
        scale=BOOK.scale, seed=SEED))
    search_bench.record_rate(benchmark)


def test_peer(benchmark, peer):
    name, run, version, (_, _, start, iterations, _) = peer
    setup(benchmark, name, PEERS[name], iterations, role="baseline", version=version)
    args = (start, iterations, BOOK.scale, SEED)
    loss, evaluations = benchmark.pedantic(run, args=args, rounds=ROUNDS[name])
    assert evaluations == iterations
    benchmark.extra_info["final_loss"] = loss
    benchmark.extra_info["cpu_per_wall"] = cpu_per_wall(lambda: run(*args))
    search_bench.record_rate(benchmark)
