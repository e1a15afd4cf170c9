#!/usr/bin/env bash
# Run the kerasrs benchmarks and, when a Python with Keras is available
# (PYTHON=/path/to/python, default: the CI virtual environment or python3),
# the same workloads in Keras-JAX, one after the other on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench predict
cargo bench --bench finetune
py="${PYTHON:-}"
if [ -z "$py" ]; then
    for cand in "${XDG_CACHE_HOME:-$HOME/.cache}"/kerasrs/venv-*/bin/python python3; do
        if "$cand" -c "import keras" >/dev/null 2>&1; then py="$cand"; break; fi
    done
fi
if [ -n "$py" ]; then
    KERAS_BACKEND=jax "$py" benches/keras_predict.py
    KERAS_BACKEND=jax "$py" benches/keras_finetune.py
else
    echo "no Python with Keras found: set PYTHON to compare with Keras"
fi
