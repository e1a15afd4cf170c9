"""Time Keras-JAX's fit on the workload of benches/finetune.rs.

One epoch of the seed model (784→64 L1 → 32 → 10, Adam, sparse categorical
cross-entropy) on 60 000 MNIST-shaped samples, batch size 32, shuffle=False.
The first epoch (with compilation) and the median of five further, warm
epochs are printed.

With `--kerasrs PATH` (a release build of kerasrs) the same data is also
written to a temporary `.npz` and each warm Keras epoch alternates with one
whole `kerasrs finetune` process on it, so that both sides are timed under the
same machine conditions (timings on a shared machine drift by ±10 % over
minutes); the medians and their ratio are printed.

Usage: KERAS_BACKEND=jax python benches/keras_finetune.py [--kerasrs PATH]
(needs the fixtures' virtual environment: pip install -r fixtures/requirements.txt)
"""

import argparse
import pathlib
import statistics
import subprocess
import tempfile
import time

import keras
import numpy as np

ROUNDS = 5

here = pathlib.Path(__file__).resolve().parent.parent
seed = here / "fixtures/models/seed.keras"
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--kerasrs", type=pathlib.Path, help="kerasrs binary to time alongside")
args = parser.parse_args()

rng = np.random.default_rng(0)
x = rng.random((60_000, 784), dtype=np.float32)
y = rng.integers(0, 10, 60_000)
model = keras.saving.load_model(seed)


def epoch():
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    return time.perf_counter() - t


def kerasrs(binary, data, out):
    t = time.perf_counter()
    subprocess.run(
        [binary, "finetune", seed, "--data", data, "--epochs", "1", "--batch-size", "32",
         "--no-shuffle", "--quiet", "--output", out],
        check=True,
    )
    return time.perf_counter() - t


first = epoch()
head = f"keras {keras.__version__} ({keras.backend.backend()}) fit, seed model, 60000x784, 1 epoch, batch 32"
print(f"{head}, first epoch (includes compilation): {first:.3f} s")
if args.kerasrs is None:
    warm = [epoch() for _ in range(ROUNDS)]
else:
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp) / "mnist_like.npz"
        out = pathlib.Path(tmp) / "out.keras"
        np.savez(data, x=x, y=y)
        kerasrs(args.kerasrs, data, out)  # page cache and binary warm
        ours, warm = [], []
        for _ in range(ROUNDS):
            ours.append(kerasrs(args.kerasrs, data, out))
            warm.append(epoch())
print(f"{head}, warm epoch: {statistics.median(warm):.3f} s (median of {ROUNDS})")
if args.kerasrs is not None:
    mine, theirs = statistics.median(ours), statistics.median(warm)
    print(f"kerasrs finetune, same data, alternating with Keras (whole process): "
          f"{mine:.3f} s (median of {ROUNDS})")
    print(f"alternating: kerasrs / Keras warm epoch = {mine / theirs:.2f} (target <= 0.25), "
          f"per round {min(o / w for o, w in zip(ours, warm)):.2f}-"
          f"{max(o / w for o, w in zip(ours, warm)):.2f}; "
          f"kerasrs / Keras first epoch = {mine / first:.2f}")
