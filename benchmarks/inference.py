"""Inference speed of the `lstm` predictor: compiled paths vs Keras `model.predict`.

The predictor has its default sizes (LSTM 128/64/32, BatchNorm, Dense head)
with a window of 96 x 17 features. Its weights are untrained (random
initialisation from the seed): inference cost does not depend on weight
values, so no training is needed for timing.

* batched: `predictor.predict(frame)` over a frame giving N complete windows
  (windowing + scaling + the XLA-compiled `tf.function` of fixed shape
  (512, 96, 17), run chunk by chunk) vs `model.predict(windows)` (Keras default
  batch size 32) on the same, already materialised windows. Target >= 2x.
* single: `predictor.predict_one(window)` (fixed-shape (1, 96, 17)
  `tf.function`, XLA-compiled) vs `model.predict(window[None])`; medians of
  repeated calls after a warm-up call. Target >= 50x faster and <= 2 ms.

Prints one JSON object.

    .venv/bin/python benchmarks/inference.py [--windows 100000] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlstrat.predictors.keras_utils import import_keras, sliding_windows  # noqa: E402
from mlstrat.predictors.lstm import LSTMPredictor  # noqa: E402
from mlstrat.predictors.scaling import StandardScaler  # noqa: E402

WINDOW, N_FEATURES = 96, 17


def untrained_predictor(seed: int, n_threads: int | None) -> LSTMPredictor:
    """Default-size `lstm` predictor with seeded random weights and an identity-like scaler."""
    predictor = LSTMPredictor(window=WINDOW, seed=seed, n_threads=n_threads)
    # Seeded weights, but no op determinism: Keras' predict gets its fastest setting.
    import_keras(n_threads).utils.set_random_seed(seed)
    predictor.feature_names = [f"f{i:02d}" for i in range(N_FEATURES)]
    rng = np.random.default_rng(seed)
    predictor.x_scaler_ = StandardScaler().fit(rng.standard_normal((1000, N_FEATURES)))
    predictor.model_ = predictor._build_model(N_FEATURES, steps_per_epoch=1)
    return predictor


def timed(fn) -> tuple[object, float, float]:
    """Result, wall seconds and CPU seconds of this process (the latter is robust to other load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def time_calls(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads")
    parser.add_argument("--single-calls", type=int, default=300)
    parser.add_argument("--keras-single-calls", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]

    predictor = untrained_predictor(args.seed, args.threads)
    model = predictor.model_
    rng = np.random.default_rng(args.seed + 1)
    n_rows = args.windows + WINDOW - 1
    frame = pd.DataFrame(
        rng.standard_normal((n_rows, N_FEATURES)),
        columns=predictor.feature_names,
        index=pd.date_range("2025-01-01", periods=n_rows, freq="1min", tz="UTC"),
    )
    scaled = predictor.x_scaler_.transform(frame.to_numpy())
    windows = np.ascontiguousarray(sliding_windows(scaled, WINDOW), dtype=np.float32)

    # Warm-up: trace/compile every path once, outside the timings.
    predictor.predict(frame.iloc[: WINDOW + 10])
    model.predict(windows[:64], verbose=0)
    one = frame.to_numpy()[-WINDOW:]
    predictor.predict_one(one)
    model.predict(windows[-1:], verbose=0)

    pred, ours_s, ours_cpu = timed(lambda: predictor.predict(frame))
    keras_out, keras_s, keras_cpu = timed(lambda: model.predict(windows, verbose=0))
    p_up = pred.proba[WINDOW - 1 :, 1]
    max_diff = float(np.max(np.abs(p_up - keras_out[:, 0].astype(np.float64))))

    one_s = time_calls(lambda: predictor.predict_one(one), args.single_calls)
    keras_one_s = time_calls(
        lambda: model.predict(windows[-1:], verbose=0), args.keras_single_calls
    )
    one_ms = float(np.median(one_s) * 1e3)
    keras_one_ms = float(np.median(keras_one_s) * 1e3)
    single_diff = float(abs(predictor.predict_one(one).proba[0, 1] - p_up[-1]))

    batched_speedup = keras_s / ours_s
    single_speedup = keras_one_ms / one_ms
    result = {
        "benchmark": "inference",
        "predictor": "lstm",
        "architecture": {
            "window": WINDOW,
            "n_features": N_FEATURES,
            "units": list(predictor.units),
            "dense_units": predictor.dense_units,
            "batch_norm_layers": predictor.batch_norm_layers,
            "parameters": int(model.count_params()),
        },
        "weights": "untrained (seeded random init); cost does not depend on weight values",
        "batched": {
            "n_windows": args.windows,
            "predict_s": round(ours_s, 3),
            "keras_model_predict_s": round(keras_s, 3),
            "predict_windows_per_s": round(args.windows / ours_s, 1),
            "keras_windows_per_s": round(args.windows / keras_s, 1),
            "speedup": round(batched_speedup, 2),
            "target_speedup": 2.0,
            "predict_cpu_s": round(ours_cpu, 3),
            "keras_model_predict_cpu_s": round(keras_cpu, 3),
            "cpu_time_ratio": round(keras_cpu / ours_cpu, 2),
            "max_abs_diff_vs_keras": max_diff,
        },
        "single": {
            "predict_one_ms_median": round(one_ms, 3),
            "predict_one_ms_p90": round(float(np.percentile(one_s, 90) * 1e3), 3),
            "keras_model_predict_ms_median": round(keras_one_ms, 3),
            "speedup": round(single_speedup, 1),
            "target_speedup": 50.0,
            "target_ms": 2.0,
            "abs_diff_vs_batched": single_diff,
        },
        "meets_targets": bool(batched_speedup >= 2.0 and single_speedup >= 50.0 and one_ms <= 2.0),
        "tf_threads": args.threads or os.environ.get("MLSTRAT_TF_THREADS") or "default",
        "cpu_count": os.cpu_count(),
        "load_average_1min": {
            "start": round(load_at_start, 2),
            "end": round(os.getloadavg()[0], 2),
        },
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
