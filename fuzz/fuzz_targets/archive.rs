//! bytes → `KerasFile` → `Model` → predict → write back: must never panic.
#![no_main]

use kerasrs::archive::Limits;
use kerasrs::{KerasFile, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = KerasFile::from_bytes(data, &Limits::default()) else {
        return;
    };
    let Ok(model) = Model::try_from(file) else {
        return;
    };
    let mut shape = vec![2];
    shape.extend(model.input_shape.iter().copied());
    if shape.iter().product::<usize>() <= 1 << 20 {
        let x = ndarray::ArrayD::<f32>::zeros(shape);
        let _ = model.predict(x.view(), 1);
    }
    let _ = model.to_keras_file().and_then(|f| f.to_bytes());
});
