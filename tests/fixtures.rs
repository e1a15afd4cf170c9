//! Golden tests against real Keras: every fixture in `fixtures/manifest.json`
//! was saved by Keras 3.15.1 (JAX backend) with its inputs `x.npy` and
//! Keras's `model.predict(x)` as `y.npy`, and its parameter counts from
//! `model.count_params()` (see `fixtures/generate.py`).

mod common;

use common::{PREDICT_TOL, manifest, max_scaled_diff};
use kerasrs::archive::Limits;
use kerasrs::data::read_npy_f32;
use kerasrs::model::summary::Summary;
use kerasrs::{KerasFile, Model};

#[test]
fn manifest_comes_from_the_pinned_keras() {
    let m = manifest();
    assert_eq!(m.keras_version, "3.15.1");
    assert_eq!(m.backend, "jax");
    assert!(m.models.len() >= 10, "{} fixtures", m.models.len());
}

#[test]
fn predictions_match_keras() {
    let mut failures = Vec::new();
    for f in manifest().models {
        let model = Model::open(f.model_path()).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let x = read_npy_f32(&f.path(&f.x)).unwrap();
        let y_keras = read_npy_f32(&f.path(&f.y)).unwrap();
        for batch_size in [1, 7, 32] {
            let y = model.predict(x.view(), batch_size).unwrap();
            assert_eq!(y.shape(), y_keras.shape(), "{}", f.name);
            let d = max_scaled_diff(
                y.as_slice().unwrap(),
                y_keras.as_standard_layout().as_slice().unwrap(),
            );
            if d.is_nan() || d > PREDICT_TOL {
                failures.push(format!("{} (batch {batch_size}): max |Δ| = {d}", f.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "predictions differ from Keras:\n{}",
        failures.join("\n")
    );
}

#[test]
fn parameter_counts_match_keras() {
    for f in manifest().models {
        let model = Model::open(f.model_path()).unwrap();
        let s = Summary::of(&model);
        assert_eq!(s.total_params, f.count_params, "{}", f.name);
        assert_eq!(s.trainable_params, f.trainable_params, "{}", f.name);
        assert_eq!(s.non_trainable_params, f.non_trainable_params, "{}", f.name);
        assert_eq!(s.compile.is_some(), f.compiled, "{}", f.name);
        let iterations = s.optimizer_state.as_ref().and_then(|o| o.iterations);
        assert_eq!(
            s.optimizer_state.is_some(),
            f.has_optimizer_state,
            "{}",
            f.name
        );
        assert_eq!(iterations, f.optimizer_iterations, "{}", f.name);
    }
}

#[test]
fn write_then_read_round_trips_losslessly() {
    for f in manifest().models {
        let original = KerasFile::open(f.model_path()).unwrap();
        let model = Model::try_from(original.clone()).unwrap();
        let bytes = model.to_keras_file().unwrap().to_bytes().unwrap();
        let back = KerasFile::from_bytes(&bytes, &Limits::default()).unwrap();
        assert_eq!(back.config, original.config, "{}: config.json", f.name);
        assert_eq!(
            back.metadata, original.metadata,
            "{}: metadata.json",
            f.name
        );
        // Datatypes, shapes, attributes and raw bytes: bit-identical weights
        // and optimizer state.
        assert_eq!(
            back.weights, original.weights,
            "{}: model.weights.h5",
            f.name
        );
        let names = |k: &KerasFile| k.members.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&back), names(&original), "{}: members", f.name);
        // Unchanged JSON members keep their exact bytes.
        for (a, b) in back.members.iter().zip(&original.members) {
            if a.name.ends_with(".json") {
                assert_eq!(a.data, b.data, "{}: {} bytes", f.name, a.name);
            }
        }
        // And the re-read model is the same model.
        let again = Model::try_from(back).unwrap();
        assert_eq!(again.layers, model.layers, "{}: layers", f.name);
    }
}

#[test]
fn extra_members_pass_through_byte_for_byte() {
    let f = &manifest().models[0];
    let mut file = KerasFile::open(f.model_path()).unwrap();
    let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    file.members.push(kerasrs::archive::Member {
        name: "assets/vocabulary.bin".into(),
        compression: zip::CompressionMethod::Deflated,
        modified: None,
        data: payload.clone(),
        is_dir: false,
    });
    let model = Model::try_from(file).unwrap();
    let bytes = model.to_keras_file().unwrap().to_bytes().unwrap();
    let back = KerasFile::from_bytes(&bytes, &Limits::default()).unwrap();
    let extra: Vec<_> = back.extra_members().collect();
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].name, "assets/vocabulary.bin");
    assert_eq!(extra[0].data, payload);
}
