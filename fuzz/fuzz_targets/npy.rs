//! bytes → `.npy` reader: must never panic or allocate past what the bytes hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kerasrs::data::npy_f32_from_bytes(data);
});
