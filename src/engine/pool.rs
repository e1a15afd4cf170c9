//! A second thread that is always ready: `join(a, b)` runs `b` on it while
//! the caller runs `a`.
//!
//! A training step at batch size 32 is a few dozen microseconds of work, so
//! splitting it over both cores pays only if handing work over costs far
//! less than that. A general pool puts idle workers to sleep and wakes them
//! per task (`rayon::join` per product made an epoch slower, not faster);
//! this worker instead spins for a while after each task, so the next one,
//! microseconds later, starts at once. After [`SPIN`] idle rounds it parks
//! and costs nothing.
//!
//! The worker runs each closure in the caller's floating-point mode (see
//! [`super::fpmode`]). One caller uses the worker at a time; a concurrent
//! caller (for example from inside a rayon task) simply runs both closures
//! itself.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::Thread;

use super::fpmode::Mode;

/// Idle spin rounds before the worker parks (each a `spin_loop` hint, some
/// tens of nanoseconds: well over the gap between two training steps).
const SPIN: u32 = 1 << 16;

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const DONE: u8 = 2;
const PANICKED: u8 = 3;
/// The worker took the posted job and runs it.
const RUNNING: u8 = 4;

/// Idle spin rounds between two `yield_now` calls: a spinning worker gives
/// its core away regularly, so on a busy machine it does not starve the
/// threads that have work (its own caller among them).
const YIELD_EVERY: u32 = 256;

type Job = *mut (dyn FnMut() + Send);

struct Worker {
    /// Held by the caller that owns the worker for one `join`.
    busy: AtomicBool,
    state: AtomicU8,
    sleeping: AtomicBool,
    /// The job and the caller's floating-point mode, which the job runs in.
    job: UnsafeCell<Option<(Job, Mode)>>,
    thread: Thread,
}

// SAFETY: `job` is written only by the caller holding `busy` before it
// publishes `POSTED` (Release) and read only by the worker after it sees
// `POSTED` (Acquire); the caller waits for `DONE` before the closure it points
// to goes out of scope.
unsafe impl Sync for Worker {}
unsafe impl Send for Worker {}

fn worker() -> Option<&'static Worker> {
    static WORKER: OnceLock<Option<&'static Worker>> = OnceLock::new();
    *WORKER.get_or_init(|| {
        // One thread when the machine has one core or the user asked for
        // one (`RAYON_NUM_THREADS=1` limits every thread kerasrs starts).
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 || rayon::current_num_threads() < 2 {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel::<&'static Worker>();
        let handle = std::thread::Builder::new()
            .name("kerasrs-worker".into())
            .spawn(move || {
                let Ok(w) = rx.recv() else { return };
                run_worker(w)
            })
            .ok()?;
        let w: &'static Worker = Box::leak(Box::new(Worker {
            busy: AtomicBool::new(false),
            state: AtomicU8::new(IDLE),
            sleeping: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            thread: handle.thread().clone(),
        }));
        tx.send(w).ok()?;
        Some(w)
    })
}

fn run_worker(w: &'static Worker) {
    loop {
        let mut spins = 0u32;
        loop {
            // Take the job only by winning it from POSTED: the caller may
            // have reclaimed it (see `Wait::finish`).
            if w.state.load(Ordering::Acquire) == POSTED
                && w.state
                    .compare_exchange(POSTED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                break;
            }
            if spins < SPIN {
                spins += 1;
                if spins.is_multiple_of(YIELD_EVERY) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            } else {
                w.sleeping.store(true, Ordering::SeqCst);
                if w.state.load(Ordering::SeqCst) != POSTED {
                    std::thread::park();
                }
                w.sleeping.store(false, Ordering::SeqCst);
                spins = 0;
            }
        }
        // SAFETY: see `Worker`; the caller keeps the closure alive until it
        // sees DONE or PANICKED, and does not touch the job once the worker
        // won it (RUNNING).
        let job = unsafe { (*w.job.get()).take() };
        let outcome = match job {
            Some((f, mode)) => {
                mode.apply();
                catch_unwind(AssertUnwindSafe(|| unsafe { (*f)() }))
            }
            None => Ok(()),
        };
        let end = if outcome.is_ok() { DONE } else { PANICKED };
        w.state.store(end, Ordering::Release);
    }
}

/// Waits for the worker's half of a `join`, also when the caller's own half
/// panics (the worker's closure borrows the caller's stack).
struct Wait<'a>(&'a Worker);

impl Wait<'_> {
    /// Takes the posted job back if the worker has not started it (on a
    /// busy machine the worker may not be running at all: the caller then
    /// does the work instead of waiting for it to be scheduled).
    fn reclaim(&self) -> Option<(Job, Mode)> {
        let w = self.0;
        w.state
            .compare_exchange(POSTED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // SAFETY: the worker never won the job (it only reads it after
        // moving the state from POSTED to RUNNING), so the cell is ours.
        unsafe { (*w.job.get()).take() }
    }

    /// Waits for (or runs) the worker's half; true when it panicked.
    fn finish(&self) -> bool {
        if let Some((f, _)) = self.reclaim() {
            // SAFETY: `f` points to the caller's closure, alive in `join`.
            return catch_unwind(AssertUnwindSafe(|| unsafe { (*f)() })).is_err();
        }
        let mut spins = 0u32;
        loop {
            match self.0.state.load(Ordering::Acquire) {
                DONE | PANICKED => break,
                _ => {
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(YIELD_EVERY) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        let panicked = self.0.state.load(Ordering::Acquire) == PANICKED;
        self.0.state.store(IDLE, Ordering::Release);
        panicked
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        // Unwinding from the caller's half: a job the worker has not
        // started is dropped, not run; one it runs is waited for (it
        // borrows this frame).
        if self.reclaim().is_none() && self.0.state.load(Ordering::Acquire) != IDLE {
            self.finish();
        }
        self.0.busy.store(false, Ordering::Release);
    }
}

/// True when a second thread is available to [`join`].
pub fn parallel() -> bool {
    worker().is_some()
}

/// Run `a` on this thread and `b` on the worker, returning both results
/// when both are done. Without a worker, or while another caller has it,
/// runs `a` then `b` here. A panic in either closure is propagated after
/// both ended.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    let Some(w) = worker() else {
        return (a(), b());
    };
    if w.busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return (a(), b());
    }
    let mut b = Some(b);
    let mut rb = None;
    let mut call = || {
        if let Some(b) = b.take() {
            rb = Some(b());
        }
    };
    let job: *mut (dyn FnMut() + Send + '_) = &mut call;
    // SAFETY: the lifetime is erased only for the hand-over; `Wait` makes
    // sure the worker is done with `call` before this frame ends.
    let job: Job = unsafe { std::mem::transmute(job) };
    unsafe { *w.job.get() = Some((job, Mode::current())) };
    let wait = Wait(w);
    w.state.store(POSTED, Ordering::SeqCst);
    if w.sleeping.load(Ordering::SeqCst) {
        w.thread.unpark();
    }
    let ra = a();
    if wait.finish() {
        drop(wait);
        resume_unwind(Box::new("a task on the worker thread panicked"));
    }
    drop(wait);
    (ra, rb.expect("the worker ran its closure"))
}

/// `f` over samples `0..n` in two halves, on both threads when `split`
/// (and there are two samples): `out` holds `per` values per sample and is
/// cut between the halves; `f` gets its range of samples and their part of
/// `out`. Returns both halves' results (the second is for an empty range
/// when not split).
pub fn halves<T: Send, R: Send>(
    n: usize,
    per: usize,
    out: &mut [T],
    split: bool,
    f: &(dyn Fn(std::ops::Range<usize>, &mut [T]) -> R + Sync),
) -> (R, R) {
    let h = if split && n >= 2 { n / 2 } else { n };
    let (o1, o2) = out.split_at_mut((h * per).min(out.len()));
    join_if(split && h > 0 && h < n, || f(0..h, o1), || f(h..n, o2))
}

/// [`join`] when `split` is true; otherwise `a` then `b` on this thread (for
/// work split into halves only when it is large enough to pay for the
/// hand-over).
pub fn join_if<A, B, RA, RB>(split: bool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    if split { join(a, b) } else { (a(), b()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_see_their_borrows() {
        for round in 0..2000usize {
            let mut left = vec![0usize; 64];
            let mut right = vec![0usize; 64];
            join(
                || left.iter_mut().for_each(|v| *v = round),
                || right.iter_mut().for_each(|v| *v = round + 1),
            );
            assert!(left.iter().all(|&v| v == round));
            assert!(right.iter().all(|&v| v == round + 1));
        }
    }

    #[test]
    fn a_parked_worker_wakes_up() {
        let mut x = 0;
        join(|| {}, || x = 1);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut y = 0;
        join(|| {}, || y = 2);
        assert_eq!((x, y), (1, 2));
    }

    #[test]
    fn concurrent_callers_fall_back_to_running_both() {
        use std::sync::atomic::AtomicUsize;
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        join(
                            || {
                                count.fetch_add(1, Ordering::Relaxed);
                            },
                            || {
                                count.fetch_add(1, Ordering::Relaxed);
                            },
                        );
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 4000);
    }

    #[test]
    fn a_panic_on_the_worker_reaches_the_caller_and_the_worker_survives() {
        if !parallel() {
            return;
        }
        let r = catch_unwind(|| join(|| {}, || panic!("boom")));
        assert!(r.is_err());
        let mut x = 0;
        join(|| {}, || x = 7);
        assert_eq!(x, 7);
    }
}
