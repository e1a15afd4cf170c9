"""Time Keras-JAX's fit on the workload of benches/finetune.rs.

One epoch of the seed model (784→64 L1 → 32 → 10, Adam, sparse categorical
cross-entropy) on 60 000 MNIST-shaped samples, batch size 32, shuffle=False.
The first epoch (with compilation) and the median of three further, warm
epochs are printed.

Usage: KERAS_BACKEND=jax python benches/keras_finetune.py
"""

import pathlib
import time

import keras
import numpy as np

here = pathlib.Path(__file__).resolve().parent.parent
rng = np.random.default_rng(0)
x = rng.random((60_000, 784), dtype=np.float32)
y = rng.integers(0, 10, 60_000)
model = keras.saving.load_model(here / "fixtures/models/seed.keras")


def epoch():
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    return time.perf_counter() - t


first = epoch()
warm = sorted(epoch() for _ in range(3))[1]
head = f"keras {keras.__version__} ({keras.backend.backend()}) fit, seed model, 60000x784, 1 epoch, batch 32"
print(f"{head}, first epoch (includes compilation): {first:.3f} s")
print(f"{head}, warm epoch: {warm:.3f} s (median of 3)")
