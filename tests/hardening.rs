//! What a path or a name in a file can do: no output may replace an input
//! or another output under any name, outputs get the permissions any new
//! file gets, and names from a file never reach the terminal as control
//! characters.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{fixtures_dir, kerasrs};
use kerasrs::KerasFile;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn digits() -> PathBuf {
    fixtures_dir().join("models/digits.keras")
}

fn digits_data() -> PathBuf {
    fixtures_dir().join("digits.npz")
}

/// Run a command that must fail fast (before any training); return its
/// single error line.
fn refused(args: &[&str]) -> String {
    let start = Instant::now();
    let (ok, stdout, stderr) = kerasrs(args);
    assert!(!ok, "expected failure: {args:?}\n{stdout}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        start.elapsed().as_secs_f64() < 5.0,
        "refused only after the work: {args:?}"
    );
    lines[0].to_string()
}

/// Copies of the digits model and data in a fresh directory.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.keras");
    let data = dir.path().join("d.npz");
    std::fs::copy(digits(), &model).unwrap();
    std::fs::copy(digits_data(), &data).unwrap();
    (dir, model, data)
}

/// `--history` (or any output) may not replace the model, the data or the
/// other output: refused before training, naming both flags, nothing
/// written; `--in-place` only lets `--output` replace the model.
#[test]
fn history_never_overwrites_an_input_or_the_output() {
    let (dir, model, data) = workspace();
    let out = dir.path().join("out.keras");
    let model_bytes = std::fs::read(&model).unwrap();
    let data_bytes = std::fs::read(&data).unwrap();
    let finetune = |history: &Path, extra: &[&str]| {
        let mut args = vec![
            "finetune",
            s(&model),
            "--data",
            s(&data),
            "--epochs",
            "50",
            "--output",
            s(&out),
            "--history",
            s(history),
        ];
        args.extend_from_slice(extra);
        refused(&args)
    };
    let err = finetune(&model, &[]);
    assert!(
        err.contains("refusing to overwrite the input file")
            && err.contains("the model")
            && err.contains("`--history`"),
        "{err}"
    );
    let err = finetune(&data, &[]);
    assert!(
        err.contains("`--data`") && err.contains("`--history`"),
        "{err}"
    );
    let err = finetune(&out, &[]);
    assert!(
        err.contains("`--history`") && err.contains("`--output`") && err.contains("same file"),
        "{err}"
    );
    // `--in-place` is about `--output` only.
    let err = refused(&[
        "finetune",
        s(&model),
        "--data",
        s(&data),
        "--output",
        s(&model),
        "--in-place",
        "--history",
        s(&model),
    ]);
    assert!(err.contains("`--history`"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert_eq!(std::fs::read(&data).unwrap(), data_bytes);
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// The same file reached by another name: `./`, `sub/..`, a symlink, a hard
/// link.
#[test]
fn outputs_are_compared_by_file_not_by_name() {
    let (dir, model, data) = workspace();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let dotted = sub.join("..").join("m.keras");
    let mut names = vec![dotted];
    #[cfg(unix)]
    {
        let link = dir.path().join("link.keras");
        std::os::unix::fs::symlink(&model, &link).unwrap();
        let hard = sub.join("hard.keras");
        std::fs::hard_link(&model, &hard).unwrap();
        names.extend([link, hard]);
    }
    for name in &names {
        let err = refused(&["convert", s(&model), "--output", s(name)]);
        assert!(
            err.contains("refusing to overwrite the input file"),
            "{err}"
        );
        assert!(err.contains("--in-place"), "{err}");
        let err = refused(&["sparsity", s(&model), "--plot", s(name)]);
        assert!(err.contains("`--plot`"), "{err}");
    }
    // Relative names, from the directory itself: `./m.keras` vs `m.keras`.
    let out = Command::new(env!("CARGO_BIN_EXE_kerasrs"))
        .current_dir(dir.path())
        .args(["convert", "m.keras", "--output", "./m.keras"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refusing to overwrite"),
        "{err}"
    );
    // `predict --output` onto its `--input` through a hard link.
    #[cfg(unix)]
    {
        let x = dir.path().join("x.npy");
        // Refused before it is read: the content does not matter.
        std::fs::write(&x, b"not read").unwrap();
        let x2 = sub.join("x2.npy");
        std::fs::hard_link(&x, &x2).unwrap();
        let err = refused(&["predict", s(&model), "--input", s(&x), "--output", s(&x2)]);
        assert!(
            err.contains("`--input`") && err.contains("`--output`"),
            "{err}"
        );
        // Two outputs under two names of one new file.
        let h = dir.path().join("h.keras");
        let h2 = sub.join("../h.keras");
        let err = refused(&[
            "finetune",
            s(&model),
            "--data",
            s(&data),
            "--output",
            s(&h),
            "--history",
            s(&h2),
        ]);
        assert!(err.contains("same file"), "{err}");
        std::fs::remove_file(&x2).unwrap();
        std::fs::remove_file(&x).unwrap();
    }
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(digits()).unwrap()
    );
}

/// A sweep's members (`DIR/l1_<λ>.keras`, `DIR/sweep.svg`) are outputs too:
/// one of them being the data is refused before training, and the
/// directory the sweep would have created is not left behind.
#[test]
fn sweep_members_never_overwrite_inputs() {
    let (dir, model, data) = workspace();
    let out_dir = dir.path().join("sweep");
    std::fs::create_dir(&out_dir).unwrap();
    let member = out_dir.join("l1_1e-3.keras");
    std::fs::copy(&model, &member).unwrap();
    let err = refused(&[
        "sweep",
        s(&member),
        "--data",
        s(&data),
        "--l1",
        "1e-4,1e-3",
        "--epochs",
        "50",
        "--out-dir",
        s(&out_dir),
    ]);
    assert!(
        err.contains("refusing to overwrite the input file") && err.contains("`--out-dir`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&member).unwrap(),
        std::fs::read(&model).unwrap()
    );
    let fresh = dir.path().join("fresh");
    let err = refused(&[
        "sweep",
        s(&model),
        "--data",
        s(&data),
        "--validation-data",
        s(&fresh.join("sweep.svg")),
        "--l1",
        "1e-4",
        "--epochs",
        "50",
        "--out-dir",
        s(&fresh),
    ]);
    assert!(err.contains("`--validation-data`"), "{err}");
    assert!(!fresh.exists(), "the refused sweep left its directory");
}

/// An output naming a directory that does not exist (`new/`), or in a
/// directory that cannot be written, is refused before training, in words.
#[test]
fn output_directories_are_checked_before_any_work() {
    let (dir, model, data) = workspace();
    let slash = format!("{}/", dir.path().join("new").display());
    let err = refused(&[
        "finetune",
        s(&model),
        "--data",
        s(&data),
        "--epochs",
        "50",
        "--output",
        &slash,
    ]);
    assert!(err.contains("give a file name"), "{err}");
    assert!(!err.contains("Not a directory"), "{err}");
    let err = refused(&[
        "finetune",
        s(&model),
        "--data",
        s(&data),
        "--epochs",
        "50",
        "--output",
        s(&dir.path().join("out.keras")),
        "--history",
        s(&dir.path().join("nowhere/h.csv")),
    ]);
    assert!(
        err.contains("does not exist") && !err.contains(".kerasrs-"),
        "{err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root writes anywhere: only check when the directory really is
        // read-only for us.
        if std::fs::write(locked.join("probe"), b"").is_err() {
            let err = refused(&[
                "finetune",
                s(&model),
                "--data",
                s(&data),
                "--epochs",
                "50",
                "--output",
                s(&locked.join("out.keras")),
            ]);
            assert!(err.contains("is not writable"), "{err}");
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(!dir.path().join("out.keras").exists());
}

/// Run kerasrs under a umask.
#[cfg(unix)]
fn with_umask(umask: &str, args: &[&str]) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_kerasrs"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// New outputs get 0666 less the umask, as any program's new file; an
/// output that replaces a file (`--in-place`, an existing `--output`)
/// keeps that file's mode.
#[cfg(unix)]
#[test]
fn outputs_follow_the_umask_and_keep_an_existing_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, model, data) = workspace();
    let out = dir.path().join("out.keras");
    with_umask("022", &["convert", s(&model), "--output", s(&out)]);
    assert_eq!(mode(&out), 0o644);
    std::fs::remove_file(&out).unwrap();
    with_umask("027", &["convert", s(&model), "--output", s(&out)]);
    assert_eq!(mode(&out), 0o640);
    let history = dir.path().join("h.csv");
    with_umask(
        "002",
        &[
            "finetune",
            s(&model),
            "--data",
            s(&data),
            "--quiet",
            "--output",
            s(&dir.path().join("t.keras")),
            "--history",
            s(&history),
        ],
    );
    assert_eq!(mode(&history), 0o664);
    assert_eq!(mode(&dir.path().join("t.keras")), 0o664);
    // Replacing: the file's mode stays, whatever the umask.
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o644)).unwrap();
    with_umask(
        "077",
        &["convert", s(&model), "--output", s(&model), "--in-place"],
    );
    assert_eq!(mode(&model), 0o644);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o604)).unwrap();
    with_umask("022", &["convert", s(&model), "--output", s(&out)]);
    assert_eq!(mode(&out), 0o604);
}

const HOSTILE: &str = "x\u{1b}[2J\u{1b}]0;title\u{7}\u{9b}31m";

fn hostile_model(dir: &Path, name: &str, edit: impl FnOnce(&mut KerasFile)) -> PathBuf {
    let mut file = KerasFile::open(fixtures_dir().join("models/seed.keras")).unwrap();
    edit(&mut file);
    let path = dir.join(name);
    file.save(&path).unwrap();
    path
}

fn assert_no_controls(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reach the terminal: {text:?}"
    );
}

/// Names from `config.json` and `metadata.json` are printed with their
/// control characters escaped, in `load` and in `error:` lines; `--json`
/// keeps them exactly (serde escapes them).
#[test]
fn names_from_files_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let path = hostile_model(dir.path(), "named.keras", |f| {
        f.config["config"]["name"] = HOSTILE.into();
        f.config["config"]["layers"][0]["config"]["name"] = HOSTILE.into();
        f.metadata["keras_version"] = HOSTILE.into();
    });
    let (ok, stdout, stderr) = kerasrs(&["load", s(&path)]);
    assert!(ok, "{stderr}");
    assert_no_controls(&stdout);
    assert!(
        stdout.contains("x\\u{1b}[2J\\u{1b}]0;title\\u{7}\\u{9b}31m"),
        "{stdout}"
    );
    let (ok, json, stderr) = kerasrs(&["load", s(&path), "--json"]);
    assert!(ok, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["name"], HOSTILE, "{json}");

    let bad = hostile_model(dir.path(), "class.keras", |f| {
        f.config["config"]["layers"][2]["class_name"] = HOSTILE.into();
    });
    let (ok, _, stderr) = kerasrs(&["load", s(&bad)]);
    assert!(!ok);
    assert_no_controls(&stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(stderr.contains("\\u{1b}[2J"), "{stderr}");
    // A layer name the user asked about is quoted from the file too.
    let (ok, _, stderr) = kerasrs(&[
        "prune",
        s(&path),
        "--threshold",
        "0.1",
        "--layers",
        "nope",
        "--output",
        s(&dir.path().join("p.keras")),
    ]);
    assert!(!ok);
    assert_no_controls(&stderr);
}

/// Stored optimizer state no optimizer can have written (a negative step
/// count, a NaN learning rate) is refused when the model is opened, naming
/// the dataset, not accepted and reported later as a loss that became NaN.
#[test]
fn corrupt_optimizer_state_is_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let negative = hostile_model(dir.path(), "negative.keras", |f| {
        let vars = f.weights.group_mut("optimizer/vars").unwrap();
        vars.dataset_mut("0").unwrap().set_scalar_i64(-5).unwrap();
    });
    let nan = hostile_model(dir.path(), "nan.keras", |f| {
        let vars = f.weights.group_mut("optimizer/vars").unwrap();
        vars.dataset_mut("1").unwrap().set_f32(&[f32::NAN]).unwrap();
    });
    for (path, expected) in [(&negative, "-5"), (&nan, "NaN")] {
        for args in [
            vec!["load", s(path)],
            vec![
                "finetune",
                s(path),
                "--x",
                s(&fixtures_dir().join("models/seed.x.npy")),
                "--y",
                s(&fixtures_dir().join("models/seed.y.npy")),
                "--output",
                s(&dir.path().join("out.keras")),
            ],
        ] {
            let err = refused(&args);
            assert!(err.contains("optimizer/vars/"), "{err}");
            assert!(err.contains(expected) && err.contains("corrupt"), "{err}");
            assert!(!err.contains("try a smaller learning rate"), "{err}");
        }
    }
    assert!(!dir.path().join("out.keras").exists());
}

/// A zip at `path` holding `members` in order, each written with `method`
/// (raw bytes, as a hostile writer would put them).
fn write_zip(path: &Path, method: zip::CompressionMethod, members: &[(&str, &[u8])]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (member, bytes) in members {
        zip.start_file(*member, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The digits model with its weights member replaced by `weights`.
fn with_weights_member(dir: &Path, name: &str, weights: &[u8]) -> PathBuf {
    let src = KerasFile::open(digits()).unwrap();
    let path = dir.join(name);
    write_zip(
        &path,
        zip::CompressionMethod::Stored,
        &[
            ("metadata.json", src.metadata.to_string().as_bytes()),
            ("config.json", src.config.to_string().as_bytes()),
            ("model.weights.h5", weights),
        ],
    );
    path
}

/// HDF5 files that make a small file cost far more memory than it holds
/// (made by h5py: `fixtures/generate_hostile.py`) are refused before their
/// data is read: one dataset under several names (hard links; at scale an
/// 8 MB file declaring 1.25 GiB), and many datasets that store nothing but
/// together declare megabytes.
#[test]
fn hdf5_memory_bombs_are_refused() {
    let hostile = fixtures_dir().join("hostile");
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in [
        ("hardlinks.h5", "hard link"),
        ("unwritten.h5", "store only 0"),
    ] {
        let bytes = std::fs::read(hostile.join(file)).unwrap();
        let err =
            kerasrs::archive::h5::read_tree(bytes.clone(), &kerasrs::archive::Limits::default())
                .unwrap_err()
                .to_string();
        assert!(err.contains(expected), "{file}: {err}");
        let model = with_weights_member(dir.path(), &format!("{file}.keras"), &bytes);
        let err = refused(&["load", s(&model)]);
        assert!(
            err.contains(expected) && err.contains("model.weights.h5"),
            "{err}"
        );
    }
    // A real weights file, with every dataset stored once, still reads.
    let real = KerasFile::open(digits()).unwrap();
    let bytes = kerasrs::archive::h5::write_tree(&real.weights).unwrap();
    kerasrs::archive::h5::read_tree(bytes, &kerasrs::archive::Limits::default()).unwrap();
}

/// A zip member whose header declares 1000 bytes over data that inflates
/// to 64 MiB (DEFLATE's ~1030:1 stays under any expansion limit) is read
/// only to its declared size plus one byte, and refused.
#[test]
fn zip_members_are_read_only_to_their_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying.keras");
    let src = KerasFile::open(digits()).unwrap();
    write_zip(
        &path,
        zip::CompressionMethod::Deflated,
        &[
            ("metadata.json", src.metadata.to_string().as_bytes()),
            ("config.json", src.config.to_string().as_bytes()),
            ("assets/blob.bin", &vec![0u8; 64 << 20]),
        ],
    );
    // Patch the member's declared size (local header and central directory)
    // to 1000 bytes.
    let mut bytes = std::fs::read(&path).unwrap();
    let name = b"assets/blob.bin";
    let size = (64u32 << 20).to_le_bytes();
    let mut patched = 0;
    for i in 0..bytes.len() - 4 {
        let local = bytes[i..].starts_with(b"PK\x03\x04") && bytes[i + 30..].starts_with(name);
        let central = bytes[i..].starts_with(b"PK\x01\x02") && bytes[i + 46..].starts_with(name);
        let at = if local {
            i + 22
        } else if central {
            i + 24
        } else {
            continue;
        };
        assert_eq!(bytes[at..at + 4], size, "declared size where expected");
        bytes[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
        patched += 1;
    }
    assert_eq!(patched, 2);
    std::fs::write(&path, &bytes).unwrap();
    let err = refused(&["load", s(&path)]);
    assert!(
        err.contains("assets/blob.bin") && err.contains("inflates past 1000 bytes"),
        "{err}"
    );
}

/// A `config.json` of millions of empty objects (9 MB of text, a few KB
/// compressed; parsed, about 25 times its text) is refused before parsing.
#[test]
fn json_bombs_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("json.keras");
    let src = KerasFile::open(digits()).unwrap();
    let config = format!("[{}{{}}]", "{},".repeat(3_000_000));
    write_zip(
        &path,
        zip::CompressionMethod::Deflated,
        &[
            ("metadata.json", src.metadata.to_string().as_bytes()),
            ("config.json", config.as_bytes()),
        ],
    );
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
    let err = refused(&["load", s(&path)]);
    assert!(
        err.contains("config.json") && err.contains("max_json_values"),
        "{err}"
    );
}

/// A soft link in the weights file (which Keras's loader refuses too) is
/// named as such, not reported as a read past the end of the file.
#[test]
fn hdf5_soft_links_are_named() {
    let bytes = std::fs::read(fixtures_dir().join("hostile/softlink.h5")).unwrap();
    let err = kerasrs::archive::h5::read_tree(bytes, &kerasrs::archive::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("soft or external link") && err.contains("layers/dense/vars"),
        "{err}"
    );
}
