//! Training output in the layout of Keras 3's progress bar
//! (`keras/src/utils/progbar.py`, driven by
//! `keras/src/callbacks/progbar_logger.py`):
//!
//! ```text
//! Epoch 1/5
//! 45/45 ━━━━━━━━━━━━━━━━━━━━ 1s 5ms/step - accuracy: 0.9527 - loss: 0.4678 - val_accuracy: 0.8833 - val_loss: 0.6061
//! ```
//!
//! `--verbose 1` (the default) redraws that line after every batch when
//! standard output is a terminal (with the ETA in place of the elapsed time
//! while the epoch runs, cut to the terminal's width) and otherwise prints it
//! once per epoch, without escape codes; `--verbose 2` prints Keras's
//! one-line form `45/45 - 1s - 5ms/step - ...`; `--verbose 0` prints
//! nothing. The log goes to standard output; notes and errors go to
//! standard error.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::train::{Logs, Progress};

/// Width of the bar in characters (Keras's `Progbar(width=20)`).
const BAR_WIDTH: usize = 20;

/// Keras's `verbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Verbosity {
    /// Silent.
    #[value(name = "0")]
    Silent,
    /// A progress bar (one line per epoch when not on a terminal).
    #[value(name = "1")]
    Bar,
    /// One line per epoch.
    #[value(name = "2")]
    Line,
}

/// How the line is drawn: with Keras's ANSI styling (a terminal) or plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Styling {
    /// Bold counts and times, a green and a grey part of the bar.
    Ansi,
    /// No escape codes (a file, a pipe, `NO_COLOR`).
    Plain,
}

/// Where an epoch stands, in the numbers Keras's bar shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    /// Batches done.
    pub current: usize,
    /// Batches in the epoch.
    pub target: usize,
    /// Seconds since the epoch started.
    pub elapsed: f64,
    /// Seconds per batch, estimated as Keras does (without the first batch
    /// once there are more).
    pub per_step: f64,
}

/// Keras's metric value format: four decimals, or scientific notation for
/// small values (`Progbar.update`: `abs(avg) > 1e-3` with `verbose=1`,
/// `avg > 1e-3` with `verbose=2`).
fn metric_value(v: f32, verbose2: bool) -> String {
    let v = f64::from(v);
    let fixed = if verbose2 { v > 1e-3 } else { v.abs() > 1e-3 };
    if fixed || !v.is_finite() {
        format!("{v:.4}")
    } else {
        python_exp(v)
    }
}

/// Python's `f"{v:.4e}"`: a signed exponent of at least two digits.
fn python_exp(v: f64) -> String {
    let s = format!("{v:.4e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Keras's `Progbar._format_time`: ` 5ms/step`.
fn per_step(seconds: f64) -> String {
    if seconds >= 1.0 || seconds == 0.0 {
        format!(" {seconds:.0}s/step")
    } else if seconds >= 1e-3 {
        format!(" {:.0}ms/step", seconds * 1e3)
    } else {
        format!(" {:.0}us/step", seconds * 1e6)
    }
}

/// Keras's ETA format: `12s`, `3:05`, `1:02:03`.
fn eta(seconds: f64) -> String {
    let s = seconds.max(0.0);
    let whole = s.floor() as u64;
    if s > 3600.0 {
        format!(
            "{}:{:02}:{:02}",
            whole / 3600,
            (whole % 3600) / 60,
            whole % 60
        )
    } else if s > 60.0 {
        format!("{}:{:02}", whole / 60, whole % 60)
    } else {
        format!("{whole}s")
    }
}

/// The metrics in Keras's order: the training values sorted by name, then
/// the validation values sorted by name (`python_utils.pythonify_logs`
/// sorts each dict; `fit` appends the `val_` logs to the epoch's).
pub fn keras_order(logs: &Logs) -> Vec<(&str, f32)> {
    let mut train: Vec<(&str, f32)> = Vec::new();
    let mut val: Vec<(&str, f32)> = Vec::new();
    for (k, v) in logs {
        if k.starts_with("val_") {
            val.push((k, *v));
        } else {
            train.push((k, *v));
        }
    }
    train.sort_by(|a, b| a.0.cmp(b.0));
    val.sort_by(|a, b| a.0.cmp(b.0));
    train.extend(val);
    train
}

fn metrics(logs: &Logs, verbose2: bool) -> String {
    let mut out = String::new();
    for (k, v) in keras_order(logs) {
        out.push_str(" - ");
        // Metric names come from the model's compile configuration.
        out.push_str(&crate::text::sanitize(k));
        out.push_str(": ");
        out.push_str(&metric_value(v, verbose2));
    }
    out
}

fn count(current: usize, target: usize) -> String {
    let digits = target.max(1).to_string().len();
    format!("{current:>digits$}/{target}")
}

/// The `verbose=1` line: `12/45 ━━━━━━━━━━━━━━━━━━━━ 3s 5ms/step - ...`,
/// with the ETA while the epoch runs (`finished` false) and the elapsed
/// time at its end.
pub fn bar_line(t: StepTiming, logs: &Logs, finished: bool, styling: Styling) -> String {
    let done = (BAR_WIDTH * t.current.min(t.target))
        .checked_div(t.target)
        .unwrap_or(BAR_WIDTH);
    let time = if finished {
        format!("{:.0}s", t.elapsed)
    } else {
        eta(t.per_step * t.target.saturating_sub(t.current) as f64)
    };
    let (full, rest) = ("━".repeat(done), "━".repeat(BAR_WIDTH - done));
    let counted = count(t.current, t.target);
    let head = match styling {
        Styling::Plain => format!("{counted} {full}{rest} {time}"),
        Styling::Ansi => {
            let full = if done > 0 {
                format!("\x1b[32m{full}\x1b[0m")
            } else {
                String::new()
            };
            format!("\x1b[1m{counted}\x1b[0m {full}\x1b[37m{rest}\x1b[0m \x1b[1m{time}\x1b[0m")
        }
    };
    format!("{head}{}{}", per_step(t.per_step), metrics(logs, false))
}

/// The `verbose=2` line: `45/45 - 1s - 5ms/step - ...`.
pub fn epoch_line(t: StepTiming, logs: &Logs) -> String {
    format!(
        "{} - {:.0}s -{}{}",
        count(t.current, t.target),
        t.elapsed,
        per_step(t.per_step),
        metrics(logs, true)
    )
}

/// Keras's step-time estimate (`Progbar._estimate_step_duration`): the mean
/// over batches after the first once there are two or more.
#[derive(Debug, Clone, Copy)]
struct EpochClock {
    start: Instant,
    after_first: Option<Instant>,
}

impl EpochClock {
    fn new() -> Self {
        EpochClock {
            start: Instant::now(),
            after_first: None,
        }
    }

    fn timing(&mut self, current: usize, target: usize) -> StepTiming {
        let now = Instant::now();
        let secs = |d: Duration| d.as_secs_f64();
        let per_step = match (current, self.after_first) {
            (0, _) => 0.0,
            (c, Some(first)) if c > 1 => secs(now - first) / (c - 1) as f64,
            (c, _) => secs(now - self.start) / c as f64,
        };
        if current == 1 {
            self.after_first = Some(now);
        }
        StepTiming {
            current,
            target,
            elapsed: secs(now - self.start),
            per_step,
        }
    }
}

/// Where the log goes (standard output; a buffer in tests) and whether it
/// is a terminal.
pub struct Log {
    out: Box<dyn Write>,
    terminal: bool,
    styling: Styling,
}

impl Log {
    /// Standard output, redrawn in place when it is a terminal (colours
    /// unless `NO_COLOR` is set).
    pub fn stdout() -> Self {
        let terminal = console::Term::stdout().is_term();
        let color = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Log {
            out: Box::new(std::io::stdout()),
            terminal,
            styling: if color { Styling::Ansi } else { Styling::Plain },
        }
    }

    /// Any writer, treated as a file (plain lines, no redraws).
    #[cfg(test)]
    pub fn plain(out: Box<dyn Write>) -> Self {
        Log {
            out,
            terminal: false,
            styling: Styling::Plain,
        }
    }

    fn line(&mut self, text: &str) {
        // A closed pipe must not stop training; the model is still written.
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}

/// The [`Progress`] of `finetune`: Keras's `ProgbarLogger`.
pub struct KerasProgress {
    log: Log,
    verbose: Verbosity,
    epochs: usize,
    steps: usize,
    clock: EpochClock,
    bar: Option<ProgressBar>,
    latest: Logs,
}

impl KerasProgress {
    /// Progress at this verbosity written to `log`.
    pub fn new(log: Log, verbose: Verbosity) -> Self {
        KerasProgress {
            log,
            verbose,
            epochs: 0,
            steps: 0,
            clock: EpochClock::new(),
            bar: None,
            latest: Logs::new(),
        }
    }
}

impl Progress for KerasProgress {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.epochs = epochs;
        self.steps = steps;
        self.clock = EpochClock::new();
        if self.verbose == Verbosity::Silent {
            return;
        }
        // `ProgbarLogger.on_epoch_begin` prints the header only for
        // several epochs.
        if epochs > 1 {
            self.log.line(&format!("Epoch {}/{epochs}", epoch + 1));
        }
        if self.verbose == Verbosity::Bar && self.log.terminal {
            let bar = ProgressBar::with_draw_target(
                Some(steps as u64),
                ProgressDrawTarget::stdout_with_hz(20),
            );
            bar.set_style(ProgressStyle::with_template("{wide_msg}").expect("valid template"));
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, step: usize, logs: &Logs) {
        let timing = self.clock.timing(step + 1, self.steps);
        if let Some(bar) = &self.bar {
            self.latest.clone_from(logs);
            bar.set_message(bar_line(timing, logs, false, self.log.styling));
        }
    }

    fn epoch_end(&mut self, _epoch: usize, logs: &Logs) {
        let timing = self.clock.timing(self.steps, self.steps);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        match self.verbose {
            Verbosity::Silent => {}
            Verbosity::Bar => {
                let line = bar_line(timing, logs, true, self.log.styling);
                self.log.line(&line);
            }
            Verbosity::Line => self.log.line(&epoch_line(timing, logs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs() -> Logs {
        vec![
            ("loss".into(), 0.467_83),
            ("accuracy".into(), 0.952_7),
            ("sparsity".into(), 0.000_25),
            ("val_loss".into(), 0.606_1),
            ("val_accuracy".into(), 0.883_3),
        ]
    }

    fn at(current: usize, elapsed: f64, per_step: f64) -> StepTiming {
        StepTiming {
            current,
            target: 45,
            elapsed,
            per_step,
        }
    }

    #[test]
    fn lines_have_keras_layout() {
        let running = bar_line(
            at(12, 0.4, 0.005),
            &logs()[..3].to_vec(),
            false,
            Styling::Plain,
        );
        let done = bar_line(at(45, 1.2, 0.005), &logs(), true, Styling::Plain);
        let two = epoch_line(at(45, 1.2, 0.033), &logs());
        let slow = bar_line(at(3, 400.0, 130.0), &Logs::new(), false, Styling::Plain);
        let fast = epoch_line(at(45, 0.01, 0.000_208), &Logs::new());
        insta::assert_snapshot!(format!("{running}\n{done}\n{two}\n{slow}\n{fast}"));
    }

    #[test]
    fn terminal_lines_are_styled_like_keras() {
        let line = bar_line(at(45, 1.0, 0.005), &Logs::new(), true, Styling::Ansi);
        assert_eq!(
            line,
            "\x1b[1m45/45\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m1s\x1b[0m 5ms/step"
        );
        let start = bar_line(at(0, 0.0, 0.0), &Logs::new(), false, Styling::Ansi);
        assert!(
            start.starts_with("\x1b[1m 0/45\x1b[0m \x1b[37m━"),
            "{start:?}"
        );
    }

    #[test]
    fn small_values_use_python_exponents() {
        assert_eq!(metric_value(0.000_25, false), "2.5000e-04");
        assert_eq!(metric_value(-0.5, false), "-0.5000");
        // `verbose=2` compares without `abs`, as Keras does.
        assert_eq!(metric_value(-0.5, true), "-5.0000e-01");
        assert_eq!(python_exp(1.5e-12), "1.5000e-12");
        assert_eq!(python_exp(2.0e120), "2.0000e+120");
    }

    #[test]
    fn plain_log_prints_one_line_per_epoch() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared::default();
        let mut p = KerasProgress::new(Log::plain(Box::new(buf.clone())), Verbosity::Bar);
        for epoch in 0..2 {
            p.epoch_start(epoch, 2, 3);
            for s in 0..3 {
                p.step(s, &logs());
            }
            p.epoch_end(epoch, &logs());
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "Epoch 1/2");
        assert!(
            lines[1].starts_with("3/3 ━━━━━━━━━━━━━━━━━━━━ 0s "),
            "{text}"
        );
        assert!(lines[1].ends_with(
            " - accuracy: 0.9527 - loss: 0.4678 - sparsity: 2.5000e-04 - val_accuracy: 0.8833 - val_loss: 0.6061"
        ));
        assert!(!text.contains('\x1b'));
    }
}
