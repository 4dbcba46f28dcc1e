"""TensorFlow plumbing for the Keras adapters: lazy import, threads, seeds, windows, inference.

Nothing here imports TensorFlow at module import; `import_tf()` does, once,
after applying the thread limits (they can only be set before the runtime
starts). Windowing is pure numpy so it can be tested without TensorFlow.
"""

from __future__ import annotations

import os
import random
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Environment variable read when an adapter's `n_threads` is None.
THREADS_ENV = "MLSTRAT_TF_THREADS"

_threads_applied: int | None = None
_threads_warned = False


def _requested_threads(n_threads: int | None) -> int | None:
    if n_threads is not None:
        return int(n_threads)
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    try:
        return max(1, int(env))
    except ValueError:
        from mlstrat.errors import ConfigError

        raise ConfigError(
            f"{THREADS_ENV}={env!r} is not an integer", fix=f"set {THREADS_ENV} to e.g. 1 or 2"
        ) from None


def import_tf(n_threads: int | None = None) -> Any:
    """Import TensorFlow (quietly) and cap its thread pools at `n_threads`.

    `n_threads` None falls back to $MLSTRAT_TF_THREADS, then to TensorFlow's
    default (all cores). Parallel fold workers should pass 1 (or set the
    variable) so k workers use k cores instead of k x cores. The limit can
    only be set before TensorFlow runs its first op; a later, different
    request is ignored with one warning.
    """
    global _threads_applied, _threads_warned
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    wanted = _requested_threads(n_threads)
    if wanted is None or wanted == _threads_applied:
        return tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(wanted)
        tf.config.threading.set_inter_op_parallelism_threads(wanted)
        _threads_applied = wanted
    except RuntimeError:
        if _env_threads_match(wanted):
            # The runtime started with the same limit from the environment
            # (walk-forward workers set it before TensorFlow loads).
            _threads_applied = wanted
        elif not _threads_warned:
            warnings.warn(
                f"TensorFlow is already running; cannot change its thread count to {wanted} "
                f"(set {THREADS_ENV} before the first model is built)",
                RuntimeWarning,
                stacklevel=2,
            )
            _threads_warned = True
    return tf


def _env_threads_match(wanted: int) -> bool:
    return all(
        os.environ.get(var) == str(wanted)
        for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    )


def import_keras(n_threads: int | None = None) -> Any:
    """Import Keras after `import_tf` has applied thread limits."""
    import_tf(n_threads)
    import keras

    return keras


class _ThreadSeeds:
    """Where Keras draws the seeds of layers built without one, per thread.

    Keras takes them from the process-wide `random` module, which other threads
    of the process use too (a Dask worker's event loop draws from it while a
    fold builds its network), so the same seed gave different weights on Dask
    than on loky. `set_seed` gives the calling thread its own generator.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def seed(self, seed: int) -> None:
        self._local.rng = random.Random(seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(self._local, "rng", None) or random, name)


_THREAD_SEEDS = _ThreadSeeds()


def _use_thread_seeds(seed: int) -> None:
    try:
        from keras.src.random import seed_generator
    except ImportError:  # another Keras layout: its process-wide seeding stays
        return
    if getattr(seed_generator, "python_random", None) is not _THREAD_SEEDS:
        seed_generator.python_random = _THREAD_SEEDS
    _THREAD_SEEDS.seed(seed)


def set_seed(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TF ops deterministic (bit-for-bit reruns),
    with this thread's own source of Keras layer seeds (see `_ThreadSeeds`)."""
    tf = import_tf()
    import keras

    keras.utils.set_random_seed(int(seed))
    _use_thread_seeds(int(seed))
    tf.config.experimental.enable_op_determinism()


# --------------------------------------------------------------------------- windows


def window_ready(values: np.ndarray, window: int) -> np.ndarray:
    """Boolean per row: True where the `window` rows ending here exist and are all finite.

    Rows before the first full window and rows whose window touches a NaN/inf
    are False. Computed with a cumulative count, no loop over rows.
    """
    values = np.asarray(values)
    n = values.shape[0]
    ready = np.zeros(n, dtype=bool)
    if n < window or n == 0:
        return ready
    bad = ~np.isfinite(values.reshape(n, -1)).all(axis=1)
    cum = np.concatenate([[0], np.cumsum(bad, dtype=np.int64)])
    bad_in_window = cum[window:] - cum[:-window]
    ready[window - 1 :] = bad_in_window == 0
    return ready


def sliding_windows(values: np.ndarray, window: int) -> np.ndarray:
    """Read-only view of shape (n - window + 1, window, n_features); row i ends at input row i + window - 1."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D (rows, features) array, got {values.ndim}-D")
    if values.shape[0] < window:
        return np.empty((0, window, values.shape[1]), dtype=values.dtype)
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return view.transpose(0, 2, 1)


def gather_windows(values: np.ndarray, window: int, rows: np.ndarray) -> np.ndarray:
    """Contiguous float32 array of the windows ending at the given row positions."""
    view = sliding_windows(values, window)
    return np.ascontiguousarray(view[np.asarray(rows) - (window - 1)], dtype=np.float32)


@dataclass(frozen=True)
class WindowedSamples:
    """Training/eval samples: window end rows, windows (float32) and aligned targets."""

    rows: np.ndarray
    X: np.ndarray
    y: np.ndarray


def make_samples(values: np.ndarray, targets: np.ndarray, window: int) -> WindowedSamples:
    """Windows ending at every row whose window is complete and finite and whose target is finite."""
    targets = np.asarray(targets, dtype=np.float64)
    t2 = targets.reshape(len(targets), -1)
    ok = window_ready(values, window) & np.isfinite(t2).all(axis=1)
    rows = np.flatnonzero(ok)
    X = gather_windows(values, window, rows)
    return WindowedSamples(rows=rows, X=X, y=targets[rows].astype(np.float32))


@dataclass(frozen=True)
class WindowSet:
    """Samples as window end positions into one 2-D array: no N x window x features copy.

    values: (rows, features) float32 model inputs, already scaled; rows: the
    position of each sample's last window row; y: model-ready targets, (n,) or
    (n, k); weights: one sample weight per sample, or None.
    """

    values: np.ndarray
    rows: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    def dataset(self, window: int, batch_size: int, seed: int | None = None) -> Any:
        """`window_dataset` over these samples (shuffled every epoch when `seed` is given)."""
        return window_dataset(
            self.values, self.rows, window, self.y, self.weights, batch_size=batch_size, seed=seed
        )


def window_dataset(
    values: np.ndarray,
    rows: np.ndarray,
    window: int,
    targets: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    batch_size: int,
    seed: int | None = None,
) -> Any:
    """A `tf.data` pipeline of (windows, targets[, weights]) batches gathered from 2-D `values`.

    Only `values` (rows x features) is held in memory; each batch's windows are
    gathered inside the graph, so training costs no N x window x features copy
    (1.6 GB for 73,000 windows of 120 x 46). With `seed` the sample order is
    reshuffled every epoch, the same sequence of orders on every run (a fixed
    seed and TensorFlow's op determinism); without it batches keep row order.
    """
    tf = import_tf()
    source = tf.constant(np.ascontiguousarray(values, dtype=np.float32))
    ends = tf.constant(np.asarray(rows, dtype=np.int64))
    offsets = tf.range(-(int(window) - 1), 1, dtype=tf.int64)
    parts = [tf.constant(np.asarray(targets, dtype=np.float32))]
    if weights is not None:
        parts.append(tf.constant(np.asarray(weights, dtype=np.float32)))

    def gather(pos: Any) -> tuple[Any, ...]:
        idx = tf.gather(ends, pos)[:, None] + offsets[None, :]
        return (tf.gather(source, idx), *(tf.gather(p, pos) for p in parts))

    positions = tf.data.Dataset.range(len(rows))
    if seed is not None:
        positions = positions.shuffle(len(rows), seed=int(seed), reshuffle_each_iteration=True)
    return positions.batch(int(batch_size)).map(gather).prefetch(2)


#: The quantity early stopping, checkpoints and learning-rate schedules follow when there
#: is a validation set: the validation loss without the weight penalty (L2) that Keras
#: adds to `val_loss`. With the seeds' L2 of 1e-3, `val_loss` keeps falling while
#: training merely shrinks the weights, so stopping on it trains nearly every epoch
#: and keeps weights that may fit the validation rows worse.
VAL_DATA_LOSS = "val_data_loss"


def data_loss_logger(keras: Any) -> Any:
    """A Keras callback adding `VAL_DATA_LOSS` to each epoch's logs: `val_loss` minus the
    weight penalty of the epoch's final weights, the ones validation ran with (exact, not
    an estimate). List it before the callbacks that monitor it."""

    class DataLossLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if logs is not None and "val_loss" in logs:
                penalty = sum(float(keras.ops.convert_to_numpy(x)) for x in self.model.losses)
                logs[VAL_DATA_LOSS] = float(logs["val_loss"]) - penalty

    return DataLossLogger()


def epoch_timer(keras: Any) -> Any:
    """A Keras callback recording each epoch's wall seconds in its `seconds` list (the first
    includes tracing the train step), the part of each spent on validation in `validation`,
    and when training began in `began`."""
    import time

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.validation: list[float] = []
            self.began = 0.0  # perf_counter() when training began
            self._start = self._test_start = 0.0

        def on_train_begin(self, logs: Any = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()
            self.validation.append(0.0)

        def on_test_begin(self, logs: Any = None) -> None:
            self._test_start = time.perf_counter()

        def on_test_end(self, logs: Any = None) -> None:
            if self.validation:
                self.validation[-1] += time.perf_counter() - self._test_start

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


# --------------------------------------------------------------------------- inference


class _Forward:
    """`model(x, training=False)` as a callable object for tf.function."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, x: Any) -> Any:
        return self.model(x, training=False)


class CompiledInference:
    """A Keras model behind two compiled `tf.function`s, never `model.predict`.

    batched: with `jit` (default) an XLA-compiled function of fixed input
    shape (chunk_size, window, n_features); inputs run chunk by chunk and the
    last chunk is zero-padded (rows are independent, padding rows are
    dropped). XLA fuses the LSTM gate arithmetic and cuts the per-step
    overhead, about twice the throughput of Keras' `model.predict` here.
    Without `jit` the signature is (None, window, n_features), one graph for
    any batch size. Either way there is exactly one trace.

    XLA chunks are dispatched from up to `workers` threads (the TensorFlow
    thread budget, at most 4): XLA leaves cores idle inside the recurrent
    loop, and results do not depend on which thread ran a chunk.

    single: fixed shape (1, window, n_features), XLA-compiled with `jit`;
    this is what makes per-bar online prediction cost about a millisecond.
    """

    def __init__(
        self,
        model: Any,
        window: int,
        n_features: int,
        *,
        chunk_size: int = 512,
        jit: bool = True,
        n_threads: int | None = None,
    ) -> None:
        tf = import_tf(n_threads)
        self.model = model
        self.window = int(window)
        self.n_features = int(n_features)
        self.chunk_size = int(chunk_size)
        self.jit = bool(jit)
        self.n_outputs = int(model.outputs[0].shape[-1])
        threads = _requested_threads(n_threads) or _threads_applied or os.cpu_count() or 1
        self.workers = max(1, min(int(threads), 4))
        self._batched_cf: Any = None
        self._single_cf: Any = None
        batch_dim = self.chunk_size if self.jit else None
        # Separate callable objects (not closures) so TensorFlow's retracing
        # statistics are per instance: many fold models are not "retracing".
        self.batched = tf.function(
            _Forward(model),
            input_signature=[tf.TensorSpec([batch_dim, self.window, self.n_features], tf.float32)],
            jit_compile=self.jit,
        )
        self.single = tf.function(
            _Forward(model),
            input_signature=[tf.TensorSpec([1, self.window, self.n_features], tf.float32)],
            jit_compile=self.jit,
        )

    def _run_chunk(self, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        if self.jit and n < self.chunk_size:
            padded = np.zeros((self.chunk_size, self.window, self.n_features), dtype=np.float32)
            padded[:n] = chunk
            chunk = padded
        return self._batched_fn()(chunk).numpy()[:n]

    def _batched_fn(self) -> Any:
        # The concrete function skips tf.function's per-call argument matching.
        if self._batched_cf is None:
            self._batched_cf = self.batched.get_concrete_function()
        return self._batched_cf

    def _single_fn(self) -> Any:
        if self._single_cf is None:
            self._single_cf = self.single.get_concrete_function()
        return self._single_cf

    def _collect(self, chunks: Iterator[np.ndarray], n: int) -> np.ndarray:
        """Run chunks in order; XLA chunks run on `workers` threads (TF releases the GIL)."""
        first = next(chunks, None)
        if first is None:
            return np.empty((0, self.n_outputs), dtype=np.float64)
        out = [self._run_chunk(first)]  # traces/compiles once, before any thread starts
        if self.jit and self.workers > 1 and n > self.chunk_size:
            # At most 2 x workers chunks in flight, so memory stays bounded.
            with ThreadPoolExecutor(self.workers) as pool:
                pending: deque[Any] = deque()
                for chunk in chunks:
                    pending.append(pool.submit(self._run_chunk, chunk))
                    if len(pending) >= 2 * self.workers:
                        out.append(pending.popleft().result())
                out.extend(f.result() for f in pending)
        else:
            out.extend(self._run_chunk(c) for c in chunks)
        return np.concatenate(out).astype(np.float64).reshape(n, -1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Model outputs (float64, n x outputs) for a (n, window, n_features) array."""
        X = np.asarray(X, dtype=np.float32)
        chunks = (
            np.ascontiguousarray(X[s : s + self.chunk_size])
            for s in range(0, len(X), self.chunk_size)
        )
        return self._collect(chunks, len(X))

    def predict_rows(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Outputs for the windows of `values` ending at `rows`, gathered chunk by chunk."""
        view = sliding_windows(values, self.window)
        rows = np.asarray(rows, dtype=np.int64)
        chunks = (
            np.ascontiguousarray(
                view[rows[s : s + self.chunk_size] - (self.window - 1)], np.float32
            )
            for s in range(0, len(rows), self.chunk_size)
        )
        return self._collect(chunks, len(rows))

    def one(self, window_values: np.ndarray) -> np.ndarray:
        """Output row (float64, 1-D) for one (window, n_features) array via the fixed-shape function."""
        x = np.ascontiguousarray(window_values, dtype=np.float32).reshape(
            1, self.window, self.n_features
        )
        return self._single_fn()(x).numpy().astype(np.float64).reshape(-1)


__all__ = [
    "THREADS_ENV",
    "CompiledInference",
    "WindowSet",
    "WindowedSamples",
    "epoch_timer",
    "gather_windows",
    "import_keras",
    "import_tf",
    "make_samples",
    "set_seed",
    "sliding_windows",
    "window_dataset",
    "window_ready",
]
