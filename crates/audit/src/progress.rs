//! A progress bar on stderr for large journals, drawn only when stderr is a
//! terminal: bytes of the exports read by the analysis pass, or, while
//! journals are fetched from endpoints (total unknown), bytes received.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running progress bar fed by a byte counter.
pub(crate) struct Progress {
    pub(crate) counter: Option<Arc<AtomicU64>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts a bar over `total` bytes (a byte counter without a total when
    /// `None`) if `wanted` and stderr is a terminal.
    pub(crate) fn start(wanted: bool, total: Option<u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !wanted || !std::io::stderr().is_terminal() {
            return Self {
                counter: None,
                stop,
                thread: None,
            };
        }
        let counter = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = match total {
            Some(_) => "auditing {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            None => "fetching journals {spinner} {bytes} ({bytes_per_sec})",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let (c, s) = (counter.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                bar.set_position(c.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Self {
            counter: Some(counter),
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and clears the bar.
    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
