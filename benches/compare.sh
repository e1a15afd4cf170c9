#!/usr/bin/env bash
# Run the kerasrs benchmarks and, when a Python with Keras is available
# (PYTHON=/path/to/python, default: the CI virtual environment or python3),
# the same workloads in Keras-JAX, one after the other on this machine, then
# print the ratios (the training target is kerasrs ≤ 0.25 × Keras's epoch).
# The training comparison that counts is the last one: Keras's warm epochs
# alternate with whole kerasrs processes on the same data, so both sides are
# timed under the same machine conditions.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench --bench predict | tee -a "$out"
cargo bench --bench finetune | tee -a "$out"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    for cand in "${XDG_CACHE_HOME:-$HOME/.cache}"/kerasrs/venv-*/bin/python python3; do
        if KERAS_BACKEND=jax "$cand" -c "import keras" >/dev/null 2>&1; then py="$cand"; break; fi
    done
fi
if [ -z "$py" ]; then
    echo "no Python with Keras found: set PYTHON to compare with Keras"
    exit 0
fi
KERAS_BACKEND=jax "$py" benches/keras_predict.py | tee -a "$out"
cargo build --release --quiet
KERAS_BACKEND=jax "$py" benches/keras_finetune.py --kerasrs target/release/kerasrs | tee -a "$out"
# The seconds on the line matching a pattern (the number before " s").
secs() { grep -E "$1" "$out" | grep -oE '[0-9]+\.[0-9]+ s' | head -1 | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ours=$(secs '^kerasrs finetune')
warm=$(secs 'fit.*warm epoch')
first=$(secs 'fit.*first epoch')
echo
echo "predict: kerasrs / Keras = $(ratio "$(secs '^predict ')" "$(secs 'keras .* predict')")"
echo "one epoch: kerasrs (whole process, cargo bench) / Keras warm epoch = $(ratio "$ours" "$warm")"
echo "one epoch: kerasrs (whole process, cargo bench) / Keras first epoch (with compilation) = $(ratio "$ours" "$first")"
grep '^alternating:' "$out" | sed 's/^alternating: /one epoch, alternating runs: /'
# Image models: the keras-io MNIST convnet's epoch and MobileNetV2 inference.
KERAS_BACKEND=jax "$py" benches/keras_convnet.py --kerasrs target/release/kerasrs --predict \
    | grep -E 'convnet alternating|MobileNetV2'
# Sequence models: the keras-io bidirectional LSTM's epoch on IMDB-shaped data.
KERAS_BACKEND=jax "$py" benches/keras_lstm.py --kerasrs target/release/kerasrs \
    | grep -E 'bidirectional LSTM alternating'
