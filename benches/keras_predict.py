"""Time Keras-JAX's in-process predict on the same workload as benches/predict.rs.

Usage: KERAS_BACKEND=jax python benches/keras_predict.py
(needs the fixtures' virtual environment: pip install -r fixtures/requirements.txt)
"""

import pathlib
import statistics
import time

import keras
import numpy as np

here = pathlib.Path(__file__).resolve().parent.parent
model = keras.saving.load_model(here / "fixtures/models/seed.keras")
x = np.random.default_rng(0).random((60_000, 784), dtype=np.float32)
model.predict(x, batch_size=1024, verbose=0)  # compile / warm up
times = []
for _ in range(9):
    t = time.perf_counter()
    model.predict(x, batch_size=1024, verbose=0)
    times.append(time.perf_counter() - t)
print(f"keras {keras.__version__} ({keras.backend.backend()}) predict 60000x784 seed model, "
      f"batch 1024: {statistics.median(times):.4f} s (median of 9)")
