//! Hostile and broken files: every command ends with one `error:` line, a
//! non-zero exit, no output file and its input unchanged; bombs are refused
//! before anything large is allocated; thousands of mutated archives never
//! panic.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{fixtures_dir, kerasrs};
use kerasrs::archive::Limits;
use kerasrs::{KerasFile, Model};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A stored zip member whose headers claim `declared` bytes.
fn zip_bomb(declared: u32) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("model.weights.h5", opts).unwrap();
    zip.write_all(b"0123456789").unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    // Patch the uncompressed size in the local header (offset 22) and in the
    // central directory header (offset 24 from its signature).
    bytes[22..26].copy_from_slice(&declared.to_le_bytes());
    let cd = bytes
        .windows(4)
        .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
        .unwrap();
    bytes[cd + 24..cd + 28].copy_from_slice(&declared.to_le_bytes());
    bytes
}

#[test]
fn zip_bomb_is_refused_fast() {
    let bytes = zip_bomb(3_000_000_000);
    let t = Instant::now();
    let err = KerasFile::from_bytes(&bytes, &Limits::default()).unwrap_err();
    assert!(t.elapsed().as_millis() < 500, "{:?}", t.elapsed());
    assert!(err.to_string().contains("max_expansion"), "{err}");
    assert!(err.to_string().contains("3000000000"), "{err}");
}

#[test]
fn dataset_expansion_is_capped() {
    // A real compressed dataset passes the default limits; with a tight
    // expansion limit the same mechanism refuses it.
    let mut root = kerasrs::archive::H5Group::default();
    let vars = root.ensure_group("layers/dense/vars").unwrap();
    let ds = kerasrs::archive::H5Dataset::from_f32(&[1024, 1024], &vec![0.0; 1 << 20]);
    vars.set_child("0", kerasrs::archive::H5Node::Dataset(ds));
    let bytes = kerasrs::archive::h5::write_tree(&root).unwrap();
    let strict = Limits {
        max_expansion: 1,
        bomb_floor_bytes: 1024,
        max_dataset_elements: 1 << 30,
        ..Limits::default()
    };
    assert!(kerasrs::archive::h5::read_tree(bytes.clone(), &Limits::default()).is_ok());
    let tiny = Limits {
        max_dataset_elements: 1000,
        ..Limits::default()
    };
    let err = kerasrs::archive::h5::read_tree(bytes.clone(), &tiny).unwrap_err();
    assert!(err.to_string().contains("max_dataset_elements"), "{err}");
    assert!(err.to_string().contains("layers/dense/vars/0"), "{err}");
    // Contiguous storage holds every byte, so even the strict ratio passes.
    assert!(kerasrs::archive::h5::read_tree(bytes, &strict).is_ok());
}

fn seed_bytes() -> Vec<u8> {
    std::fs::read(fixtures_dir().join("models/digits.keras")).unwrap()
}

/// Broken variants of the digits model, by name.
fn broken_archives() -> Vec<(&'static str, Vec<u8>)> {
    let good = seed_bytes();
    let file = KerasFile::open(fixtures_dir().join("models/digits.keras")).unwrap();
    let mut cases = vec![
        ("empty", Vec::new()),
        ("truncated_head", good[..good.len() / 3].to_vec()),
        ("truncated_tail", good[..good.len() - 7].to_vec()),
        ("zip_bomb", zip_bomb(4_000_000_000)),
        (
            "garbage",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
    ];
    for (i, pos) in [0usize, 400, 4000, 20_000, 40_000].iter().enumerate() {
        let mut b = good.clone();
        let p = pos % b.len();
        b[p] ^= 0xff;
        cases.push((["flip_a", "flip_b", "flip_c", "flip_d", "flip_e"][i], b));
    }
    let edit = |f: &dyn Fn(&mut KerasFile)| {
        let mut k = file.clone();
        f(&mut k);
        k.to_bytes().unwrap()
    };
    cases.push((
        "units_disagree",
        edit(&|k| k.config["config"]["layers"][1]["config"]["units"] = 31.into()),
    ));
    cases.push((
        "absurd_units",
        edit(&|k| k.config["config"]["layers"][1]["config"]["units"] = (1u64 << 62).into()),
    ));
    cases.push((
        "nan_regularizer",
        edit(&|k| {
            k.config["config"]["layers"][1]["config"]["kernel_regularizer"] =
                serde_json::json!({"class_name": "L1", "config": {"l1": -1.0}});
        }),
    ));
    cases.push((
        "unknown_layer",
        edit(&|k| k.config["config"]["layers"][1]["class_name"] = "LSTM".into()),
    ));
    cases.push((
        "weights_missing",
        edit(&|k| {
            k.weights.children.retain(|(n, _)| n != "layers");
        }),
    ));
    cases.push(("config_garbage", {
        let mut k = file.clone();
        k.config = serde_json::json!("not a model");
        k.to_bytes().unwrap()
    }));
    cases
}

fn run_matrix(dir: &Path, name: &str, bytes: &[u8]) -> Vec<String> {
    let input = dir.join(format!("{name}.keras"));
    std::fs::write(&input, bytes).unwrap();
    let data = fixtures_dir().join("digits.npz");
    let x = fixtures_dir().join("models/digits.x.npy");
    let mut problems = Vec::new();
    let commands: Vec<(&str, Vec<String>)> = vec![
        ("load", vec!["load".into(), s(&input).into()]),
        (
            "predict",
            vec![
                "predict".into(),
                s(&input).into(),
                "--input".into(),
                s(&x).into(),
                "--output".into(),
            ],
        ),
        (
            "convert",
            vec!["convert".into(), s(&input).into(), "--output".into()],
        ),
        (
            "finetune",
            vec![
                "finetune".into(),
                s(&input).into(),
                "--data".into(),
                s(&data).into(),
                "--quiet".into(),
                "--output".into(),
            ],
        ),
        (
            "prune",
            vec![
                "prune".into(),
                s(&input).into(),
                "--threshold".into(),
                "0.01".into(),
                "--output".into(),
            ],
        ),
    ];
    for (cmd, mut args) in commands {
        let out: PathBuf = dir.join(format!("{name}.{cmd}.out"));
        if cmd != "load" {
            args.push(s(&out).into());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _stdout, stderr) = kerasrs(&argv);
        let lines: Vec<&str> = stderr.lines().collect();
        if ok {
            problems.push(format!("{name}/{cmd}: succeeded"));
        } else if stderr.contains("panicked")
            || lines.len() != 1
            || !lines[0].starts_with("error: ")
        {
            problems.push(format!("{name}/{cmd}: stderr {stderr:?}"));
        }
        if out.exists() {
            problems.push(format!("{name}/{cmd}: left an output file"));
        }
        if std::fs::read(&input).unwrap() != bytes {
            problems.push(format!("{name}/{cmd}: changed its input"));
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kerasrs-"))
        .collect();
    if !leftovers.is_empty() {
        problems.push(format!("{name}: temporary files left: {leftovers:?}"));
    }
    problems
}

#[test]
fn broken_file_matrix_fails_cleanly_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let cases = broken_archives();
    for (name, bytes) in &cases {
        problems.extend(run_matrix(dir.path(), name, bytes));
    }
    println!("{} broken archives × 5 commands", cases.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A deterministic xorshift generator for the mutation smoke test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn thousands_of_mutated_archives_never_panic() {
    let originals: Vec<Vec<u8>> = ["act_relu", "functional_chain", "no_bias"]
        .iter()
        .map(|n| std::fs::read(fixtures_dir().join(format!("models/{n}.keras"))).unwrap())
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    let runs = 3000;
    for i in 0..runs {
        let mut b = originals[i % originals.len()].clone();
        let mutations = 1 + (rng.next() % 8) as usize;
        for _ in 0..mutations {
            let pos = (rng.next() as usize) % b.len();
            match rng.next() % 4 {
                0 => b[pos] ^= 1 << (rng.next() % 8),
                1 => b[pos] = rng.next() as u8,
                2 => b.truncate(pos.max(1)),
                _ => b[pos] = 0xff,
            }
        }
        let result = std::panic::catch_unwind(|| {
            KerasFile::from_bytes(&b, &Limits::default()).and_then(|f| {
                let m = Model::try_from(f)?;
                let x = ndarray::ArrayD::<f32>::zeros(
                    std::iter::once(2)
                        .chain(m.input_shape.iter().copied())
                        .collect::<Vec<_>>(),
                );
                m.predict(x.view(), 1)?;
                m.to_keras_file()?.to_bytes()
            })
        });
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("mutation {i} panicked"),
        }
    }
    println!(
        "{runs} mutated archives: {errors} clean errors, {} still valid",
        runs - errors
    );
    assert!(
        errors > runs / 10,
        "mutations should mostly break the archive"
    );
}

#[test]
fn mutated_npy_never_panics() {
    let original = std::fs::read(fixtures_dir().join("models/seed.x.npy")).unwrap();
    let mut rng = XorShift(42);
    for i in 0..2000 {
        let mut b = original.clone();
        let pos = (rng.next() as usize) % 140.min(b.len());
        b[pos] = rng.next() as u8;
        if i % 3 == 0 {
            b.truncate((rng.next() as usize) % b.len());
        }
        let r = std::panic::catch_unwind(|| kerasrs::data::npy_f32_from_bytes(&b));
        assert!(r.is_ok(), "npy mutation {i} panicked");
    }
}

/// The committed fuzz corpus (`fuzz/corpus/`, seeded from the fixtures and
/// grown by `cargo fuzz run`) replays through the same code paths as the
/// fuzz targets without a panic.
#[test]
fn fuzz_corpus_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for target in ["archive", "npy"] {
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| match target {
                "archive" => {
                    if let Ok(m) =
                        KerasFile::from_bytes(&bytes, &Limits::default()).and_then(Model::try_from)
                    {
                        let _ = m.to_keras_file().and_then(|f| f.to_bytes());
                    }
                }
                _ => {
                    let _ = kerasrs::data::npy_f32_from_bytes(&bytes);
                }
            });
            assert!(r.is_ok(), "{} panicked", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 5, "corpus has {replayed} inputs");
}

/// Ctrl-C during `finetune` stops training, writes nothing and leaves no
/// temporary file.
#[cfg(unix)]
#[test]
fn ctrl_c_during_finetune_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.keras");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kerasrs"))
        .args(["finetune", s(&fixtures_dir().join("models/digits.keras"))])
        .args(["--data", s(&fixtures_dir().join("digits.npz"))])
        .args(["--epochs", "1000000", "--quiet", "--output", s(&out)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("error: interrupted"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "output or temp file left"
    );
}

/// A deterministic xorshift generator for the mutations below.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Replace one value somewhere in `v` by a hostile one.
    fn mutate(&mut self, v: &mut serde_json::Value) {
        use serde_json::{Value, json};
        let children = match v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if children > 0 && self.below(4) != 0 {
            let i = self.below(children);
            let child = match v {
                Value::Object(m) => m.values_mut().nth(i),
                Value::Array(a) => a.get_mut(i),
                _ => None,
            };
            if let Some(child) = child {
                return self.mutate(child);
            }
        }
        *v = match self.below(9) {
            0 => json!(-1),
            1 => json!(0),
            2 => json!(1u64 << 40),
            3 => json!(null),
            4 => json!("bogus"),
            5 => json!([]),
            6 => json!({}),
            7 => json!(3),
            _ => json!([null, 2_000_000_000]),
        };
    }
}

/// Configs of every graph, conv, pool and seq fixture with hostile values put anywhere (shapes,
/// axes, tensor references, layer options, class names) are refused or run:
/// import never panics, and a model that imports predicts on zeros without
/// panicking.
#[test]
fn mutated_graph_configs_never_panic() {
    let mut cases = Vec::new();
    for suite in ["graph", "conv", "pool", "seq"] {
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures_dir().join(format!("{suite}/manifest.json")))
                .unwrap(),
        )
        .unwrap();
        cases.extend(manifest["cases"].as_array().unwrap().iter().cloned());
    }
    let mut rng = Mutator(0x9E37_79B9_7F4A_7C15);
    let (mut loaded, mut refused) = (0, 0);
    for case in &cases {
        let path = fixtures_dir().join(case["before"].as_str().unwrap());
        let original = KerasFile::open(&path).unwrap();
        for _ in 0..60 {
            let mut file = original.clone();
            for _ in 0..1 + rng.below(3) {
                rng.mutate(&mut file.config);
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let Ok(model) = Model::try_from(file) else {
                    return false;
                };
                let inputs: Vec<ndarray::ArrayD<f32>> = model
                    .graph
                    .input_shapes()
                    .iter()
                    .map(|s| {
                        let mut shape = vec![2];
                        shape.extend_from_slice(s);
                        ndarray::ArrayD::zeros(shape)
                    })
                    .collect();
                if inputs.iter().all(|x| x.len() <= 1 << 20) {
                    let views: Vec<_> = inputs.iter().map(|x| x.view()).collect();
                    let _ = model.predict_all(&views, 2);
                }
                true
            }));
            match outcome {
                Ok(true) => loaded += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!("{}: a mutated config panicked", case["name"]),
            }
        }
    }
    assert!(
        loaded > 0 && refused > 0,
        "{loaded} loaded, {refused} refused"
    );
}
