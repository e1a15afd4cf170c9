//! Ctrl-C, SIGTERM and SIGHUP (the `ctrlc` crate's `termination` feature
//! handles all three alike): during training the first signal stops after
//! the current batch (the command then fails with one `error:` line and
//! writes nothing); any other signal, or one outside training (while an
//! output is being written), removes in-flight temporary files and exits
//! with 130.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::train::{Logs, Progress};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static TRAINING: AtomicBool = AtomicBool::new(false);

/// Install the handler (once, from `main`).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if TRAINING.load(Ordering::SeqCst) && !INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupt: stopping after this batch (Ctrl-C again to abort now)");
            return;
        }
        crate::archive::atomic::remove_pending_temp_files();
        std::process::exit(130);
    });
}

/// Marks the time a training loop runs and can stop cleanly.
pub struct TrainingGuard;

impl TrainingGuard {
    /// Enter training.
    pub fn enter() -> Self {
        TRAINING.store(true, Ordering::SeqCst);
        TrainingGuard
    }
}

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        TRAINING.store(false, Ordering::SeqCst);
    }
}

/// Forwards to another [`Progress`] and reports a pending Ctrl-C.
pub struct Interruptible<'a>(pub &'a mut dyn Progress);

impl Progress for Interruptible<'_> {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.0.epoch_start(epoch, epochs, steps);
    }
    fn step(&mut self, step: usize, logs: &Logs) {
        self.0.step(step, logs);
    }
    fn epoch_end(&mut self, epoch: usize, logs: &Logs) {
        self.0.epoch_end(epoch, logs);
    }
    fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}
