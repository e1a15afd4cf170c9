//! Matrix products for training and inference.
//!
//! The products of a training step are small (a batch of 32 rows against a
//! Dense kernel that fits in the core's cache), many (three per Dense layer
//! and step), and dominate the step's time. `ndarray`'s general product
//! (`matrixmultiply`: AVX2/FMA kernels, one thread) packs both operands on
//! every call; on CPUs with AVX-512 this module instead streams the kernel's
//! rows straight from memory into a register block of 6 rows × 64 columns
//! (24 vector accumulators), and splits the rows of larger products across
//! the two threads of [`super::pool`]. Everything else — other CPUs, a
//! right-hand side whose rows are not contiguous, operands too large to stay
//! in cache — goes to `ndarray::linalg::general_mat_mul`.
//!
//! Each output element is a fused multiply-add chain over the inner axis in
//! order, so results differ from `matrixmultiply`'s only by rounding.

use std::mem::MaybeUninit;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, CowArray, Ix2, ShapeBuilder};

use super::pool;

/// Products with at least this many multiply-adds use both threads.
const SPLIT_WORK: usize = 1 << 17;

/// Products with fewer rows than this (and an inner axis at least twice as
/// long) are split along the inner axis.
const SHORT_ROWS: usize = 64;

/// Right-hand sides up to this many values are copied into row-major order
/// for the streamed kernel when they come in another layout.
const SMALL_COPY: usize = 1 << 14;

/// Right-hand sides up to this many bytes are streamed from cache.
const MAX_STREAMED_RHS: usize = 1 << 20;

/// The left operand of a product: an array view, or float32 values stored
/// little-endian at any byte alignment (training inputs used where they lie
/// in a memory-mapped file, without copying them into a batch first).
#[derive(Debug, Clone, Copy)]
pub enum Lhs<'a> {
    /// An array view.
    View(ArrayView2<'a, f32>),
    /// Values in bytes.
    Bytes(ByteMatrix<'a>),
}

/// A matrix of float32 values stored in bytes (little-endian, any
/// alignment): element `(i, j)` starts at byte `base + 4·(i·rs + j·cs)`.
#[derive(Debug, Clone, Copy)]
pub struct ByteMatrix<'a> {
    bytes: &'a [u8],
    base: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Lhs<'a> {
    /// `rows × cols` values in C order in `bytes` (exactly that many):
    /// `None` when the sizes disagree or this target is big-endian.
    pub fn from_le_bytes(bytes: &'a [u8], rows: usize, cols: usize) -> Option<Self> {
        let len = rows.checked_mul(cols)?.checked_mul(4)?;
        (cfg!(target_endian = "little") && bytes.len() == len).then_some(Lhs::Bytes(ByteMatrix {
            bytes,
            base: 0,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }))
    }

    /// The same operand for a shorter lifetime.
    pub fn reborrow<'b>(&'b self) -> Lhs<'b> {
        match self {
            Lhs::View(a) => Lhs::View(a.reborrow()),
            Lhs::Bytes(m) => Lhs::Bytes(*m),
        }
    }

    /// `(rows, columns)`.
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Lhs::View(a) => a.dim(),
            Lhs::Bytes(m) => (m.rows, m.cols),
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        match self {
            Lhs::View(a) => Lhs::View(a.reversed_axes()),
            Lhs::Bytes(m) => Lhs::Bytes(ByteMatrix {
                rows: m.cols,
                cols: m.rows,
                rs: m.cs,
                cs: m.rs,
                ..m
            }),
        }
    }

    /// Split before row (`Axis(0)`) or column (`Axis(1)`) `index`.
    ///
    /// # Panics
    /// When `index` is beyond that axis.
    pub fn split_at(self, axis: Axis, index: usize) -> (Self, Self) {
        match self {
            Lhs::View(a) => {
                let (x, y) = a.split_at(axis, index);
                (Lhs::View(x), Lhs::View(y))
            }
            Lhs::Bytes(m) => {
                let (len, stride) = if axis == Axis(0) {
                    (m.rows, m.rs)
                } else {
                    (m.cols, m.cs)
                };
                assert!(index <= len, "split at {index} of an axis of {len}");
                let (mut x, mut y) = (m, m);
                y.base = m.base + 4 * index * stride;
                if axis == Axis(0) {
                    (x.rows, y.rows) = (index, len - index);
                } else {
                    (x.cols, y.cols) = (index, len - index);
                }
                (Lhs::Bytes(x), Lhs::Bytes(y))
            }
        }
    }

    /// The values as an array (a copy for values in bytes).
    pub fn to_array(self) -> CowArray<'a, f32, Ix2> {
        match self {
            Lhs::View(a) => a.into(),
            Lhs::Bytes(m) => Array2::from_shape_fn((m.rows, m.cols), |(i, j)| m.at(i, j)).into(),
        }
    }

    /// Pointer to element (0, 0) (possibly unaligned) and the strides in
    /// elements, for the kernel.
    #[cfg(target_arch = "x86_64")]
    fn raw(&self) -> (*const f32, isize, isize) {
        match self {
            Lhs::View(a) => (a.as_ptr(), a.strides()[0], a.strides()[1]),
            Lhs::Bytes(m) => (
                m.bytes[m.base..].as_ptr().cast::<f32>(),
                m.rs as isize,
                m.cs as isize,
            ),
        }
    }
}

impl ByteMatrix<'_> {
    fn at(&self, i: usize, j: usize) -> f32 {
        let at = self.base + 4 * (i * self.rs + j * self.cs);
        let b = &self.bytes[at..at + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<'a> From<ArrayView2<'a, f32>> for Lhs<'a> {
    fn from(a: ArrayView2<'a, f32>) -> Self {
        Lhs::View(a)
    }
}

/// `a @ b` as a new array.
pub fn matmul<'a>(a: impl Into<Lhs<'a>>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    let a = a.into();
    let mut c = Array2::<f32>::uninit((a.dim().0, b.ncols()));
    matmul_into_uninit(a, b, c.view_mut());
    // SAFETY: the product wrote every value.
    unsafe { c.assume_init() }
}

/// `aᵀ @ b` for operands with many rows (a gradient summed over every row of
/// a batch and every timestep): the rows are taken in chunks small enough
/// for the streamed kernel's right-hand side, and the chunks' products are
/// summed in order.
pub fn matmul_tn(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    assert_eq!(a.nrows(), b.nrows(), "rows of a transposed product");
    let rows = a.nrows();
    let chunk = (MAX_STREAMED_RHS / 4 / b.ncols().max(1)).max(1);
    let mut c = Array2::<f32>::zeros((a.ncols(), b.ncols()));
    let mut start = 0;
    while start < rows {
        let end = (start + chunk).min(rows);
        let part = matmul(
            a.slice(ndarray::s![start..end, ..]).t(),
            b.slice(ndarray::s![start..end, ..]),
        );
        if start == 0 {
            c = part;
        } else {
            c += &part;
        }
        start = end;
    }
    c
}

/// `c = a @ b`, overwriting `c`.
pub fn matmul_into<'a>(
    a: impl Into<Lhs<'a>>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let (s0, s1) = (c.strides()[0], c.strides()[1]);
    let dim = c.raw_dim();
    let ptr = c.as_mut_ptr().cast::<MaybeUninit<f32>>();
    // SAFETY: the same elements, borrowed mutably for the same lifetime;
    // `MaybeUninit<f32>` has the layout of `f32`, and the product writes
    // only initialized values.
    let c =
        unsafe { ArrayViewMut2::from_shape_ptr(dim.strides(Ix2(s0 as usize, s1 as usize)), ptr) };
    matmul_into_uninit(a, b, c);
}

/// `c = a @ b` into uninitialized storage: every value of `c` is written.
pub fn matmul_into_uninit<'a>(
    a: impl Into<Lhs<'a>>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, MaybeUninit<f32>>,
) {
    let a = a.into();
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "inner dimensions of a product");
    assert_eq!(c.dim(), (m, n), "shape of a product's output");
    #[cfg(target_arch = "x86_64")]
    if m > 0 && n > 0 && k > 0 && (n == 1 || c.strides()[1] == 1) && avx512::available() {
        if avx512::usable(&b) {
            let ldc = c.strides()[0];
            // SAFETY: `c` is a live m × n view with unit column stride; the
            // kernel writes every value.
            unsafe { streamed(a, b, Out(c.as_mut_ptr().cast::<f32>()), ldc) };
            return;
        }
        if b.len() <= SMALL_COPY && !b.is_standard_layout() {
            // A small right-hand side in another layout (a transposed kernel
            // in the backward pass): copying it costs less than the general
            // path.
            return matmul_into_uninit(a, b.as_standard_layout().view(), c);
        }
    }
    c.iter_mut().for_each(|v| {
        v.write(0.0);
    });
    // SAFETY: every value was just written.
    let mut c = unsafe { c.assume_init() };
    if m > 0 && n > 0 && k > 0 {
        general_mat_mul(1.0, &a.to_array(), &b, 0.0, &mut c);
    }
}

/// The output of a product: `m × n` values with unit column stride.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the two halves of a split product write disjoint rows.
unsafe impl Send for Out {}

/// `c = a @ b` through the AVX-512 kernel, the rows split over both threads
/// when the product is large enough.
///
/// # Safety
/// The CPU has AVX-512, `avx512::usable(&b)` holds, `a` is `m × k` with
/// `k == b.nrows() > 0`, and `c` points to `m` rows of `b.ncols()` writable
/// values, `ldc` apart.
#[cfg(target_arch = "x86_64")]
unsafe fn streamed(a: Lhs<'_>, b: ArrayView2<'_, f32>, c: Out, ldc: isize) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let work = m.saturating_mul(k).saturating_mul(n);
    if work >= SPLIT_WORK && m < SHORT_ROWS && k >= 2 * SHORT_ROWS {
        // Few rows, long inner axis (a training batch against a wide
        // kernel): each thread takes half of the inner axis, i.e. half of
        // the kernel's rows: the half it also updates in the optimizer and
        // whose batch columns it reads (or copied), so no large operand
        // moves between cores. The halves are summed: `c = a₁b₁ + a₂b₂`, the same
        // arithmetic with one thread or two.
        let kh = k / 2;
        let (a1, a2) = a.split_at(Axis(1), kh);
        let (b1, b2) = b.split_at(Axis(0), kh);
        let len = m * n;
        let mut upper = Vec::<f32>::with_capacity(len);
        let upper_out = Out(upper.as_mut_ptr());
        pool::join(
            // SAFETY: `c` holds m rows of n values; `upper` holds m × n.
            || unsafe { avx512::run(a1, b1, c, ldc) },
            move || unsafe { avx512::run(a2, b2, upper_out, n as isize) },
        );
        // SAFETY: the kernel wrote all m × n values of `upper`.
        unsafe { upper.set_len(len) };
        for (i, row) in upper.chunks_exact(n.max(1)).enumerate() {
            // SAFETY: row i of `c` has n values, `ldc` apart from the next.
            let out = unsafe { std::slice::from_raw_parts_mut(c.0.offset(i as isize * ldc), n) };
            out.iter_mut().zip(row).for_each(|(o, &u)| *o += u);
        }
    } else if work >= SPLIT_WORK && m >= 12 && pool::parallel() {
        // Many rows: each thread takes half of them.
        let mid = m / 2;
        let (a1, a2) = a.split_at(Axis(0), mid);
        // SAFETY: row `mid` of `c` is inside it.
        let c2 = Out(unsafe { c.0.offset(mid as isize * ldc) });
        pool::join(
            // SAFETY: each half writes its own rows.
            || unsafe { avx512::run(a1, b, c, ldc) },
            move || unsafe { avx512::run(a2, b, c2, ldc) },
        );
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { avx512::run(a, b, c, ldc) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use ndarray::ArrayView2;

    use super::{Lhs, MAX_STREAMED_RHS, Out};

    /// Rows of the register block.
    const ROWS: usize = 6;
    /// Vectors (of 16 floats) per row of the register block.
    const VECS: usize = 4;

    /// True when this CPU has AVX-512.
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// True when `b` suits the kernel (on a CPU with AVX-512): unit column
    /// stride, small enough to stay in cache.
    pub fn usable(b: &ArrayView2<'_, f32>) -> bool {
        (b.ncols() == 1 || b.strides()[1] == 1) && b.len().saturating_mul(4) <= MAX_STREAMED_RHS
    }

    /// `c = a @ b`.
    ///
    /// # Safety
    /// As [`super::streamed`].
    pub unsafe fn run(a: Lhs<'_>, b: ArrayView2<'_, f32>, c: Out, ldc: isize) {
        let (m, k) = a.dim();
        let n = b.ncols();
        if m == 0 || n == 0 {
            return;
        }
        let (a, rsa, csa) = a.raw();
        let p = Operands {
            k,
            a,
            rsa,
            csa,
            b: b.as_ptr(),
            ldb: b.strides()[0],
            c: c.0,
            ldc,
        };
        // SAFETY: the caller checked the CPU feature; the pointers and strides
        // come from live views of the stated shapes (and the caller's
        // output), and the kernel touches only elements inside them (the
        // last column block is masked).
        unsafe { product(&p, m, n) }
    }

    /// Raw operands of one product: `a` is `m × k` with strides `rsa`,
    /// `csa` (possibly unaligned, see [`Lhs`]); `b` is `k × n` with row stride `ldb`; `c` is `m × n` with row
    /// stride `ldc`.
    struct Operands {
        k: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        ldb: isize,
        c: *mut f32,
        ldc: isize,
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn product(p: &Operands, m: usize, n: usize) {
        let mut j = 0;
        while j < n {
            let cols = (n - j).min(16 * VECS);
            let vecs = cols.div_ceil(16);
            let rem = cols - (vecs - 1) * 16;
            let tail: __mmask16 = if rem == 16 { 0xffff } else { (1u16 << rem) - 1 };
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(ROWS);
                // SAFETY: rows i..i+rows and columns j..j+cols are inside
                // the operands.
                unsafe {
                    match vecs {
                        4 => rows_block::<4>(p, i, rows, j, tail),
                        3 => rows_block::<3>(p, i, rows, j, tail),
                        2 => rows_block::<2>(p, i, rows, j, tail),
                        _ => rows_block::<1>(p, i, rows, j, tail),
                    }
                }
                i += rows;
            }
            j += cols;
        }
    }

    /// One register block of `rows` (1 to [`ROWS`]) rows: the kernel's rows
    /// are streamed once per block, also for the last, shorter one.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_block<const V: usize>(
        p: &Operands,
        i: usize,
        rows: usize,
        j: usize,
        tail: __mmask16,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match rows {
                6 => block::<6, V>(p, i, j, tail),
                5 => block::<5, V>(p, i, j, tail),
                4 => block::<4, V>(p, i, j, tail),
                3 => block::<3, V>(p, i, j, tail),
                2 => block::<2, V>(p, i, j, tail),
                _ => block::<1, V>(p, i, j, tail),
            }
        }
    }

    /// Rows `i..i+R`, columns `j..j+16·V` (the last vector masked by
    /// `tail`) of `c = a @ b`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const R: usize, const V: usize>(
        p: &Operands,
        i: usize,
        j: usize,
        tail: __mmask16,
    ) {
        let mask = |v: usize| if v + 1 == V { tail } else { 0xffff };
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        // SAFETY (whole body): element (r, q) of `a` is at
        // a + r·rsa + q·csa, row q of `b` at b + q·ldb, row r of `c` at
        // c + r·ldc; all indices stay inside the operands, and masked
        // loads/stores touch only the columns below `n`.
        unsafe {
            let a0 = p.a.offset(i as isize * p.rsa);
            let b0 = p.b.add(j);
            for q in 0..p.k {
                let brow = b0.offset(q as isize * p.ldb);
                let mut bv = [_mm512_setzero_ps(); V];
                for (v, slot) in bv.iter_mut().enumerate() {
                    *slot = _mm512_maskz_loadu_ps(mask(v), brow.add(16 * v));
                }
                let acol = a0.offset(q as isize * p.csa);
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(acol.offset(r as isize * p.rsa).read_unaligned());
                    for (slot, b) in row.iter_mut().zip(bv) {
                        *slot = _mm512_fmadd_ps(av, b, *slot);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                let crow = p.c.offset((i + r) as isize * p.ldc).add(j);
                for (v, value) in row.iter().enumerate() {
                    _mm512_mask_storeu_ps(crow.add(16 * v), mask(v), *value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    /// The product in f64, and the sums of |terms| (the scale of rounding).
    fn reference(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> (Array2<f32>, Array2<f32>) {
        let (m, k) = a.dim();
        let terms =
            |i: usize, j: usize| (0..k).map(move |q| f64::from(a[[i, q]]) * f64::from(b[[q, j]]));
        (
            Array2::from_shape_fn((m, b.ncols()), |(i, j)| terms(i, j).sum::<f64>() as f32),
            Array2::from_shape_fn((m, b.ncols()), |(i, j)| {
                terms(i, j).map(f64::abs).sum::<f64>() as f32
            }),
        )
    }

    /// Largest error relative to max(1, Σ|terms|).
    fn error(c: &Array2<f32>, (r, scale): &(Array2<f32>, Array2<f32>)) -> f32 {
        c.iter()
            .zip(r)
            .zip(scale)
            .fold(0f32, |e, ((c, r), s)| e.max((c - r).abs() / s.max(1.0)))
    }

    fn filled(shape: (usize, usize), seed: usize) -> Array2<f32> {
        Array2::from_shape_fn(shape, |(i, j)| {
            ((i * 31 + j * 17 + seed * 7) % 23) as f32 / 11.0 - 1.0
        })
    }

    #[test]
    fn products_match_a_reference_for_all_edge_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 7),
            (6, 8, 16),
            (7, 9, 17),
            (13, 5, 64),
            (32, 784, 64),
            (32, 64, 32),
            (32, 32, 10),
            (3, 7, 130),
            (784, 32, 64),
            (20, 0, 5),
            (0, 4, 5),
        ] {
            // The rounding bound of a length-k dot product.
            let tol = k.max(1) as f32 * f32::EPSILON;
            let a = filled((m, k), 1);
            let b = filled((k, n), 2);
            let check = |a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, what: &str| {
                let err = error(&matmul(a, b), &reference(a, b));
                assert!(err <= tol, "{m}x{k}x{n}{what}: max error {err}");
            };
            check(a.view(), b.view(), "");
            // Transposed / strided left operand, as the backward pass uses.
            let at = filled((k, m), 3);
            check(at.t(), b.view(), " (transposed a)");
            // A column-major right operand is copied or takes the general
            // path.
            let bf = Array2::from_shape_vec((k, n).f(), b.t().iter().copied().collect()).unwrap();
            check(a.view(), bf.view(), " (f-order b)");
        }
    }

    /// `a`'s values as little-endian bytes after `shift` bytes of padding.
    fn shifted_bytes(a: &Array2<f32>, shift: usize) -> Vec<u8> {
        let mut bytes = vec![0xa5u8; shift];
        bytes.extend(a.iter().flat_map(|v| v.to_le_bytes()));
        bytes
    }

    #[test]
    fn values_in_bytes_at_any_alignment_multiply_exactly_like_the_array() {
        // A training batch (split along the inner axis), a transposed batch
        // (the kernel gradient, split by rows), small odd shapes, and a
        // right-hand side too large for the streamed kernel.
        for &(m, k, n) in &[(32, 784, 64), (7, 9, 17), (1, 1, 1), (3, 600, 600)] {
            let a = filled((m, k), 6);
            let b = filled((k, n), 7);
            let at = a.t().as_standard_layout().to_owned();
            for shift in 0..4 {
                let bytes = shifted_bytes(&a, shift);
                let lhs = Lhs::from_le_bytes(&bytes[shift..], m, k).unwrap();
                assert_eq!(lhs.dim(), (m, k));
                assert_eq!(lhs.to_array(), a);
                assert_eq!(matmul(lhs, b.view()), matmul(a.view(), b.view()));
                // The transposed layout, as the kernel gradient reads a batch.
                let bytes = shifted_bytes(&at, shift);
                let lhs = Lhs::from_le_bytes(&bytes[shift..], k, m).unwrap().t();
                assert_eq!(matmul(lhs, b.view()), matmul(at.t(), b.view()));
                let (top, bottom) = lhs.split_at(Axis(0), m / 2);
                assert_eq!(top.to_array(), a.slice(ndarray::s![..m / 2, ..]));
                assert_eq!(bottom.to_array(), a.slice(ndarray::s![m / 2.., ..]));
                let (left, right) = lhs.split_at(Axis(1), k / 2);
                assert_eq!(left.to_array(), a.slice(ndarray::s![.., ..k / 2]));
                assert_eq!(right.to_array(), a.slice(ndarray::s![.., k / 2..]));
            }
        }
        assert!(Lhs::from_le_bytes(&[0u8; 12], 2, 2).is_none());
        assert!(Lhs::from_le_bytes(&[0u8; 16], usize::MAX, 2).is_none());
    }

    #[test]
    fn products_into_column_blocks_of_a_wider_output() {
        let a = filled((40, 30), 4);
        let b = filled((30, 50), 5);
        let mut c = Array2::from_elem((40, 80), MaybeUninit::new(9.0f32));
        matmul_into_uninit(a.view(), b.view(), c.slice_mut(ndarray::s![.., 10..60]));
        // SAFETY: every value was initialized (9.0) or written.
        let c = unsafe { c.assume_init() };
        let r = reference(a.view(), b.view());
        let err = error(&c.slice(ndarray::s![.., 10..60]).to_owned(), &r);
        assert!(err <= 1e-6, "{err}");
        assert!(c.slice(ndarray::s![.., ..10]).iter().all(|&v| v == 9.0));
        assert!(c.slice(ndarray::s![.., 60..]).iter().all(|&v| v == 9.0));
    }
}
