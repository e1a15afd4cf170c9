//! The floating-point mode Keras computes in: denormals flushed to zero.
//!
//! Keras on the JAX backend runs XLA's CPU code, and XLA's CPU client
//! (`xla/pjrt/cpu/cpu_client.cc`) wraps every execution in
//! `tsl::port::ScopedFlushDenormal`: results that would be denormal become
//! zero (FTZ) and denormal inputs count as zero (DAZ), following
//! TensorFlow's convention. kerasrs does the same while it trains, evaluates
//! and predicts, which matches Keras where values get that small (Adam's
//! second moments decay into the denormal range for weights whose
//! gradients vanish) and keeps the CPU off its slow path for denormal
//! arithmetic.

/// The calling thread's floating-point control bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(u64);

#[cfg(target_arch = "x86_64")]
mod arch {
    /// MXCSR: flush to zero (bit 15) and denormals are zero (bit 6).
    pub const FLUSH: u64 = 0x8040;

    /// The control bits of MXCSR (without the sticky exception flags).
    pub fn get() -> u64 {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR to the given address.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        u64::from(csr & !0x3f)
    }

    pub fn set(bits: u64) {
        let csr = bits as u32;
        // SAFETY: `ldmxcsr` loads MXCSR from the given address; only bits
        // read from MXCSR itself (plus FTZ/DAZ) are ever written.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// FPCR: flush to zero (bit 24), which on AArch64 covers inputs too.
    pub const FLUSH: u64 = 1 << 24;

    pub fn get() -> u64 {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        fpcr
    }

    pub fn set(bits: u64) {
        // SAFETY: only values read from FPCR (plus FZ) are written back.
        unsafe { std::arch::asm!("msr fpcr, {}", in(reg) bits, options(nomem, nostack)) };
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub const FLUSH: u64 = 0;
    pub fn get() -> u64 {
        0
    }
    pub fn set(_: u64) {}
}

impl Mode {
    /// The calling thread's current mode.
    pub fn current() -> Mode {
        Mode(arch::get())
    }

    /// Make `self` the calling thread's mode.
    pub fn apply(self) {
        if arch::get() != self.0 {
            arch::set(self.0);
        }
    }

    /// True when denormals are flushed in this mode.
    pub fn flushes(self) -> bool {
        arch::FLUSH != 0 && self.0 & arch::FLUSH == arch::FLUSH
    }
}

/// While alive, the calling thread computes as Keras does (denormals
/// flushed); dropping it restores the previous mode.
#[must_use = "the mode is restored when the guard is dropped"]
pub struct FlushDenormals {
    saved: Mode,
}

impl FlushDenormals {
    /// Flush denormals on this thread until the guard is dropped.
    pub fn enter() -> FlushDenormals {
        let saved = Mode::current();
        Mode(saved.0 | arch::FLUSH).apply();
        FlushDenormals { saved }
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        self.saved.apply();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denormals_flush_inside_the_guard_only() {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let half = std::hint::black_box(0.5f32);
        let before = Mode::current();
        assert!(tiny * half > 0.0, "denormal results outside the guard");
        {
            let _guard = FlushDenormals::enter();
            if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
                assert!(Mode::current().flushes());
                assert_eq!(std::hint::black_box(tiny) * half, 0.0);
            }
        }
        assert_eq!(Mode::current(), before);
        assert!(std::hint::black_box(tiny) * half > 0.0);
    }
}
