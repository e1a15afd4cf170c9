"""Time one training epoch of the keras-io bidirectional LSTM on IMDB-shaped
data in Keras-JAX and in kerasrs, alternating, on the same data.

The model (keras-io examples/nlp/bidirectional_lstm_imdb.py): Input (200,)
int32 token ids -> Embedding(20000, 128) -> Bidirectional(LSTM(64,
return_sequences=True)) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid); Adam,
binary cross-entropy, batch 32. Data: ROWS random sequences of ids in
[1, 20000) with random 0/1 labels (the speed does not depend on the values).

The model is built and saved once; Keras then runs a first epoch (with
compilation) and ROUNDS warm epochs, each alternating with one whole
`kerasrs finetune` process on the saved model and an `.npz` of the same data,
so both are timed under the same machine conditions. Medians and their ratio
are printed (the target is kerasrs <= 0.5 x Keras's warm epoch).

Usage: KERAS_BACKEND=jax python benches/keras_lstm.py --kerasrs target/release/kerasrs
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

VOCAB, LENGTH, BATCH = 20000, 200, 32

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--kerasrs", type=pathlib.Path, required=True, help="kerasrs binary")
parser.add_argument("--rows", type=int, default=1024, help="training rows (default 1024)")
parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
args = parser.parse_args()

keras.utils.set_random_seed(0)
layers = keras.layers
model = keras.Sequential(
    [
        keras.Input((LENGTH,), dtype="int32"),
        layers.Embedding(VOCAB, 128),
        layers.Bidirectional(layers.LSTM(64, return_sequences=True)),
        layers.Bidirectional(layers.LSTM(64)),
        layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.integers(1, VOCAB, size=(args.rows, LENGTH)).astype(np.int32)
y = rng.integers(0, 2, size=(args.rows, 1)).astype(np.float32)


def epoch():
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    return time.perf_counter() - t


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    saved, data, out = tmp / "bilstm.keras", tmp / "imdb_like.npz", tmp / "out.keras"
    model.save(saved)
    np.savez(data, x=x, y=y)
    finetune = [args.kerasrs, "finetune", saved, "--data", data, "--epochs", "1",
                "--batch-size", str(BATCH), "--no-shuffle", "--quiet", "--output", out]
    first = epoch()
    head = (f"keras {keras.__version__} ({keras.backend.backend()}) fit, bidirectional LSTM, "
            f"{args.rows}x{LENGTH} ids, 1 epoch, batch {BATCH}")
    print(f"{head}, first epoch (includes compilation): {first:.3f} s")
    timed(finetune)  # page cache and binary warm
    ours, warm = [], []
    for _ in range(args.rounds):
        ours.append(timed(finetune))
        warm.append(epoch())
    mine, theirs = statistics.median(ours), statistics.median(warm)
    print(f"{head}, warm epoch: {theirs:.3f} s (median of {args.rounds})")
    print(f"kerasrs finetune, same data, alternating with Keras (whole process): "
          f"{mine:.3f} s (median of {args.rounds})")
    print(f"bidirectional LSTM alternating: kerasrs / Keras warm epoch = {mine / theirs:.3f} "
          f"(target <= 0.5), per round {min(o / w for o, w in zip(ours, warm)):.3f}-"
          f"{max(o / w for o, w in zip(ours, warm)):.3f}")
