//! Safety limits applied while reading untrusted archives.
//!
//! Every limit is generous enough that real models never hit it, and each is
//! named in the error it raises so a user can tell which one tripped.

/// Caps on what a single archive may make kerasrs read or allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most members a `.keras` zip may hold.
    pub max_members: usize,
    /// Most bytes one member may inflate to.
    pub max_member_bytes: u64,
    /// Most bytes all members together may inflate to.
    pub max_total_bytes: u64,
    /// Most bytes of a JSON member (`config.json`, `metadata.json`).
    pub max_json_bytes: u64,
    /// Most values in one JSON document (parsed, a value costs about 25
    /// times its text: see `archive::json`).
    pub max_json_values: u64,
    /// Deepest nesting of HDF5 groups.
    pub max_h5_depth: usize,
    /// Most groups and datasets in the weights file.
    pub max_h5_objects: u64,
    /// Most elements one dataset may declare.
    pub max_dataset_elements: u64,
    /// Most bytes all datasets together may declare.
    pub max_weights_bytes: u64,
    /// Largest expansion (declared ÷ stored bytes) a zip member or HDF5
    /// dataset may claim once it declares more than [`Limits::bomb_floor_bytes`].
    /// DEFLATE cannot exceed about 1032:1, so real files never come near it;
    /// decompression and shape bombs, which store next to nothing, do.
    pub max_expansion: u64,
    /// Size above which the expansion check applies.
    pub bomb_floor_bytes: u64,
}

const GIB: u64 = 1 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_members: 100_000,
            max_member_bytes: 16 * GIB,
            max_total_bytes: 32 * GIB,
            max_json_bytes: GIB / 4,
            max_json_values: 2_000_000,
            max_h5_depth: 64,
            max_h5_objects: 1_000_000,
            max_dataset_elements: 4 * GIB,
            max_weights_bytes: 16 * GIB,
            max_expansion: 1100,
            bomb_floor_bytes: 1 << 20,
        }
    }
}
