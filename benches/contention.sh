#!/usr/bin/env bash
# Training on a busy machine: one epoch of the seed MLP (60 000 x 784, batch
# 32) and of the keras-io MNIST convnet (4 000 rows, batch 128), idle and
# with BUSY (default 4) busy-looping processes on the machine, with kerasrs's
# default threads and with RAYON_NUM_THREADS=1. Under contention the default
# must stay no slower than the single-threaded run under the same load, and
# within 4x its own idle time.
#
# Usage: bash benches/contention.sh   (needs a Python with numpy and Keras,
# PYTHON=..., default: the CI virtual environment, for the data and models)
set -euo pipefail
cd "$(dirname "$0")/.."
busy="${BUSY:-4}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    for cand in "${XDG_CACHE_HOME:-$HOME/.cache}"/kerasrs/venv-*/bin/python python3; do
        if KERAS_BACKEND=jax "$cand" -c "import keras" >/dev/null 2>&1; then py="$cand"; break; fi
    done
fi
cargo build --release --quiet
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
KERAS_BACKEND=jax "$py" - "$tmp" <<'PY'
import sys, numpy as np, keras
tmp = sys.argv[1]
rng = np.random.default_rng(0)
np.savez(f"{tmp}/mlp.npz", x=rng.random((60000, 784), dtype=np.float32), y=rng.integers(0, 10, 60000))
L = keras.layers
m = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                      L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5),
                      L.Dense(10, activation="softmax")])
m.compile(optimizer="adam", loss="categorical_crossentropy")
m.save(f"{tmp}/convnet.keras")
np.savez(f"{tmp}/convnet.npz", x=rng.random((4000, 28, 28, 1), dtype=np.float32),
         y=np.eye(10, dtype=np.float32)[rng.integers(0, 10, 4000)])
PY
k=target/release/kerasrs
run() {  # threads label model data batch -> median of 3 wall times
    local threads=$1 model=$2 data=$3 batch=$4 ts=()
    for _ in 1 2 3; do
        local t0 t1
        t0=$(date +%s.%N)
        RAYON_NUM_THREADS=$threads "$k" finetune "$model" --data "$data" --epochs 1 --batch-size "$batch" \
            --no-shuffle --quiet --output "$tmp/out.keras"
        t1=$(date +%s.%N)
        ts+=("$(echo "$t1 - $t0" | bc)")
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p
}
report() {  # workload name, model, data, batch
    for w in "seed fixtures/models/seed.keras $tmp/mlp.npz 32" "convnet $tmp/convnet.keras $tmp/convnet.npz 128"; do
        set -- $w
        printf '%-8s default %6.3f s   RAYON_NUM_THREADS=1 %6.3f s\n' "$1" \
            "$(run "" "$2" "$3" "$4")" "$(run 1 "$2" "$3" "$4")"
    done
}
echo "idle:"
report | sed 's/^/  /'
for _ in $(seq "$busy"); do timeout 600 sh -c 'while :; do :; done' & pids+=($!); done
echo "with $busy busy processes:"
report | sed 's/^/  /'
