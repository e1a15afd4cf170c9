//! Ranking weights by magnitude for sparsity pruning: how many to prune, and
//! which ones (exact order, ties by position).

use crate::error::{Error, Result};

/// The number of weights a sparsity prunes out of `n`: `round(s·n)`, the
/// product in float64, halves to even.
pub fn sparsity_count(sparsity: f64, n: usize) -> usize {
    let k = (sparsity * n as f64).round_ties_even();
    // `sparsity` is in [0, 1], so `k` is in [0, n]; clamp anyway.
    (k.max(0.0) as usize).min(n)
}

/// Bits of a position in a ranking key (below the 31 bits of a magnitude).
const POSITION_BITS: u32 = 33;

/// Mark the `k` smallest magnitudes among `tensors` (ties: tensor order, then
/// position). Returns one mask per tensor.
pub(super) fn smallest(tensors: &[&[f32]], k: usize) -> Result<Vec<Vec<bool>>> {
    let mut masks: Vec<Vec<bool>> = tensors.iter().map(|t| vec![false; t.len()]).collect();
    let total: usize = tensors.iter().map(|t| t.len()).sum();
    if k == 0 {
        return Ok(masks);
    }
    if total as u64 >= 1 << POSITION_BITS {
        return Err(Error::limit(
            "max_prune_weights",
            format!("{total} weights to rank, at most 2^{POSITION_BITS} supported"),
        ));
    }
    // One u64 key per weight: the magnitude's bits (31 bits, since the sign
    // is clear; they order exactly like the magnitudes, NaN above infinity),
    // then the position in all tensors laid end to end, which breaks ties by
    // tensor, then position.
    let mut keys: Vec<u64> = Vec::with_capacity(total);
    for values in tensors {
        for v in values.iter() {
            let position = keys.len() as u64;
            keys.push((u64::from(v.abs().to_bits()) << POSITION_BITS) | position);
        }
    }
    if k < keys.len() {
        keys.select_nth_unstable(k - 1);
        keys.truncate(k);
    }
    let starts: Vec<usize> = tensors
        .iter()
        .scan(0, |start, t| {
            let s = *start;
            *start += t.len();
            Some(s)
        })
        .collect();
    for key in keys {
        let position = (key & ((1 << POSITION_BITS) - 1)) as usize;
        let t = starts.partition_point(|&s| s <= position) - 1;
        // The last tensor starting at or before `position` holds it (an empty
        // tensor shares its start with the next one and comes before it).
        masks[t][position - starts[t]] = true;
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparsity_count_rounds_half_to_even() {
        assert_eq!(sparsity_count(0.5, 10), 5);
        assert_eq!(sparsity_count(0.25, 10), 2); // 2.5 -> 2
        assert_eq!(sparsity_count(0.3, 10), 3); // 3.0000000000000004 -> 3
        assert_eq!(sparsity_count(0.15, 10), 2); // 1.5 -> 2
        assert_eq!(sparsity_count(1.0, 7), 7);
        assert_eq!(sparsity_count(0.0, 7), 0);
    }

    #[test]
    fn smallest_breaks_ties_by_position() {
        let a = [0.5f32, -0.1, 0.1, 0.0, -0.0, 0.1];
        let m = smallest(&[&a], 3).unwrap().remove(0);
        // 0.0 (3), -0.0 (4), then the first of the three 0.1 magnitudes (1).
        assert_eq!(m, [false, true, false, true, true, false]);
        let b = [0.1f32, f32::NAN, f32::INFINITY];
        // Equal magnitudes across tensors: the earlier tensor first.
        let m = smallest(&[&a, &b], 5).unwrap();
        assert_eq!(m[0], [false, true, true, true, true, true]);
        assert_eq!(m[1], [false, false, false]);
        let m = smallest(&[&a, &b], 6).unwrap();
        assert_eq!(m[1], [true, false, false]);
        // Empty tensors in between are skipped.
        let e: [f32; 0] = [];
        let m = smallest(&[&e, &b, &e, &[0.0]], 2).unwrap();
        assert_eq!(m[1], [true, false, false]);
        assert_eq!(m[3], [true]);
        assert!(m[0].is_empty() && m[2].is_empty());
        // NaN ranks above infinity.
        let m = smallest(&[&b], 2).unwrap().remove(0);
        assert_eq!(m, [true, false, true]);
        let m = smallest(&[&b], 3).unwrap().remove(0);
        assert_eq!(m, [true, true, true]);
    }
}
