"""Live Keras compatibility check for `kerasrs convert`, `finetune` and `prune`
(on Sequential models and on Functional graphs).

Usage (from the repository root, in a venv made from fixtures/requirements.txt):

    KERAS_BACKEND=jax python tests/keras_compat.py --kerasrs target/release/kerasrs \
        [--fixtures fixtures] [--only NAME ...] [--keep DIR] \
        [--sections convert finetune prune graph] [--require-finetune]

Section 1, convert.  For every model listed in ``<fixtures>/manifest.json``
this runs

    <kerasrs> convert <fixtures>/<file> --output <tmp>/<name>.keras

and then checks the result with real Keras (see ``CHECKS``): the output loads
with ``keras.saving.load_model`` (compile=True) and predicts ``y.npy`` from
``x.npy`` within 1e-6, its config.json parses to the same JSON value, all
weights and (when saved) optimizer variables are bit-identical to the
original's, and every zip member of the original is present (byte-equal
except model.weights.h5 and config.json).

Section 2, finetune.  For every case in ``<fixtures>/training/manifest.json``
(made by ``fixtures/generate_training.py``) this runs

    <kerasrs> finetune <before> --data <data.npz> --epochs E --batch-size B \
        --no-shuffle [--validation-split F] \
        [--optimizer O --loss L --learning-rate LR] [--l1 V ...] \
        --output <tmp>/<name>.keras --quiet

(``--optimizer/--loss/--learning-rate`` from the case's ``compile``, further
flags from its ``cli``) and checks with real Keras (see ``FINETUNE_CHECKS``):
the output loads (compile=True) without warnings beyond those of Keras's own
``after`` archive, every weight is within 1e-5 (max abs) of the ``after``
archive's, the optimizer has the same class, ``iterations_after`` iterations
and all its variables within 1e-5; and one further ``fit`` epoch (same batch
size and validation split, shuffle=False) from our archive and from Keras's
``after`` archive ends in weights within 1e-5 of each other (Keras resumes
from our file as from its own).  When ``<kerasrs> finetune --help`` exits
non-zero (no finetune command yet) every case prints
``skip <name>: kerasrs has no finetune command`` and counts neither as passed
nor failed, unless ``--require-finetune`` makes that a failure.

Section 3, prune.  For every case in ``PRUNE_CASES`` this runs a kerasrs
command that makes zeros (``prune --threshold 0.05`` on digits, ``prune
--sparsity 0.5`` on seed, and ``finetune --keep-sparsity`` of the pruned
digits model) and checks with real Keras: the output loads (compile=True)
without warnings beyond the input's, Keras's predictions equal ``kerasrs
predict``'s on the fixture inputs within 1e-6, every kernel weight that must
be zero (computed here from the input: ``|w| < T`` in float64; the round(S*n)
smallest magnitudes with a stable sort; the input's zeros) is +0.0 in the
weights Keras loaded, the optimizer's kernel slots Keras loaded are zero
there, and (for ``prune``) every other weight is bit-identical to the input.

Section 4, graph.  Every case of ``<fixtures>/graph/manifest.json`` (made by
``fixtures/generate_graph.py``: Functional graphs with several inputs and
outputs, shared layers, nested models, merge, shape, normalization and
activation layers) goes through the three commands above:

* ``graph-convert <case>``: ``convert`` of the case's ``before`` archive,
  checked as in section 1 (see ``GRAPH_CHECKS``), with the case's named
  ``x``/``y`` npz files: Keras's ``predict`` of every output equals ``y``
  within 1e-6;
* ``graph-finetune <case>`` (cases that are not ``predict_only``):
  ``finetune --data <data.npz> --epochs E --batch-size B --no-shuffle`` with
  the case's ``fit``, checked with ``FINETUNE_CHECKS`` as in section 2
  (weights include the BatchNormalization moving statistics);
* ``graph-prune <case>`` (the cases of ``GRAPH_PRUNE_CASES``): ``prune
  --threshold 0.05``, checked as in section 3, with ``kerasrs predict`` of
  the pruned archive on the named ``x`` npz file.

Inputs and targets are given to Keras as the generator gave them: dicts keyed
by input/output name for models with several inputs/outputs, the one array
otherwise.

Section 6, legacy.  Every case of ``<fixtures>/legacy/manifest-*.json``
(made by ``fixtures/generate_legacy.py``: legacy HDF5 models written by
tf_keras 2.15.1, tf.keras 2.13 / 2.14, Keras 3.0 / 3.3 and Keras 3.15.1's
legacy writer, tf.keras / tf_keras and Keras 3.0 / 3.3 ``.keras`` archives,
a tf_keras MobileNetV2 ``.h5``, weights-only, sharded and unzipped Keras 3
files): ``convert`` of each of its files loads in Keras 3.15 without warnings
and predicts the writer's ``predict`` within 1e-5 (MobileNetV2: within 1e-5
plus tf_keras's own distance from Keras 3.15, ``predict_spread``; an
``.h5``'s optimizer state comes through); ``finetune --no-shuffle`` of each
of its files ends within 1e-5 of the writer's ``fit`` (for older writers'
files also of Keras 3.15's fit of the file, ``after_keras3``; for Keras 2
files tf_keras's fit except the BatchNormalization moving variance, see the
README; Keras 3.0.5's fit of a regularized model is not an oracle, it counts
weight penalties twice); ``prune
--threshold 0.05`` of each of its files loads and predicts as ``kerasrs predict``.

Prints ``ok <name>`` or ``FAIL <name>: <reason>`` per model/case (and
``skip <name>: <reason>`` for skipped cases), then ``N passed, M failed``
(followed by ``, K skipped`` when cases were skipped); exits 1 if anything
failed (2 on a setup error).

To add a check: write ``def check_xxx(ctx): ...`` that raises ``CheckFailure``
(or any exception) on failure, and append it to ``CHECKS`` (convert) or
``FINETUNE_CHECKS`` (finetune; ``ctx`` is a ``FinetuneContext``) or
``GRAPH_CHECKS`` (graph convert; ``ctx`` is a ``GraphContext``).
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

# LayerNormalization(rms_scaling=True) is deprecated in Keras 3.15 and warns
# at every call; a graph fixture covers it on purpose.  (Warnings recorded
# while loading archives are not affected: they are caught with "always".)
warnings.filterwarnings("ignore", message=".*rms_scaling=True.*")

PREDICT_ATOL = 1e-6
# kerasrs finetune vs Keras model.fit: weights and optimizer variables.
FINETUNE_ATOL = 1e-5
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Members whose bytes may legitimately change when kerasrs re-writes a model.
REWRITTEN_MEMBERS = {"model.weights.h5", "config.json"}


def stable_path(path):
    """A variable path without the counter Keras gives unnamed variables
    (ConvNeXt's LayerScale: `layer_scale/variable_3`), which grows with
    every model built in the process."""
    return re.sub(r"variable(_\d+)?(?=(_[a-z]+)?$)", "variable", path)


class CheckFailure(Exception):
    pass


class Context:
    """Everything the checks need about one model; loaded lazily, cached."""

    def __init__(self, entry, fixtures_dir, output_path):
        self.entry = entry
        self.name = entry["name"]
        self.fixtures_dir = fixtures_dir
        self.original_path = os.path.join(fixtures_dir, entry["file"])
        self.output_path = output_path
        self._cache = {}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def x(self):
        return self._cached(
            "x", lambda: np.load(os.path.join(self.fixtures_dir, self.entry["x"]))
        )

    @property
    def y(self):
        return self._cached(
            "y", lambda: np.load(os.path.join(self.fixtures_dir, self.entry["y"]))
        )

    def _load(self, which):
        """(model, warnings) for "original" or "output"; errors are cached."""

        def load():
            path = self.original_path if which == "original" else self.output_path
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model = keras.saving.load_model(path, compile=True)
            except Exception as e:
                msg = (str(e).strip().splitlines() or [""])[0]
                return CheckFailure(
                    f"keras cannot load the {which}: {type(e).__name__}: {msg}"
                )
            return model, sorted({str(w.message).strip() for w in caught})

        result = self._cached(which, load)
        if isinstance(result, CheckFailure):
            raise result
        return result

    @property
    def original(self):
        return self._load("original")[0]

    @property
    def original_warnings(self):
        return self._load("original")[1]

    @property
    def output(self):
        return self._load("output")[0]

    @property
    def output_warnings(self):
        return self._load("output")[1]


def zip_members(path):
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info.filename) for info in z.infolist()}


def h5_datasets(path):
    """{dataset path: numpy value} of the archive's model.weights.h5."""
    data = zip_members(path)["model.weights.h5"]
    out = {}
    with h5py.File(io.BytesIO(data), "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = np.asarray(obj[()])

        f.visititems(visit)
    return out


def same_bits(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def describe_array(a):
    a = np.asarray(a)
    return f"{a.dtype}{list(a.shape)}"


def diff_detail(orig, new):
    """Human-readable description of how `new` differs from `orig`."""
    orig = np.asarray(orig)
    new = np.asarray(new)
    if orig.dtype != new.dtype or orig.shape != new.shape:
        return f"{describe_array(new)}, original {describe_array(orig)}"
    detail = describe_array(new)
    if orig.size and orig.dtype.kind in "fiub":
        a = np.ascontiguousarray(orig).reshape(-1)
        b = np.ascontiguousarray(new).reshape(-1)
        with np.errstate(invalid="ignore"):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        if np.any(~np.isnan(diff)):
            detail += f", max abs diff {np.nanmax(diff):.3g}"
        differing = int(np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))
        detail += f", {differing} bytes differ"
    return detail


def compare_variables(kind, originals, outputs):
    if len(originals) != len(outputs):
        raise CheckFailure(
            f"{kind}: {len(outputs)} variables, original has {len(originals)}"
        )
    for vo, vn in zip(originals, outputs):
        if stable_path(vo.path) != stable_path(vn.path):
            raise CheckFailure(f"{kind}: variable {vn.path!r} != {vo.path!r}")
        a = keras.ops.convert_to_numpy(vo)
        b = keras.ops.convert_to_numpy(vn)
        if not same_bits(a, b):
            raise CheckFailure(
                f"{kind}: {vo.path} differs ({diff_detail(a, b)})"
            )


# --------------------------------------------------------------------------
# checks (each takes a Context, raises on failure)
# --------------------------------------------------------------------------


def check_zip_members(ctx):
    """Every member of the original is in the output; unchanged ones equal."""
    orig = zip_members(ctx.original_path)
    new = zip_members(ctx.output_path)
    missing = sorted(set(orig) - set(new))
    if missing:
        raise CheckFailure(f"zip members missing from output: {missing}")
    changed = sorted(
        m for m in orig if m not in REWRITTEN_MEMBERS and orig[m] != new[m]
    )
    if changed:
        raise CheckFailure(f"zip members changed: {changed}")


def check_config_json(ctx):
    """config.json parses to the same JSON value as the original's."""
    orig = json.loads(zip_members(ctx.original_path)["config.json"])
    new = json.loads(zip_members(ctx.output_path)["config.json"])
    if orig != new:
        raise CheckFailure("config.json differs: " + first_json_diff(orig, new))


def check_h5_datasets(ctx):
    """model.weights.h5 holds the same datasets, bit-identical.

    Stricter than the Keras-level checks: it also catches optimizer variables
    that Keras skips silently (e.g. an unfitted optimizer).
    """
    orig = h5_datasets(ctx.original_path)
    new = h5_datasets(ctx.output_path)
    missing = sorted(set(orig) - set(new))
    extra = sorted(set(new) - set(orig))
    if missing or extra:
        raise CheckFailure(
            f"model.weights.h5 datasets missing {missing}, unexpected {extra}"
        )
    for key in sorted(orig):
        if not same_bits(orig[key], new[key]):
            raise CheckFailure(
                f"model.weights.h5 {key} differs "
                f"({diff_detail(orig[key], new[key])})"
            )


def check_loads_cleanly(ctx):
    """Keras loads the output with no warnings beyond the original's."""
    new_warnings = set(ctx.output_warnings) - set(ctx.original_warnings)
    if new_warnings:
        raise CheckFailure(
            "keras warned when loading the output: "
            + " | ".join(sorted(new_warnings))
        )


def check_predictions(ctx):
    """Predictions of the re-loaded output match y.npy within 1e-6."""
    pred = np.asarray(ctx.output.predict(ctx.x, verbose=0))
    if pred.shape != ctx.y.shape:
        raise CheckFailure(f"predict shape {pred.shape} != {ctx.y.shape}")
    if not np.all(np.isfinite(pred)):
        raise CheckFailure("predictions contain non-finite values")
    diff = float(np.max(np.abs(pred.astype(np.float64) - ctx.y)))
    if not diff <= PREDICT_ATOL:
        raise CheckFailure(f"predictions differ by {diff:.3g} > {PREDICT_ATOL}")


def check_weights(ctx):
    """Every model weight is bit-identical to the original's."""
    compare_variables("weights", ctx.original.weights, ctx.output.weights)


def check_optimizer(ctx):
    """Optimizer variables (iterations included) equal the original's."""
    entry = ctx.entry
    if entry["compiled"] != bool(getattr(ctx.output, "compiled", False)):
        raise CheckFailure(
            f"output compiled={not entry['compiled']}, "
            f"manifest says {entry['compiled']}"
        )
    if not entry["has_optimizer_state"]:
        return
    orig_opt = ctx.original.optimizer
    new_opt = ctx.output.optimizer
    if new_opt is None:
        raise CheckFailure("output has no optimizer")
    if type(new_opt) is not type(orig_opt):
        raise CheckFailure(
            f"optimizer {type(new_opt).__name__} != {type(orig_opt).__name__}"
        )
    compare_variables("optimizer", orig_opt.variables, new_opt.variables)
    iterations = int(new_opt.iterations)
    if iterations != entry["optimizer_iterations"]:
        raise CheckFailure(
            f"optimizer iterations {iterations} != manifest "
            f"{entry['optimizer_iterations']}"
        )


CHECKS = [
    check_zip_members,
    check_config_json,
    check_h5_datasets,
    check_loads_cleanly,
    check_predictions,
    check_weights,
    check_optimizer,
]


def first_json_diff(a, b, path="$"):
    if type(a) is not type(b):
        return f"{path}: {type(b).__name__} vs original {type(a).__name__}"
    if isinstance(a, dict):
        for k in a:
            if k not in b:
                return f"{path}.{k}: missing"
        for k in b:
            if k not in a:
                return f"{path}.{k}: unexpected"
        for k in a:
            if a[k] != b[k]:
                return first_json_diff(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(b)} vs original {len(a)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_json_diff(x, y, f"{path}[{i}]")
    return f"{path}: {b!r} vs original {a!r}"


# --------------------------------------------------------------------------
# section 2: finetune checks (each takes a FinetuneContext, raises on failure)
# --------------------------------------------------------------------------


class FinetuneContext:
    """One training case: our finetune output vs Keras's after archive."""

    def __init__(self, case, fixtures_dir, output_path):
        self.case = case
        self.name = case["name"]
        self.fixtures_dir = fixtures_dir
        self.after_path = os.path.join(fixtures_dir, case["after"])
        self.output_path = output_path
        self._cache = {}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def data(self):
        def load():
            with np.load(os.path.join(self.fixtures_dir, self.case["data"])) as d:
                return d["x"], d["y"]

        return self._cached("data", load)

    def load_fresh(self, which):
        """(model, warnings) for "after" (Keras's) or "output" (ours)."""
        path = self.after_path if which == "after" else self.output_path
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = keras.saving.load_model(path, compile=True)
        except Exception as e:
            msg = (str(e).strip().splitlines() or [""])[0]
            raise CheckFailure(
                f"keras cannot load the {which}: {type(e).__name__}: {msg}"
            )
        return model, sorted({str(w.message).strip() for w in caught})

    def _load(self, which):
        def load():
            try:
                return self.load_fresh(which)
            except CheckFailure as e:
                return e

        result = self._cached(which, load)
        if isinstance(result, CheckFailure):
            raise result
        return result

    @property
    def after(self):
        return self._load("after")[0]

    @property
    def after_warnings(self):
        return self._load("after")[1]

    @property
    def output(self):
        return self._load("output")[0]

    @property
    def output_warnings(self):
        return self._load("output")[1]


def close_variables(kind, expected, actual, match_paths, atol=FINETUNE_ATOL):
    """Same count, shapes and dtypes; values within ``atol`` (integers equal).

    Variables are paired by position.  With ``match_paths`` their paths must
    be equal too: right for model weights (layer names come from config.json)
    but not for optimizer variables, whose paths carry the optimizer's name
    and process-wide counters (Nadam's ``variable``/``variable_1``, an
    optimizer compiled in-process is ``adam_1``...); Keras itself saves and
    loads optimizer variables by position.
    """
    if len(expected) != len(actual):
        raise CheckFailure(
            f"{kind}: {len(actual)} variables, keras has {len(expected)} "
            f"(ours {[v.path for v in actual]}, "
            f"keras {[v.path for v in expected]})"
        )
    for i, (ve, va) in enumerate(zip(expected, actual)):
        if match_paths and stable_path(ve.path) != stable_path(va.path):
            raise CheckFailure(f"{kind}: variable {va.path!r} != {ve.path!r}")
        what = ve.path if match_paths else f"#{i} {ve.path} (ours {va.path})"
        a = np.asarray(keras.ops.convert_to_numpy(ve))
        b = np.asarray(keras.ops.convert_to_numpy(va))
        if a.shape != b.shape or a.dtype != b.dtype:
            raise CheckFailure(
                f"{kind}: {what} is {describe_array(b)}, "
                f"keras {describe_array(a)}"
            )
        if a.dtype.kind in "iub":
            if not np.array_equal(a, b):
                raise CheckFailure(
                    f"{kind}: {what} = {b.tolist()}, keras {a.tolist()}"
                )
            continue
        with np.errstate(invalid="ignore"):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        worst = float(np.max(diff)) if diff.size else 0.0
        if not np.all(np.isfinite(b)) or not worst <= atol:
            raise CheckFailure(
                f"{kind}: {what} max abs diff {worst:.3g} > {atol:g}"
            )


def check_finetune_loads_cleanly(ctx):
    """Keras loads our output with no warnings beyond its own archive's."""
    new_warnings = set(ctx.output_warnings) - set(ctx.after_warnings)
    if new_warnings:
        raise CheckFailure(
            "keras warned when loading the output: "
            + " | ".join(sorted(new_warnings))
        )


def check_finetune_weights(ctx):
    """Every weight within 1e-5 of Keras's after archive."""
    close_variables(
        "weights", ctx.after.weights, ctx.output.weights, match_paths=True
    )


def check_finetune_optimizer(ctx):
    """Same optimizer class, iterations_after, all variables within 1e-5."""
    after_opt = ctx.after.optimizer
    new_opt = getattr(ctx.output, "optimizer", None)
    if not getattr(ctx.output, "compiled", False) or new_opt is None:
        raise CheckFailure("output is not compiled (no optimizer)")
    if type(new_opt) is not type(after_opt):
        raise CheckFailure(
            f"optimizer {type(new_opt).__name__} != {type(after_opt).__name__}"
        )
    iterations = int(new_opt.iterations)
    if iterations != ctx.case["iterations_after"]:
        raise CheckFailure(
            f"optimizer iterations {iterations} != manifest "
            f"{ctx.case['iterations_after']}"
        )
    close_variables(
        "optimizer", after_opt.variables, new_opt.variables, match_paths=False
    )


def check_finetune_resume(ctx):
    """One more Keras fit epoch from ours and from Keras's archive agree."""
    x, y = ctx.data
    fit = ctx.case["fit"]
    kwargs = dict(
        epochs=1,
        batch_size=fit["batch_size"],
        shuffle=False,
        verbose=0,
        validation_split=fit["validation_split"] or 0.0,
    )
    # Fresh copies: fitting changes the models.
    keras_model = ctx.load_fresh("after")[0]
    our_model = ctx.load_fresh("output")[0]
    if not getattr(our_model, "compiled", False):
        raise CheckFailure("output is not compiled: keras cannot resume")
    keras_model.fit(x, y, **kwargs)
    our_model.fit(x, y, **kwargs)
    try:
        close_variables(
            "weights", keras_model.weights, our_model.weights, match_paths=True
        )
    except CheckFailure as e:
        raise CheckFailure(f"after one more keras epoch: {e}")


FINETUNE_CHECKS = [
    check_finetune_loads_cleanly,
    check_finetune_weights,
    check_finetune_optimizer,
    check_finetune_resume,
]


def format_flag_value(value):
    if isinstance(value, float):
        return repr(value)
    return str(value)


def finetune_command(kerasrs, case, fixtures_dir, dst):
    fit = case["fit"]
    cmd = [
        kerasrs,
        "finetune",
        os.path.join(fixtures_dir, case["before"]),
        "--data",
        os.path.join(fixtures_dir, case["data"]),
        "--epochs",
        str(fit["epochs"]),
        "--batch-size",
        str(fit["batch_size"]),
    ]
    if fit.get("shuffle", False) is False:
        cmd.append("--no-shuffle")
    if fit.get("validation_split") is not None:
        cmd += ["--validation-split", format_flag_value(fit["validation_split"])]
    compile_args = case.get("compile") or {}
    for key in ("optimizer", "loss", "learning_rate"):
        if key in compile_args:
            cmd += ["--" + key.replace("_", "-"), format_flag_value(compile_args[key])]
    for key, value in (case.get("cli") or {}).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value not in (None, False):
            cmd += [flag, format_flag_value(value)]
    cmd += ["--output", dst, "--quiet"]
    return cmd


def has_finetune(kerasrs, timeout):
    try:
        proc = subprocess.run(
            [kerasrs, "finetune", "--help"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def run_finetune(cmd, dst, timeout):
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise CheckFailure(f"finetune timed out after {timeout}s")
    except OSError as e:
        raise CheckFailure(f"cannot run {cmd[0]}: {e}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CheckFailure(
            f"finetune exited with {proc.returncode}: " + " / ".join(tail)
        )
    if not os.path.isfile(dst):
        raise CheckFailure(f"finetune exited 0 but wrote no {dst}")


def check_case(case, args, out_dir, context=FinetuneContext):
    """Returns a list of failure reasons (empty when everything passed)."""
    dst = os.path.join(out_dir, f"{case['name']}.keras")
    if os.path.exists(dst):
        os.remove(dst)
    cmd = finetune_command(args.kerasrs, case, args.fixtures, dst)
    try:
        run_finetune(cmd, dst, args.timeout)
    except CheckFailure as e:
        return [str(e)]
    ctx = context(case, args.fixtures, dst)
    failures = []
    for check in FINETUNE_CHECKS:
        try:
            check(ctx)
        except CheckFailure as e:
            failures.append(str(e))
        except Exception as e:  # a crash in Keras counts as a failure
            msg = str(e).strip().splitlines()
            failures.append(
                f"{check.__name__}: {type(e).__name__}: "
                + (msg[0] if msg else "")
            )
    return list(dict.fromkeys(failures))


# --------------------------------------------------------------------------
# section 3: pruned and sparsely fine-tuned models
# --------------------------------------------------------------------------


def _threshold_zeros(threshold):
    """Expected zeros of ``prune --threshold T``: |w| < T, compared in float64."""

    def zeros(kernel):
        return np.abs(kernel).astype(np.float64) < threshold

    return zeros


def _sparsity_zeros(sparsity):
    """Expected zeros of ``prune --sparsity S`` (per kernel): the round(S*n)
    smallest magnitudes (Python's round: halves to even), ties by position."""

    def zeros(kernel):
        flat = np.abs(kernel).reshape(-1)
        k = round(sparsity * flat.size)
        mask = np.zeros(flat.size, dtype=bool)
        mask[np.argsort(flat, kind="stable")[:k]] = True
        return mask.reshape(kernel.shape)

    return zeros


# Each case runs one kerasrs command on a fixture (or on the output of an
# earlier case) and names the kernel zeros it must produce; ``exact`` cases
# must leave every other weight bit-identical.
PRUNE_CASES = [
    {
        "name": "prune_digits_threshold",
        "source": "models/digits.keras",
        "x": "models/digits.x.npy",
        "args": ["prune", "{src}", "--threshold", "0.05", "--output", "{dst}"],
        "zeros": _threshold_zeros(0.05),
        "exact": True,
    },
    {
        "name": "prune_seed_sparsity",
        "source": "models/seed.keras",
        "x": "models/seed.x.npy",
        "args": ["prune", "{src}", "--sparsity", "0.5", "--output", "{dst}"],
        "zeros": _sparsity_zeros(0.5),
        "exact": True,
    },
    {
        "name": "finetune_digits_keep_sparsity",
        "source": "@prune_digits_threshold",
        "x": "models/digits.x.npy",
        "args": [
            "finetune", "{src}", "--data", "{fixtures}/digits.npz",
            "--epochs", "2", "--seed", "1", "--keep-sparsity", "--quiet",
            "--output", "{dst}",
        ],
        # The zeros the pruned input has.
        "zeros": lambda kernel: kernel == 0.0,
        "exact": False,
    },
]


KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel",
                "recurrent_kernel", "embeddings")


def dense_kernels(model):
    """(``layer/variable``, value) of every Dense, convolution and recurrent
    kernel and embedding table, in
    ``model.layers`` order (what ``kerasrs prune`` prunes)."""
    out = []
    for layer in model.layers:
        for v in layer.weights:
            if v.name in KERNEL_NAMES and not isinstance(
                layer, keras.layers.BatchNormalization
            ):
                out.append((f"{layer.name}/{v.name}",
                            np.asarray(keras.ops.convert_to_numpy(v))))
    return out


def load_quietly(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(path, compile=True)
    return model, {str(w.message).strip() for w in caught}


def run_kerasrs(cmd, timeout, what):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailure(f"{what} timed out after {timeout}s")
    except OSError as e:
        raise CheckFailure(f"cannot run {cmd[0]}: {e}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CheckFailure(f"{what} exited with {proc.returncode}: " + " / ".join(tail))
    return proc.stdout


def check_prune_case(case, args, out_dir, outputs):
    """Returns a list of failure reasons (empty when everything passed).

    ``outputs`` maps earlier case names to their output paths.  A case with
    a ``graph`` entry (its graph manifest case) has named npz inputs and
    outputs."""
    source = case["source"]
    if source.startswith("@"):
        if source[1:] not in outputs:
            return [f"depends on {source[1:]}, which failed"]
        src = outputs[source[1:]]
    else:
        src = os.path.join(args.fixtures, source)
    graph = case.get("graph")
    dst = os.path.join(out_dir, f"{case['name']}.keras")
    if os.path.exists(dst):
        os.remove(dst)
    fill = {"src": src, "dst": dst, "fixtures": args.fixtures}
    cmd = [args.kerasrs] + [a.format(**fill) for a in case["args"]]
    try:
        run_kerasrs(cmd, args.timeout, case["args"][0])
        x_path = os.path.join(args.fixtures, case["x"])
        ours_path = os.path.join(
            out_dir, f"{case['name']}.pred.{'npz' if graph else 'npy'}"
        )
        if graph:
            x = model_inputs(graph, load_npz(x_path))
        else:
            x = np.load(x_path)
        run_kerasrs(
            [args.kerasrs, "predict", dst, "--input", x_path, "--output", ours_path],
            args.timeout,
            "predict",
        )
        ours = load_npz(ours_path) if graph else np.load(ours_path)
        try:
            original, original_warnings = load_quietly(src)
            output, output_warnings = load_quietly(dst)
        except Exception as e:
            msg = (str(e).strip().splitlines() or [""])[0]
            raise CheckFailure(f"keras cannot load: {type(e).__name__}: {msg}")
    except CheckFailure as e:
        return [str(e)]
    failures = []
    new_warnings = output_warnings - original_warnings
    if new_warnings:
        failures.append("keras warned: " + " | ".join(sorted(new_warnings)))
    if graph:
        try:
            compare_named_outputs(
                predict_named(output, x, graph["output_names"]), ours, "kerasrs"
            )
        except CheckFailure as e:
            failures.append(str(e))
    else:
        pred = np.asarray(output.predict(x, verbose=0))
        if pred.shape != ours.shape:
            failures.append(
                f"keras predicts shape {pred.shape}, kerasrs {ours.shape}"
            )
        else:
            diff = float(np.max(np.abs(pred.astype(np.float64) - ours)))
            if not diff <= PREDICT_ATOL:
                failures.append(
                    f"keras and kerasrs predictions differ by {diff:.3g} "
                    f"> {PREDICT_ATOL}"
                )
    opt = getattr(output, "optimizer", None)
    slots = {}
    if opt is not None:
        for v in opt.variables:
            slots[v.path.split("/")[-1]] = np.asarray(keras.ops.convert_to_numpy(v))
    pruned_total = 0
    for (name, before), (name_out, after) in zip(
        dense_kernels(original), dense_kernels(output)
    ):
        if name != name_out:
            failures.append(f"layer {name_out} where {name} was expected")
            continue
        zeros = case["zeros"](before)
        pruned_total += int(zeros.sum())
        nonzero = int(np.count_nonzero(after[zeros]))
        if nonzero or np.any(np.signbit(after[zeros])):
            failures.append(f"{name}: {nonzero} expected zeros are not 0.0")
        if case["exact"]:
            if not same_bits(after[~zeros], before[~zeros]):
                failures.append(f"{name}: unpruned weights changed")
        elif np.array_equal(after[~zeros], before[~zeros]):
            failures.append(f"{name}: nothing trained")
        for slot, value in slots.items():
            if slot.startswith(f"{name.replace('/', '_')}_") and value.shape == zeros.shape:
                if np.count_nonzero(value[zeros]):
                    failures.append(
                        f"optimizer {slot} is not reset at the pruned positions"
                    )
    if pruned_total == 0:
        failures.append("nothing was pruned: the check has no teeth")
    if not failures:
        outputs[case["name"]] = dst
    return list(dict.fromkeys(failures))


# --------------------------------------------------------------------------
# section 4: graph models (fixtures/graph, made by generate_graph.py)
# --------------------------------------------------------------------------

GRAPH_MANIFEST = os.path.join("graph", "manifest.json")
# Suites in the same format (made by generate_conv.py, generate_pool.py,
# generate_seq.py and generate_attn.py).
EXTRA_GRAPH_MANIFESTS = [
    os.path.join("conv", "manifest.json"),
    os.path.join("pool", "manifest.json"),
    os.path.join("seq", "manifest.json"),
    os.path.join("attn", "manifest.json"),
]
# Cases pruned by ``graph-prune``: each has Dense kernels (a shared layer,
# two outputs, Dense around normalization layers) or convolution kernels.
GRAPH_PRUNE_CASES = [
    "residual_shared_mlp", "ticket_two_outputs", "bn_ln_mlp",
    # Convolution kernels of every kind.
    "conv2d_strides_dilation", "depthwise2d_multiplier", "separable2d_strides",
    "conv2d_transpose_paddings", "resnet_block_bn",
    # Embedding tables, recurrent kernels, wrapped layers.
    "text_conv1d", "bidirectional_lstm", "lstm_return_state",
    "masked_time_distributed", "time_distributed_conv2d",
    # Attention projection kernels (3-D), EinsumDense.
    "ts_transformer", "mha_masked", "gqa", "einsum_dense",
]
GRAPH_PRUNE_THRESHOLD = 0.05


def load_npz(path):
    """{name: array} of an npz file."""
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def _named(arrays, names, what):
    missing = [n for n in names if n not in arrays]
    if missing:
        raise CheckFailure(f"{what} has no arrays {missing} (has {sorted(arrays)})")
    return arrays[names[0]] if len(names) == 1 else {n: arrays[n] for n in names}


def model_inputs(case, arrays):
    """Inputs as generate_graph.py gives them to Keras: a dict keyed by input
    name for several inputs, the one array otherwise."""
    return _named(arrays, case["input_names"], "inputs")


def model_targets(case, arrays):
    """Targets as generate_graph.py gives them to Keras (see model_inputs)."""
    return _named(arrays, case["output_names"], "targets")


def predict_named(model, x, names):
    """{output name: Keras's predictions} (model.outputs order)."""
    out = model.predict(x, verbose=0)
    if isinstance(out, dict):
        out = [out[n] for n in names]
    elif not isinstance(out, (list, tuple)):
        out = [out]
    if len(out) != len(names):
        raise CheckFailure(f"keras predicts {len(out)} outputs, expected {names}")
    return {n: np.asarray(o) for n, o in zip(names, out)}


def compare_named_outputs(pred, expected, what):
    """Every output of ``expected`` is in ``pred`` with its shape, finite and
    within 1e-6."""
    if set(pred) != set(expected):
        raise CheckFailure(
            f"keras predicts outputs {sorted(pred)}, {what} has {sorted(expected)}"
        )
    for name in expected:
        p, e = pred[name], np.asarray(expected[name])
        if p.shape != e.shape:
            raise CheckFailure(
                f"output {name}: keras predicts shape {p.shape}, {what} {e.shape}"
            )
        if not np.all(np.isfinite(p)):
            raise CheckFailure(f"output {name}: predictions contain non-finite values")
        diff = float(np.max(np.abs(p.astype(np.float64) - e))) if p.size else 0.0
        if not diff <= PREDICT_ATOL:
            raise CheckFailure(
                f"output {name}: keras and {what} predictions differ by "
                f"{diff:.3g} > {PREDICT_ATOL}"
            )


class GraphContext(Context):
    """A graph case for the convert checks; ``entry`` is the manifest case
    with ``file`` set to its ``before`` archive.  ``x``/``y`` are dicts."""

    @property
    def x(self):
        return self._cached(
            "x", lambda: load_npz(os.path.join(self.fixtures_dir, self.entry["x"]))
        )

    @property
    def y(self):
        return self._cached(
            "y", lambda: load_npz(os.path.join(self.fixtures_dir, self.entry["y"]))
        )


def check_graph_predictions(ctx):
    """Every output of the re-loaded output matches the case's y within 1e-6."""
    names = ctx.entry["output_names"]
    pred = predict_named(ctx.output, model_inputs(ctx.entry, ctx.x), names)
    compare_named_outputs(pred, ctx.y, "y.npz")


def check_graph_optimizer(ctx):
    """Compiled, with the original's optimizer class and variables.

    The before archives are compiled but never fitted: their stored
    optimizer variables (compared bit for bit by check_h5_datasets) are not
    loaded by Keras, which builds fresh ones."""
    if not getattr(ctx.output, "compiled", False):
        raise CheckFailure("output is not compiled")
    orig_opt = ctx.original.optimizer
    new_opt = ctx.output.optimizer
    if new_opt is None:
        raise CheckFailure("output has no optimizer")
    if type(new_opt) is not type(orig_opt):
        raise CheckFailure(
            f"optimizer {type(new_opt).__name__} != {type(orig_opt).__name__}"
        )
    if type(new_opt).__name__ != ctx.entry["optimizer"]:
        raise CheckFailure(
            f"optimizer {type(new_opt).__name__} != manifest {ctx.entry['optimizer']}"
        )
    compare_variables("optimizer", orig_opt.variables, new_opt.variables)


GRAPH_CHECKS = [
    check_zip_members,
    check_config_json,
    check_h5_datasets,
    check_loads_cleanly,
    check_graph_predictions,
    check_weights,
    check_graph_optimizer,
]


class GraphFinetuneContext(FinetuneContext):
    """A trainable graph case: ``data`` is (inputs, targets) as the
    generator fitted them (see model_inputs)."""

    @property
    def data(self):
        def load():
            arrays = load_npz(os.path.join(self.fixtures_dir, self.case["data"]))
            return model_inputs(self.case, arrays), model_targets(self.case, arrays)

        return self._cached("data", load)


def graph_prune_case(case):
    """A PRUNE_CASES-style case pruning the before archive of a graph case."""
    return {
        "name": case["name"],
        "source": case["before"],
        "x": case["x"],
        "args": [
            "prune", "{src}", "--threshold", repr(GRAPH_PRUNE_THRESHOLD),
            "--output", "{dst}",
        ],
        "zeros": _threshold_zeros(GRAPH_PRUNE_THRESHOLD),
        "exact": True,
        "graph": case,
    }


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def run_convert(kerasrs, src, dst, timeout):
    cmd = [kerasrs, "convert", src, "--output", dst]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise CheckFailure(f"convert timed out after {timeout}s")
    except OSError as e:
        raise CheckFailure(f"cannot run {kerasrs}: {e}")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CheckFailure(
            f"convert exited with {proc.returncode}: " + " / ".join(tail)
        )
    if not os.path.isfile(dst):
        raise CheckFailure(f"convert exited 0 but wrote no {dst}")


def check_model(entry, args, out_dir, checks=CHECKS, context=Context):
    """Returns a list of failure reasons (empty when everything passed)."""
    name = entry["name"]
    src = os.path.join(args.fixtures, entry["file"])
    dst = os.path.join(out_dir, f"{name}.keras")
    try:
        run_convert(args.kerasrs, src, dst, args.timeout)
    except CheckFailure as e:
        return [str(e)]
    ctx = context(entry, args.fixtures, dst)
    failures = []
    for check in checks:
        try:
            check(ctx)
        except CheckFailure as e:
            failures.append(str(e))
        except Exception as e:  # a crash in Keras counts as a failure
            msg = str(e).strip().splitlines()
            failures.append(
                f"{check.__name__}: {type(e).__name__}: "
                + (msg[0] if msg else "")
            )
    # A model Keras cannot load fails several checks the same way.
    return list(dict.fromkeys(failures))


# --------------------------------------------------------------------------
# section 5: keras.applications architectures, built here
# --------------------------------------------------------------------------

# (constructor, extra arguments, input shape, input range). Models with
# their own preprocessing layers (Rescaling, Normalization) get pixels in
# [0, 255], the others values in [-1, 1]. All are built with
# ``weights=None`` (random initialization, seeded), ``classes=5`` and
# ``classifier_activation=None`` (logits: a softmax would hide differences).
APPLICATIONS = [
    ("MobileNet", {"alpha": 0.25}, (32, 32, 3), "unit"),
    ("MobileNetV2", {"alpha": 0.35}, (32, 32, 3), "unit"),
    ("MobileNetV3Small", {"alpha": 0.75}, (32, 32, 3), "pixels"),
    ("ResNet50", {}, (32, 32, 3), "unit"),
    ("ResNet50V2", {}, (32, 32, 3), "unit"),
    ("DenseNet121", {}, (32, 32, 3), "unit"),
    ("EfficientNetB0", {}, (32, 32, 3), "pixels"),
    ("Xception", {}, (71, 71, 3), "unit"),
    ("NASNetMobile", {}, (32, 32, 3), "unit"),
    ("ConvNeXtTiny", {}, (32, 32, 3), "pixels"),
    ("VGG16", {}, (32, 32, 3), "unit"),
]
# kerasrs predict vs Keras: max |a - b| relative to the largest |logit|.
APPLICATION_RTOL = 1e-5


def check_application(app, args, out_dir):
    """Build a keras.applications model, save it, and check that kerasrs
    loads it (parameter count), predicts as Keras does and converts it into
    a file Keras loads with identical predictions."""
    name, extra, shape, value_range = app
    keras.utils.set_random_seed(1)
    model = getattr(keras.applications, name)(
        input_shape=shape, weights=None, classes=5,
        classifier_activation=None, **extra,
    )
    path = os.path.join(out_dir, f"{name}.keras")
    model.save(path)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.0, 1.0, size=(3, *shape)).astype(np.float32)
    if value_range == "pixels":
        x = (x + 1.0) * 127.5
    x_path = os.path.join(out_dir, f"{name}.x.npy")
    np.save(x_path, x)
    expected = np.asarray(model.predict(x, verbose=0))
    failures = []
    try:
        out = run_kerasrs([args.kerasrs, "load", path, "--json"], args.timeout, "load")
        summary = json.loads(out)
        if summary.get("total_params") not in (None, model.count_params()):
            failures.append(
                f"kerasrs counts {summary.get('total_params')} parameters, "
                f"keras {model.count_params()}"
            )
        ours_path = os.path.join(out_dir, f"{name}.pred.npy")
        run_kerasrs(
            [args.kerasrs, "predict", path, "--input", x_path, "--output", ours_path],
            args.timeout, "predict",
        )
        ours = np.load(ours_path)
        if ours.shape != expected.shape:
            failures.append(f"kerasrs predicts shape {ours.shape}, keras {expected.shape}")
        else:
            scale = max(1.0, float(np.max(np.abs(expected))))
            diff = float(np.max(np.abs(ours.astype(np.float64) - expected))) / scale
            if not diff <= APPLICATION_RTOL:
                failures.append(
                    f"predictions differ by {diff:.3g} (relative to the largest "
                    f"logit {scale:.3g}) > {APPLICATION_RTOL}"
                )
        converted = os.path.join(out_dir, f"{name}.converted.keras")
        run_kerasrs(
            [args.kerasrs, "convert", path, "--output", converted],
            args.timeout, "convert",
        )
        again, warned = load_quietly(converted)
        same = np.asarray(again.predict(x, verbose=0))
        if not np.array_equal(same, expected):
            failures.append("keras predicts differently from the converted file")
    except CheckFailure as e:
        failures.append(str(e))
    return failures


# --------------------------------------------------------------------------
# section 6: legacy and weights-only sources (fixtures/legacy, made by
# fixtures/generate_legacy.py with tf_keras 2.15.1 and Keras 3.15.1)
# --------------------------------------------------------------------------
LEGACY_MANIFESTS = [
    "manifest-keras3.json", "manifest-tfkeras.json", "manifest-keras30.json",
    "manifest-keras33.json", "manifest-tf213.json", "manifest-tf214.json",
    "manifest-mobilenet.json",
]
LEGACY_ATOL = 1e-5


def run_checked(cmd, timeout, what):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailure(f"{what} timed out after {timeout}s")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CheckFailure(f"{what} exited with {proc.returncode}: " + " / ".join(tail))
    return proc


def load_strict(path):
    """Keras 3.15 loads `path` (compiled) without any warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(path)
    noisy = [str(w.message).splitlines()[0] for w in caught]
    if noisy:
        raise CheckFailure(f"Keras warned while loading: {noisy[:2]}")
    return model


# section 7: dtype policies (fixtures/dtypes, made by generate_dtypes.py)


def load_dtype_model(path):
    """Keras loads `path`; the only warnings allowed are JAX's about float64
    without x64 (the float64 policy then keeps float32)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(path)
    noisy = [str(w.message).splitlines()[0] for w in caught
             if "jax_enable_x64" not in str(w.message)]
    if noisy:
        raise CheckFailure(f"Keras warned while loading: {noisy[:2]}")
    return model


def stored_weight_dtypes(model):
    return [str(w.dtype) for w in model.weights]


def check_dtype_case(case, manifest, args, out_dir):
    """Keras loads kerasrs's convert (identical weights, dtypes and
    predictions) and finetune (same variable dtypes, optimizer state
    resumed, one more Keras epoch runs) of a dtype-policy model."""
    d = args.fixtures
    src = os.path.join(d, case["file"])
    x = np.load(os.path.join(d, manifest["x"]))
    original = load_dtype_model(src)
    conv = os.path.join(out_dir, f"{case['policy']}.keras")
    run_checked([args.kerasrs, "convert", src, "--output", conv], args.timeout, "convert")
    model = load_dtype_model(conv)
    for a, b in zip(original.weights, model.weights):
        if str(a.dtype) != str(b.dtype) or not np.array_equal(np.asarray(a), np.asarray(b)):
            raise CheckFailure(f"convert changed `{a.path}`")
    want = np.asarray(original.predict(x, verbose=0), "float32")
    got = np.asarray(model.predict(x, verbose=0), "float32")
    if not np.array_equal(want, got):
        raise CheckFailure("predictions of the converted file differ")
    tuned = os.path.join(out_dir, f"{case['policy']}.tuned.keras")
    data = os.path.join(d, manifest["data"])
    run_checked([args.kerasrs, "finetune", src, "--data", data, "--epochs", "1",
                 "--batch-size", "16", "--no-shuffle", "--quiet", "--output", tuned],
                args.timeout, "finetune")
    model = load_dtype_model(tuned)
    if stored_weight_dtypes(model) != stored_weight_dtypes(original):
        raise CheckFailure("finetune changed variable dtypes")
    start = int(model.optimizer.iterations)
    if start != int(original.optimizer.iterations) + 2:
        raise CheckFailure(f"optimizer iterations {start} after one epoch of 2 batches")
    z = np.load(data)
    model.fit(z["x"], z["y"], epochs=1, batch_size=16, shuffle=False, verbose=0)
    if not np.all(np.isfinite(np.asarray(model.predict(x, verbose=0), "float32"))):
        raise CheckFailure("Keras's further epoch gave non-finite predictions")


def run_dtypes_section(args, out_dir, report):
    path = os.path.join(args.fixtures, "dtypes", "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    dtype_dir = os.path.join(out_dir, "dtypes")
    os.makedirs(dtype_dir, exist_ok=True)
    for case in manifest["cases"]:
        try:
            check_dtype_case(case, manifest, args, dtype_dir)
            failures = []
        except CheckFailure as e:
            failures = [str(e)]
        except Exception as e:  # a crash in Keras counts as a failure
            msg = str(e).strip().splitlines()
            failures = [f"{type(e).__name__}: " + (msg[0] if msg else "")]
        keras.backend.clear_session()
        report(f"dtypes {case['policy']}", failures)


def legacy_weights_check(model, expected, skip=(), atol=LEGACY_ATOL):
    for layer in model.layers:
        for i, w in enumerate(layer.weights):
            key = f"{layer.name}/{i}"
            if key in skip:
                continue
            d = float(np.max(np.abs(np.asarray(w) - expected[key])))
            if not d <= atol:
                raise CheckFailure(f"{key}: max |delta| {d:.3g} > {atol}")


def legacy_cases(fixtures):
    out = []
    for name in LEGACY_MANIFESTS:
        path = os.path.join(fixtures, "legacy", name)
        with open(path) as f:
            out.extend(json.load(f)["cases"])
    return out


def check_legacy_convert(case, label, src, args, out_dir):
    dst = os.path.join(out_dir, f"{case['name']}-{label}.keras")
    run_checked([args.kerasrs, "convert", src, "--output", dst], args.timeout, "convert")
    model = load_strict(dst)
    d = os.path.join(args.fixtures, "legacy")
    x = np.load(os.path.join(d, case["x"]))
    got = model.predict(x, verbose=0)
    # Keras 3.15 on the converted file predicts as Keras 3.15 on the
    # writer's file (when the manifest has that), and as the writer within
    # its distance from Keras 3.15 (MobileNetV2) or 1e-5.
    if case.get("y_keras3"):
        diff = float(np.max(np.abs(got - np.load(os.path.join(d, case["y_keras3"])))))
        if not diff <= LEGACY_ATOL:
            raise CheckFailure(f"predictions differ from Keras 3.15's of the source by {diff:.3g}")
    want = np.load(os.path.join(d, case["y"]))
    diff = float(np.max(np.abs(got - want)))
    atol = LEGACY_ATOL + case.get("predict_spread", 0.0)
    if not diff <= atol:
        raise CheckFailure(f"predictions differ from the writer's by {diff:.3g}")
    if case["files"].get("h5") and src.endswith(".h5") and model.optimizer is not None:
        if not model.optimizer.built or int(model.optimizer.iterations) != case[
            "iterations_after"
        ] - case["epochs"] * -(-len(x) // case["batch_size"]):
            raise CheckFailure("the optimizer state did not come through")


def check_legacy_finetune(case, label, args, out_dir):
    d = os.path.join(args.fixtures, "legacy")
    src = os.path.join(d, case["files"][label])
    dst = os.path.join(out_dir, f"{case['name']}-{label}-finetune.keras")
    cmd = [args.kerasrs, "finetune", src, "--data", os.path.join(d, case["data"]),
           "--epochs", str(case["epochs"]), "--batch-size", str(case["batch_size"]),
           "--no-shuffle", "--quiet", "--output", dst]
    run_checked(cmd, args.timeout, "finetune")
    model = load_strict(dst)
    if "after_keras3" in case:
        # An older writer's file: Keras 3.15's fit of it.
        legacy_weights_check(model, np.load(os.path.join(d, case["after_keras3"])))
    if case["writer"].startswith("tf"):
        # Keras 2: the writer's own fit except the BatchNormalization moving
        # variance, which tf_keras's fused kernel updates with the
        # Bessel-corrected batch variance.
        skip = {
            f"{l.name}/3" for l in model.layers if type(l).__name__ == "BatchNormalization"
        }
        # MobileNetV2: within 1e-5 of Keras 3.15, which is `fit_spread` from tf_keras.
        atol = LEGACY_ATOL + case.get("fit_spread", 0.0)
        legacy_weights_check(model, np.load(os.path.join(d, case["after"])), skip, atol=atol)
    elif not case.get("writer_fit_differs"):
        # (Keras 3.0.5 on JAX counts weight penalties twice: `after_keras3`.)
        legacy_weights_check(model, np.load(os.path.join(d, case["after"])))
    if int(model.optimizer.iterations) != case["iterations_after"]:
        raise CheckFailure(
            f"iterations {int(model.optimizer.iterations)} != {case['iterations_after']}"
        )


def check_legacy_prune(case, label, args, out_dir):
    d = os.path.join(args.fixtures, "legacy")
    src = os.path.join(d, case["files"][label])
    dst = os.path.join(out_dir, f"{case['name']}-{label}-pruned.keras")
    run_checked([args.kerasrs, "prune", src, "--threshold", "0.05", "--output", dst],
                args.timeout, "prune")
    model = load_strict(dst)
    x_path = os.path.join(d, case["x"])
    ours = os.path.join(out_dir, f"{case['name']}-{label}-pruned.y.npy")
    run_checked([args.kerasrs, "predict", dst, "--input", x_path, "--output", ours],
                args.timeout, "predict")
    got = model.predict(np.load(x_path), verbose=0)
    diff = float(np.max(np.abs(got - np.load(ours))))
    if not diff <= 1e-6:
        raise CheckFailure(f"Keras and kerasrs predictions of the pruned model differ by {diff:.3g}")
    kernels = [np.asarray(l.kernel) for l in model.layers if hasattr(l, "kernel")]
    if not any((k == 0).any() for k in kernels):
        raise CheckFailure("no kernel weight is zero after pruning")


def run_legacy_section(args, out_dir, report):
    legacy_dir = os.path.join(out_dir, "legacy")
    os.makedirs(legacy_dir, exist_ok=True)
    for case in legacy_cases(args.fixtures):
        if args.only and case["name"] not in args.only:
            continue
        d = os.path.join(args.fixtures, "legacy")
        jobs = [
            (f"legacy-convert {case['name']} {label}",
             lambda c=case, l=label, p=rel: check_legacy_convert(
                 c, l, os.path.join(d, p), args, legacy_dir))
            for label, rel in case["files"].items()
            if label != "json"
        ]
        jobs += [
            (f"legacy-finetune {case['name']} {label}",
             lambda c=case, l=label: check_legacy_finetune(c, l, args, legacy_dir))
            for label in case["files"]
            if label != "json"
        ]
        jobs += [
            (f"legacy-prune {case['name']} {label}",
             lambda c=case, l=label: check_legacy_prune(c, l, args, legacy_dir))
            for label in case["files"]
            if label != "json"
        ]
        for name, job in jobs:
            try:
                job()
                failures = []
            except CheckFailure as e:
                failures = [str(e)]
            except Exception as e:  # a crash in Keras counts as a failure
                msg = str(e).strip().splitlines()
                failures = [f"{type(e).__name__}: " + (msg[0] if msg else "")]
            keras.backend.clear_session()
            report(name, failures)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Check that `kerasrs convert`, `kerasrs finetune` and "
        "`kerasrs prune` output (also of graph models) loads in Keras and "
        "matches what Keras itself produces."
    )
    parser.add_argument("--kerasrs", required=True, help="kerasrs binary")
    parser.add_argument(
        "--fixtures",
        default=os.path.join(REPO_ROOT, "fixtures"),
        help="fixtures directory holding manifest.json",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="check only these models (graph cases by their manifest name)",
    )
    parser.add_argument(
        "--keep", default=None, help="write converted models here (kept)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds per convert / finetune",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["convert", "finetune", "prune", "graph", "applications", "legacy", "dtypes", "shrink"],
        default=["convert", "finetune", "prune", "graph", "applications", "legacy", "dtypes", "shrink"],
        help="which sections to run (default: all)",
    )
    parser.add_argument(
        "--require-finetune",
        action="store_true",
        help="fail (instead of skip) the training cases when kerasrs has no "
        "finetune command",
    )
    args = parser.parse_args(argv)
    args.fixtures = os.path.abspath(args.fixtures)
    args.kerasrs = os.path.abspath(args.kerasrs) if os.sep in args.kerasrs else args.kerasrs

    manifest = load_manifest(os.path.join(args.fixtures, "manifest.json"))
    if manifest is None:
        return 2
    entries = manifest["models"] if "convert" in args.sections else []
    cases = []
    if "finetune" in args.sections:
        training = load_manifest(
            os.path.join(args.fixtures, "training", "manifest.json")
        )
        if training is None:
            return 2
        cases = training["cases"]
    prune_cases = PRUNE_CASES if "prune" in args.sections else []
    graph_cases = []
    if "graph" in args.sections:
        graph = load_manifest(os.path.join(args.fixtures, GRAPH_MANIFEST))
        if graph is None:
            return 2
        graph_cases = graph["cases"]
        # The image-model suites share the graph fixtures' manifest format.
        for extra in EXTRA_GRAPH_MANIFESTS:
            extra_path = os.path.join(args.fixtures, extra)
            if os.path.exists(extra_path):
                more = load_manifest(extra_path)
                if more is None:
                    return 2
                graph_cases = graph_cases + more["cases"]
        unknown = set(GRAPH_PRUNE_CASES) - {c["name"] for c in graph_cases}
        if unknown:
            print(
                f"error: GRAPH_PRUNE_CASES {sorted(unknown)} are not in "
                f"{GRAPH_MANIFEST}",
                file=sys.stderr,
            )
            return 2
    if args.only:
        known = (
            {e["name"] for e in entries}
            | {c["name"] for c in cases}
            | {c["name"] for c in prune_cases}
            | {c["name"] for c in graph_cases}
            | {a[0] for a in APPLICATIONS}
            | {c["name"] for c in legacy_cases(args.fixtures)}
        )
        unknown = set(args.only) - known
        if unknown:
            print(
                f"error: unknown models or training cases {sorted(unknown)}",
                file=sys.stderr,
            )
            return 2
        entries = [e for e in entries if e["name"] in args.only]
        cases = [c for c in cases if c["name"] in args.only]
        # A case built on another's output brings that one along.
        wanted = set(args.only) | {
            c["source"][1:]
            for c in prune_cases
            if c["name"] in args.only and c["source"].startswith("@")
        }
        prune_cases = [c for c in prune_cases if c["name"] in wanted]
        graph_cases = [c for c in graph_cases if c["name"] in args.only]

    applications = APPLICATIONS if "applications" in args.sections else []
    if args.only:
        applications = [a for a in applications if a[0] in args.only]

    passed = failed = skipped = 0

    def report(name, failures):
        nonlocal passed, failed
        if failures:
            failed += 1
            print(f"FAIL {name}: " + "; ".join(failures), flush=True)
        else:
            passed += 1
            print(f"ok {name}", flush=True)

    def skip_finetune(name):
        """Reports a training case when kerasrs has no finetune command."""
        nonlocal skipped
        reason = "kerasrs has no finetune command"
        if args.require_finetune:
            report(name, [reason])
        else:
            skipped += 1
            print(f"skip {name}: {reason}", flush=True)

    with tempfile.TemporaryDirectory(prefix="keras_compat_") as tmp:
        out_dir = args.keep or tmp
        os.makedirs(out_dir, exist_ok=True)
        for entry in entries:
            failures = check_model(entry, args, out_dir)
            keras.backend.clear_session()
            report(entry["name"], failures)

        available = None
        if cases:
            finetune_dir = os.path.join(out_dir, "finetune")
            os.makedirs(finetune_dir, exist_ok=True)
            available = has_finetune(args.kerasrs, args.timeout)
        for case in cases:
            if not available:
                skip_finetune(case["name"])
                continue
            failures = check_case(case, args, finetune_dir)
            keras.backend.clear_session()
            report(case["name"], failures)

        if prune_cases:
            prune_dir = os.path.join(out_dir, "prune")
            os.makedirs(prune_dir, exist_ok=True)
        prune_outputs = {}
        for case in prune_cases:
            failures = check_prune_case(case, args, prune_dir, prune_outputs)
            keras.backend.clear_session()
            report(case["name"], failures)

        if graph_cases:
            graph_dirs = {}
            for part in ("convert", "finetune", "prune"):
                graph_dirs[part] = os.path.join(out_dir, "graph", part)
                os.makedirs(graph_dirs[part], exist_ok=True)
        for case in graph_cases:
            failures = check_model(
                dict(case, file=case["before"]),
                args,
                graph_dirs["convert"],
                checks=GRAPH_CHECKS,
                context=GraphContext,
            )
            keras.backend.clear_session()
            report(f"graph-convert {case['name']}", failures)
        graph_trainable = [c for c in graph_cases if not c["predict_only"]]
        if graph_trainable and available is None:
            available = has_finetune(args.kerasrs, args.timeout)
        for case in graph_trainable:
            name = f"graph-finetune {case['name']}"
            if not available:
                skip_finetune(name)
                continue
            failures = check_case(
                case, args, graph_dirs["finetune"], context=GraphFinetuneContext
            )
            keras.backend.clear_session()
            report(name, failures)
        for case in graph_cases:
            if case["name"] not in GRAPH_PRUNE_CASES:
                continue
            failures = check_prune_case(
                graph_prune_case(case), args, graph_dirs["prune"], {}
            )
            keras.backend.clear_session()
            report(f"graph-prune {case['name']}", failures)
        if applications:
            apps_dir = os.path.join(out_dir, "applications")
            os.makedirs(apps_dir, exist_ok=True)
        for app in applications:
            failures = check_application(app, args, apps_dir)
            keras.backend.clear_session()
            report(f"applications {app[0]}", failures)
        if "legacy" in args.sections:
            run_legacy_section(args, out_dir, report)
        if "dtypes" in args.sections:
            run_dtypes_section(args, out_dir, report)
        if "shrink" in args.sections:
            run_shrink_section(args, out_dir, report)
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if failed else 0



# section 7: shrunk models (fixtures/shrink, made by generate_shrink.py)

SHRINK_MANIFEST = os.path.join("shrink", "manifest.json")
SHRINK_ATOL = 1e-6


def check_shrink_case(case, args, out_dir):
    """`kerasrs shrink` of a model with zero rows and columns: Keras loads the
    result, it has fewer parameters, predicts within 1e-6 of the original on
    the kept input columns, and fits one epoch from its stored state."""
    failures = []
    src = os.path.join(args.fixtures, case["model"])
    dst = os.path.join(out_dir, case["name"] + ".keras")
    cmd = [args.kerasrs, "shrink", src, "--output", dst, "--json"]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return ["shrink timed out"]
    if proc.returncode != 0:
        return [f"shrink failed: {proc.stderr.strip()}"]
    rep = json.loads(proc.stdout)
    expect = case["expect"]
    if rep["kept_inputs"] != expect["kept_inputs"]:
        failures.append(f"kept_inputs {rep['kept_inputs']} != {expect['kept_inputs']}")
    units = {l["layer"]: l["units_after"] for l in rep["layers"]}
    for layer, n in expect["units_after"].items():
        if units.get(layer) != n:
            failures.append(f"{layer}: {units.get(layer)} units, expected {n}")
    original = keras.saving.load_model(src)
    shrunk, warned = load_quietly(dst)
    if warned:
        failures.append(f"Keras warned while loading: {sorted(warned)}")
    if shrunk.count_params() != rep["params_after"]:
        failures.append(
            f"Keras counts {shrunk.count_params()} parameters, kerasrs {rep['params_after']}"
        )
    if not shrunk.count_params() < original.count_params():
        failures.append("no fewer parameters")
    x = np.load(os.path.join(args.fixtures, case["x"]))
    y = original.predict(x, verbose=0)
    ys = shrunk.predict(x[..., rep["kept_inputs"]], verbose=0)
    diff = float(np.max(np.abs(y - ys)))
    if not diff <= SHRINK_ATOL:
        failures.append(f"predictions differ by {diff:.3g} (> {SHRINK_ATOL})")
    if int(shrunk.optimizer.iterations.numpy()) != int(original.optimizer.iterations.numpy()):
        failures.append("optimizer iterations not carried over")
    loss = str(shrunk.loss)
    target = np.argmax(y, axis=-1) if "sparse" in loss else y
    try:
        shrunk.fit(x[..., rep["kept_inputs"]], target, epochs=1, verbose=0)
    except Exception as e:  # noqa: BLE001 - report any failure to train
        failures.append(f"fit from the shrunk file failed: {e}")
    return failures


def run_shrink_section(args, out_dir, report):
    path = os.path.join(args.fixtures, SHRINK_MANIFEST)
    manifest = load_manifest(path)
    if manifest is None:
        report("shrink manifest", [f"cannot read {path}"])
        return
    shrink_dir = os.path.join(out_dir, "shrink")
    os.makedirs(shrink_dir, exist_ok=True)
    for case in manifest["cases"]:
        if args.only and case["name"] not in args.only:
            continue
        failures = check_shrink_case(case, args, shrink_dir)
        keras.backend.clear_session()
        report(f"shrink {case['name']}", failures)


def load_manifest(path):
    """The parsed manifest, or None (after printing why) on a setup error."""
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        print(f"error: cannot read {path}: {e}", file=sys.stderr)
        return None
    if keras.__version__ != manifest["keras_version"]:
        print(
            f"error: keras {keras.__version__} but {path} was made with "
            f"{manifest['keras_version']}",
            file=sys.stderr,
        )
        return None
    if keras.backend.backend() != manifest["backend"]:
        print(
            f"error: backend {keras.backend.backend()} but {path} was made "
            f"with {manifest['backend']} (set KERAS_BACKEND)",
            file=sys.stderr,
        )
        return None
    return manifest


if __name__ == "__main__":
    sys.exit(main())
