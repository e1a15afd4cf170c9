"""Time one training epoch of the keras-io "Simple MNIST convnet" in Keras-JAX
and in kerasrs, alternating, on the same MNIST-shaped data.

The model (keras-io examples/vision/mnist_convnet.py): Input (28, 28, 1) ->
Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) ->
MaxPooling2D(2) -> Flatten -> Dropout(0.5) -> Dense(10, softmax), with an L1
penalty of 1e-4 on the first kernel; Adam, categorical cross-entropy, batch
128. Data: ROWS random images in [0, 1) with random one-hot labels (the speed
does not depend on the values).

The model is built and saved once; Keras then runs a first epoch (with
compilation) and ROUNDS warm epochs, each alternating with one whole
`kerasrs finetune` process on the saved model and an `.npz` of the same data,
so both are timed under the same machine conditions. Medians and their ratio
are printed (the target is kerasrs <= 0.1 x Keras's warm epoch).

With `--predict` it also times inference of MobileNetV2 (alpha 0.35, 96x96x3,
weights=None) on 1 000 images: Keras's in-process `model.predict` against a
whole `kerasrs predict` process.

Usage: KERAS_BACKEND=jax python benches/keras_convnet.py --kerasrs target/release/kerasrs
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

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--kerasrs", type=pathlib.Path, required=True, help="kerasrs binary")
parser.add_argument("--rows", type=int, default=4000, help="training rows (default 4000)")
parser.add_argument("--predict", action="store_true", help="also time MobileNetV2 inference")
args = parser.parse_args()

keras.utils.set_random_seed(0)
layers = keras.layers
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu", kernel_regularizer=keras.regularizers.L1(1e-4)),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.random((args.rows, 28, 28, 1), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.rows)]


def epoch():
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=128, shuffle=False, verbose=0)
    return time.perf_counter() - t


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    saved, data, out = tmp / "convnet.keras", tmp / "mnist_like.npz", tmp / "out.keras"
    model.save(saved)
    np.savez(data, x=x, y=y)
    finetune = [args.kerasrs, "finetune", saved, "--data", data, "--epochs", "1",
                "--batch-size", "128", "--no-shuffle", "--quiet", "--output", out]
    first = epoch()
    head = (f"keras {keras.__version__} ({keras.backend.backend()}) fit, MNIST convnet, "
            f"{args.rows}x28x28x1, 1 epoch, batch 128")
    print(f"{head}, first epoch (includes compilation): {first:.3f} s")
    timed(finetune)  # page cache and binary warm
    ours, warm = [], []
    for _ in range(ROUNDS):
        ours.append(timed(finetune))
        warm.append(epoch())
    mine, theirs = statistics.median(ours), statistics.median(warm)
    print(f"{head}, warm epoch: {theirs:.3f} s (median of {ROUNDS})")
    print(f"kerasrs finetune, same data, alternating with Keras (whole process): "
          f"{mine:.3f} s (median of {ROUNDS})")
    print(f"convnet alternating: kerasrs / Keras warm epoch = {mine / theirs:.3f} "
          f"(target <= 0.1), per round {min(o / w for o, w in zip(ours, warm)):.3f}-"
          f"{max(o / w for o, w in zip(ours, warm)):.3f}")

    if args.predict:
        keras.backend.clear_session()
        net = keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
        )
        images = rng.random((1000, 96, 96, 3), dtype=np.float32)
        net_path, xin, yout = tmp / "mobilenetv2.keras", tmp / "images.npy", tmp / "pred.npy"
        net.save(net_path)
        np.save(xin, images)
        net.predict(images, batch_size=32, verbose=0)  # compile
        predict = [args.kerasrs, "predict", net_path, "--input", xin, "--output", yout]
        timed(predict)
        ours, theirs = [], []
        for _ in range(3):
            ours.append(timed(predict))
            t = time.perf_counter()
            net.predict(images, batch_size=32, verbose=0)
            theirs.append(time.perf_counter() - t)
        mine, keras_s = statistics.median(ours), statistics.median(theirs)
        print(f"MobileNetV2 (alpha 0.35, 96x96x3) predict 1000 images: keras {keras_s:.3f} s, "
              f"kerasrs (whole process) {mine:.3f} s, ratio {mine / keras_s:.2f} (target <= 1)")
