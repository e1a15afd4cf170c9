"""Live Keras compatibility check for `kerasrs convert`.

Usage (from the repository root, in a venv made from fixtures/requirements.txt):

    KERAS_BACKEND=jax python tests/keras_compat.py --kerasrs target/release/kerasrs \
        [--fixtures fixtures] [--only NAME ...] [--keep DIR]

For every model listed in ``<fixtures>/manifest.json`` this runs

    <kerasrs> convert <fixtures>/<file> --output <tmp>/<name>.keras

and then checks the result with real Keras (see ``CHECKS``): the output loads
with ``keras.saving.load_model`` (compile=True) and predicts ``y.npy`` from
``x.npy`` within 1e-6, its config.json parses to the same JSON value, all
weights and (when saved) optimizer variables are bit-identical to the
original's, and every zip member of the original is present (byte-equal
except model.weights.h5 and config.json).

Prints ``ok <name>`` or ``FAIL <name>: <reason>`` per model, then
``N passed, M failed``; exits 1 if anything failed (2 on a setup error).

To add a check: write ``def check_xxx(ctx): ...`` that raises ``CheckFailure``
(or any exception) on failure, and append it to ``CHECKS``.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

PREDICT_ATOL = 1e-6
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Members whose bytes may legitimately change when kerasrs re-writes a model.
REWRITTEN_MEMBERS = {"model.weights.h5", "config.json"}


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
        if vo.path != vn.path:
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


def check_model(entry, args, out_dir):
    """Returns a list of failure reasons (empty when everything passed)."""
    name = entry["name"]
    src = os.path.join(args.fixtures, entry["file"])
    dst = os.path.join(out_dir, f"{name}.keras")
    try:
        run_convert(args.kerasrs, src, dst, args.timeout)
    except CheckFailure as e:
        return [str(e)]
    ctx = Context(entry, args.fixtures, dst)
    failures = []
    for check in CHECKS:
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


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Check that `kerasrs convert` output loads in Keras."
    )
    parser.add_argument("--kerasrs", required=True, help="kerasrs binary")
    parser.add_argument(
        "--fixtures",
        default=os.path.join(REPO_ROOT, "fixtures"),
        help="fixtures directory holding manifest.json",
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="check only these models"
    )
    parser.add_argument(
        "--keep", default=None, help="write converted models here (kept)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per convert"
    )
    args = parser.parse_args(argv)
    args.fixtures = os.path.abspath(args.fixtures)
    args.kerasrs = os.path.abspath(args.kerasrs) if os.sep in args.kerasrs else args.kerasrs

    with open(os.path.join(args.fixtures, "manifest.json")) as f:
        manifest = json.load(f)
    if keras.__version__ != manifest["keras_version"]:
        print(
            f"error: keras {keras.__version__} but fixtures were made with "
            f"{manifest['keras_version']}",
            file=sys.stderr,
        )
        return 2
    if keras.backend.backend() != manifest["backend"]:
        print(
            f"error: backend {keras.backend.backend()} but fixtures were made "
            f"with {manifest['backend']} (set KERAS_BACKEND)",
            file=sys.stderr,
        )
        return 2

    entries = manifest["models"]
    if args.only:
        unknown = set(args.only) - {e["name"] for e in entries}
        if unknown:
            print(f"error: unknown models {sorted(unknown)}", file=sys.stderr)
            return 2
        entries = [e for e in entries if e["name"] in args.only]

    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="keras_compat_") as tmp:
        out_dir = args.keep or tmp
        os.makedirs(out_dir, exist_ok=True)
        for entry in entries:
            failures = check_model(entry, args, out_dir)
            keras.backend.clear_session()
            if failures:
                failed += 1
                print(f"FAIL {entry['name']}: " + "; ".join(failures), flush=True)
            else:
                passed += 1
                print(f"ok {entry['name']}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
