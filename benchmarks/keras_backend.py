"""Epoch time of the seed networks under Keras 3's TensorFlow and JAX backends, on CPU.

Keras reads KERAS_BACKEND once, at import, so each backend runs in its own
interpreter: this project's (TensorFlow) and `--jax-python`, a Python with
`jax[cpu]` and the same Keras version (mlstrat does not install JAX; its
adapters feed TensorFlow `tf.data` pipelines and run on TensorFlow only). Both
train the same layer stacks (the seed LSTM: 128/64/32 over 50 bars with batch
norm, dropout and L2 1e-3; the seed Transformer: d_model 64, 4 heads, 2 blocks,
feed-forward 128, over 50 bars) on the same random windows, the size of one
4-month fold of 1h bars (2,321 windows x 46 features), for 3 epochs at batch 32
and 256. Reported: seconds per epoch after the first (which includes tracing or
compiling), and JAX's time over TensorFlow's. Prints one JSON object.

    .venv/bin/python benchmarks/keras_backend.py --jax-python /path/to/jax-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SAMPLES, WINDOW, FEATURES = 2_321, 50, 46
BATCHES = (32, 256)
EPOCHS = 3


def seed_lstm(keras):
    """The seed LSTM's layer stack (mlstrat.predictors.lstm builds the same one)."""
    reg = keras.regularizers.L2(1e-3)
    x = inputs = keras.Input((WINDOW, FEATURES))
    for i, (units, rate) in enumerate(((128, 0.3), (64, 0.3), (32, 0.2))):
        x = keras.layers.LSTM(units, return_sequences=i < 2, kernel_regularizer=reg)(x)
        if i < 2:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Dropout(rate)(x)
    x = keras.layers.Dense(16, activation="relu", kernel_regularizer=reg)(x)
    x = keras.layers.Dropout(0.1)(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def seed_transformer(keras):
    """The seed Transformer: projection, 2 post-norm encoder blocks, pooling (its positional
    encoding, an elementwise add, left out: a custom layer not worth porting for timing)."""
    x = inputs = keras.Input((WINDOW, FEATURES))
    x = keras.layers.Dense(64)(x)
    for _ in range(2):
        attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16, dropout=0.1)(x, x)
        x = keras.layers.LayerNormalization()(x + keras.layers.Dropout(0.1)(attended))
        ff = keras.layers.Dense(128, activation="relu")(x)
        ff = keras.layers.Dense(64)(keras.layers.Dropout(0.1)(ff))
        x = keras.layers.LayerNormalization()(x + ff)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def child() -> dict:
    """Time every network and batch size under this interpreter's KERAS_BACKEND."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((SAMPLES, WINDOW, FEATURES)).astype("float32")
    binary = (rng.random(SAMPLES) > 0.5).astype("float32")
    three = keras.utils.to_categorical(rng.integers(0, 3, SAMPLES), 3)
    out = {}
    for name, build, y, loss in (
        ("lstm", seed_lstm, binary, "binary_crossentropy"),
        ("transformer", seed_transformer, three, "categorical_crossentropy"),
    ):
        for batch in BATCHES:
            model = build(keras)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
            seconds = []
            for _ in range(EPOCHS):
                started = time.perf_counter()
                model.fit(X, y, batch_size=batch, epochs=1, verbose=0)
                seconds.append(time.perf_counter() - started)
            out[f"{name}_batch_{batch}"] = {
                "first_epoch_s": round(seconds[0], 2),
                "epoch_s": round(sum(seconds[1:]) / (EPOCHS - 1), 2),
            }
    return {"backend": keras.backend.backend(), "keras": keras.__version__, "runs": out}


def run(python: str, backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [python, __file__, "--child"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jax-python", required=False, help="a Python with jax[cpu] and Keras")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return
    load = os.getloadavg()[0]
    tf = run(sys.executable, "tensorflow")
    result = {
        "benchmark": "keras_backend",
        "tensorflow": tf,
        "load_average_1min_start": round(load, 2),
    }
    if args.jax_python:
        jax = run(args.jax_python, "jax")
        result["jax"] = jax
        result["jax_over_tensorflow_epoch_time"] = {
            k: round(jax["runs"][k]["epoch_s"] / v["epoch_s"], 2) for k, v in tf["runs"].items()
        }
    else:
        result["jax"] = "not run: give --jax-python"
    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
