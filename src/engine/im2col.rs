//! Convolution kernels: the window geometry of a convolution, `im2col` /
//! `col2im` (which turn a convolution into one matrix product per sample
//! through [`super::gemm`]) and the direct loops of depthwise convolutions.
//!
//! Every tensor here is one sample in channels-last order, `[positions,
//! channels]` with positions in C order over up to three spatial axes (1-D
//! and 2-D convolutions use leading axes of size 1). A convolution's window
//! over an axis reads input position `o·stride + k·dilation − pad` for
//! output position `o` and kernel tap `k`; taps that fall outside the input
//! read zero (the padding). This is `lax.conv_general_dilated` with explicit
//! padding, which Keras's JAX backend calls (`keras/src/backend/jax/nn.py`,
//! `conv`, `depthwise_conv`, `conv_transpose`); how Keras's `padding`
//! options turn into `pad` is worked out by the layers
//! (`model::layers::conv`).
//!
//! A transposed convolution is the adjoint of such a convolution: its output
//! space is the convolution's input space, so it runs `col2im` where a
//! convolution runs `im2col`, and vice versa.

/// One spatial axis of a convolution window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Length of the axis the window reads (the convolution's input).
    pub input: usize,
    /// Number of window positions (the convolution's output).
    pub output: usize,
    /// Kernel taps.
    pub kernel: usize,
    /// Step between window positions.
    pub stride: usize,
    /// Step between taps.
    pub dilation: usize,
    /// Zeros before the first input position.
    pub pad: usize,
}

impl Span {
    /// An axis of length 1 with a one-tap kernel (fills 1-D and 2-D
    /// geometries up to three axes).
    pub const UNIT: Span = Span {
        input: 1,
        output: 1,
        kernel: 1,
        stride: 1,
        dilation: 1,
        pad: 0,
    };

    /// The input position tap `k` of window `o` reads, if inside.
    #[inline]
    fn at(&self, o: usize, k: usize) -> Option<usize> {
        let p = (o * self.stride + k * self.dilation).checked_sub(self.pad)?;
        (p < self.input).then_some(p)
    }

    /// `at(o, k)` for every window and tap (`usize::MAX` outside), window
    /// by window.
    fn table(&self) -> Vec<usize> {
        let mut t = Vec::with_capacity(self.output * self.kernel);
        for o in 0..self.output {
            for k in 0..self.kernel {
                t.push(self.at(o, k).unwrap_or(usize::MAX));
            }
        }
        t
    }
}

/// The geometry of a convolution over three spatial axes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// The axes, outermost first.
    pub axes: [Span; 3],
    /// Per axis, [`Span::table`].
    tables: [Vec<usize>; 3],
}

impl Geometry {
    /// The geometry of these axes (at most three; missing leading axes are
    /// units). Sizes must have been checked by the caller (products of
    /// positions fit in memory).
    pub fn new(spans: &[Span]) -> Self {
        let mut axes = [Span::UNIT; 3];
        let skip = 3 - spans.len().min(3);
        for (a, s) in axes[skip..].iter_mut().zip(spans) {
            *a = *s;
        }
        let tables = [axes[0].table(), axes[1].table(), axes[2].table()];
        Geometry { axes, tables }
    }

    /// Positions of the input.
    pub fn input_positions(&self) -> usize {
        self.axes.iter().map(|a| a.input).product()
    }

    /// Positions of the output (windows).
    pub fn output_positions(&self) -> usize {
        self.axes.iter().map(|a| a.output).product()
    }

    /// Taps of the kernel.
    pub fn taps(&self) -> usize {
        self.axes.iter().map(|a| a.kernel).product()
    }

    /// True when every window reads exactly one input position, the same
    /// one (a 1×1 kernel, stride 1, no padding): the input is its own
    /// column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.axes
            .iter()
            .all(|a| a.kernel == 1 && a.stride == 1 && a.pad == 0 && a.input == a.output)
    }

    /// Visit every (window, tap, input position or `None`) in order:
    /// windows in C order, taps in C order within each window.
    #[inline]
    fn for_each(&self, mut f: impl FnMut(usize, usize, Option<usize>)) {
        let [a0, a1, a2] = &self.axes;
        let [t0, t1, t2] = &self.tables;
        let mut window = 0;
        for o0 in 0..a0.output {
            for o1 in 0..a1.output {
                for o2 in 0..a2.output {
                    let mut tap = 0;
                    for k0 in 0..a0.kernel {
                        let i0 = t0[o0 * a0.kernel + k0];
                        for k1 in 0..a1.kernel {
                            let i1 = t1[o1 * a1.kernel + k1];
                            for k2 in 0..a2.kernel {
                                let i2 = t2[o2 * a2.kernel + k2];
                                let at = (i0 != usize::MAX && i1 != usize::MAX && i2 != usize::MAX)
                                    .then(|| (i0 * a1.input + i1) * a2.input + i2);
                                f(window, tap, at);
                                tap += 1;
                            }
                        }
                    }
                    window += 1;
                }
            }
        }
    }

    /// Columns of one sample: `x` is `[input positions, channels]`; for
    /// channels `c0..c0 + cg`, `cols` (`[windows, taps·cg]`, row `w`
    /// holding tap after tap) gets what each window reads, zero outside.
    pub fn im2col(&self, x: &[f32], channels: usize, c0: usize, cg: usize, cols: &mut [f32]) {
        let row = self.taps() * cg;
        debug_assert_eq!(x.len(), self.input_positions() * channels);
        debug_assert_eq!(cols.len(), self.output_positions() * row);
        self.for_each(|w, t, at| {
            let dst = &mut cols[w * row + t * cg..w * row + (t + 1) * cg];
            match at {
                Some(p) => dst.copy_from_slice(&x[p * channels + c0..p * channels + c0 + cg]),
                None => dst.fill(0.0),
            }
        });
    }

    /// The adjoint of [`Geometry::im2col`]: adds each window's columns
    /// (`cols`, `[windows, taps·cg]`) into the input positions they were
    /// read from (`dx`, `[input positions, channels]`, channels
    /// `c0..c0 + cg`).
    pub fn col2im(&self, cols: &[f32], channels: usize, c0: usize, cg: usize, dx: &mut [f32]) {
        let row = self.taps() * cg;
        debug_assert_eq!(dx.len(), self.input_positions() * channels);
        debug_assert_eq!(cols.len(), self.output_positions() * row);
        self.for_each(|w, t, at| {
            if let Some(p) = at {
                let src = &cols[w * row + t * cg..w * row + (t + 1) * cg];
                let dst = &mut dx[p * channels + c0..p * channels + c0 + cg];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
            }
        });
    }

    /// Depthwise convolution of one sample: `x` is `[input positions, c]`,
    /// `kernel` `[taps, c, m]`, `y` (`[windows, c·m]`, overwritten) gets
    /// `y[w, c·m + j] = Σ_taps x[at, c] · kernel[t, c, j]`.
    pub fn depthwise(&self, x: &[f32], kernel: &[f32], c: usize, m: usize, y: &mut [f32]) {
        let cm = c * m;
        y.fill(0.0);
        self.for_each(|w, t, at| {
            let Some(p) = at else { return };
            let xs = &x[p * c..(p + 1) * c];
            let ks = &kernel[t * cm..(t + 1) * cm];
            let ys = &mut y[w * cm..(w + 1) * cm];
            if m == 1 {
                for ((o, &a), &k) in ys.iter_mut().zip(xs).zip(ks) {
                    *o = a.mul_add(k, *o);
                }
            } else {
                for (ch, &a) in xs.iter().enumerate() {
                    for j in 0..m {
                        let i = ch * m + j;
                        ys[i] = a.mul_add(ks[i], ys[i]);
                    }
                }
            }
        });
    }

    /// The gradients of [`Geometry::depthwise`] for one sample: adds
    /// `∂L/∂x` into `dx` (`[input positions, c]`) when given and `∂L/∂kernel`
    /// into `dk` (`[taps, c, m]`), from `dy` (`[windows, c·m]`); `(c, m)` are
    /// the channels and the depth multiplier.
    pub fn depthwise_backward(
        &self,
        x: &[f32],
        kernel: &[f32],
        dy: &[f32],
        (c, m): (usize, usize),
        mut dx: Option<&mut [f32]>,
        dk: &mut [f32],
    ) {
        let cm = c * m;
        self.for_each(|w, t, at| {
            let Some(p) = at else { return };
            let g = &dy[w * cm..(w + 1) * cm];
            let xs = &x[p * c..(p + 1) * c];
            let dks = &mut dk[t * cm..(t + 1) * cm];
            if m == 1 {
                for ((d, &a), &gv) in dks.iter_mut().zip(xs).zip(g) {
                    *d = a.mul_add(gv, *d);
                }
            } else {
                for (ch, &a) in xs.iter().enumerate() {
                    for j in 0..m {
                        let i = ch * m + j;
                        dks[i] = a.mul_add(g[i], dks[i]);
                    }
                }
            }
            if let Some(dx) = dx.as_deref_mut() {
                let ks = &kernel[t * cm..(t + 1) * cm];
                let dxs = &mut dx[p * c..(p + 1) * c];
                if m == 1 {
                    for ((d, &k), &gv) in dxs.iter_mut().zip(ks).zip(g) {
                        *d = k.mul_add(gv, *d);
                    }
                } else {
                    for (ch, d) in dxs.iter_mut().enumerate() {
                        for j in 0..m {
                            let i = ch * m + j;
                            *d = ks[i].mul_add(g[i], *d);
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(input: usize, kernel: usize, stride: usize, dilation: usize, pad: usize) -> Span {
        let eff = (kernel - 1) * dilation + 1;
        Span {
            input,
            output: (input + 2 * pad - eff) / stride + 1,
            kernel,
            stride,
            dilation,
            pad,
        }
    }

    #[test]
    fn im2col_reads_windows_with_zero_padding() {
        // 1-D: input 0..5, kernel 3, pad 1: windows [_,0,1], [0,1,2], ...
        let g = Geometry::new(&[span(5, 3, 1, 1, 1)]);
        assert_eq!(g.output_positions(), 5);
        let x: Vec<f32> = (0..5).map(|v| v as f32).collect();
        let mut cols = vec![f32::NAN; 15];
        g.im2col(&x, 1, 0, 1, &mut cols);
        assert_eq!(
            cols,
            [0., 0., 1., 0., 1., 2., 1., 2., 3., 2., 3., 4., 3., 4., 0.]
        );
        // Stride 2, dilation 1, no pad.
        let g = Geometry::new(&[span(5, 2, 2, 1, 0)]);
        let mut cols = vec![0.0; 4];
        g.im2col(&x, 1, 0, 1, &mut cols);
        assert_eq!(cols, [0., 1., 2., 3.]);
        // Dilation 2.
        let g = Geometry::new(&[span(5, 2, 1, 2, 0)]);
        let mut cols = vec![0.0; 6];
        g.im2col(&x, 1, 0, 1, &mut cols);
        assert_eq!(cols, [0., 2., 1., 3., 2., 4.]);
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for a 2-D geometry with padding,
        // strides and a channel slice.
        let g = Geometry::new(&[span(5, 3, 2, 1, 1), span(4, 2, 1, 2, 1)]);
        let (ch, c0, cg) = (3, 1, 2);
        let x: Vec<f32> = (0..g.input_positions() * ch)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let n = g.output_positions() * g.taps() * cg;
        let c: Vec<f32> = (0..n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        let mut cols = vec![0.0; n];
        g.im2col(&x, ch, c0, cg, &mut cols);
        let mut back = vec![0.0; x.len()];
        g.col2im(&c, ch, c0, cg, &mut back);
        let lhs: f32 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
        // Channels outside the slice get nothing.
        assert!(back.chunks(ch).all(|p| p[0] == 0.0));
    }

    #[test]
    fn depthwise_backward_is_the_adjoint_of_depthwise() {
        let g = Geometry::new(&[span(4, 3, 1, 1, 1), span(3, 2, 1, 1, 0)]);
        let (c, m) = (2, 3);
        let x: Vec<f32> = (0..g.input_positions() * c)
            .map(|i| ((i * 3) % 7) as f32 - 3.0)
            .collect();
        let k: Vec<f32> = (0..g.taps() * c * m)
            .map(|i| ((i * 5) % 9) as f32 - 4.0)
            .collect();
        let dy: Vec<f32> = (0..g.output_positions() * c * m)
            .map(|i| ((i * 2) % 5) as f32 - 2.0)
            .collect();
        let mut y = vec![0.0; dy.len()];
        g.depthwise(&x, &k, c, m, &mut y);
        let mut dx = vec![0.0; x.len()];
        let mut dk = vec![0.0; k.len()];
        g.depthwise_backward(&x, &k, &dy, (c, m), Some(&mut dx), &mut dk);
        // y is linear in x and in k: <y, dy> = <x, dx> = <k, dk>.
        let ydy: f32 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
        let xdx: f32 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        let kdk: f32 = k.iter().zip(&dk).map(|(a, b)| a * b).sum();
        assert_eq!(ydy, xdx);
        assert_eq!(ydy, kdk);
    }
}
