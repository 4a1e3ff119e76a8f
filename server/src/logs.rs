//! The process log (standard error), written by a thread of its own, so that no request ever
//! waits for it: when whatever reads standard error stalls (a stuck pipe, a log collector that
//! hangs, a full disk behind it), lines wait in a bounded queue, and once it is full they are
//! dropped and counted (`auth_log_lines_dropped_total`) instead of stopping the server.

use std::io::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Lines waiting for standard error at most.
const QUEUE: usize = 4096;

/// Log lines dropped since the start (queue full, or standard error gone).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// A warning said at most once per interval, however often its cause repeats (a flood must
/// not flood the log too). Pure: the clock is passed in.
#[derive(Debug)]
pub struct Every {
    every_ms: i64,
    last: AtomicI64,
}

impl Every {
    pub const fn new(every: Duration) -> Self {
        Self {
            every_ms: every.as_millis() as i64,
            last: AtomicI64::new(i64::MIN),
        }
    }

    /// Whether to say it now (`now` in unix ms); true for one caller per interval.
    pub fn due(&self, now: i64) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        now.saturating_sub(last) >= self.every_ms
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[derive(Debug)]
enum Msg {
    Line(Vec<u8>),
    /// Everything queued before this is written: tell the sender.
    Flush(SyncSender<()>),
}

/// A `tracing_subscriber` writer that queues each formatted event for the writer thread.
#[derive(Debug, Clone)]
pub struct Stderr {
    tx: SyncSender<Msg>,
}

/// Writes what is still queued when dropped (at exit), waiting a second at most.
#[derive(Debug)]
pub struct Guard {
    tx: SyncSender<Msg>,
}

/// Starts the writer thread. Keep the guard until the process ends.
pub fn stderr() -> (Stderr, Guard) {
    let (tx, rx) = sync_channel(QUEUE);
    let started = std::thread::Builder::new()
        .name("baton-log".into())
        .spawn(move || write_loop(rx, std::io::stderr()));
    if started.is_err() {
        // No thread: the receiver is gone and every line is counted as dropped.
        eprintln!("baton-server: could not start the log thread; logs are dropped");
    }
    (Stderr { tx: tx.clone() }, Guard { tx })
}

fn write_loop(rx: Receiver<Msg>, mut out: impl Write) {
    for msg in rx {
        match msg {
            Msg::Line(line) => {
                if out.write_all(&line).is_err() {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
            }
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes one event per call.
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Line(buf.to_vec()))
        {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        let (done, wait) = sync_channel(1);
        let mut msg = Msg::Flush(done);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let _ = wait.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that blocks until released, like a pipe nobody reads.
    #[derive(Clone)]
    struct Stuck {
        gate: Arc<Mutex<()>>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_warning_is_due_once_per_interval() {
        let w = Every::new(Duration::from_secs(10));
        assert!(w.due(1_000));
        assert!(!w.due(1_000));
        assert!(!w.due(10_999));
        assert!(w.due(11_000));
        assert!(!w.due(12_000));
    }

    #[test]
    fn a_stuck_output_drops_lines_instead_of_blocking_and_keeps_their_order() {
        let stuck = Stuck {
            gate: Arc::default(),
            got: Arc::default(),
        };
        let closed = stuck.gate.lock().unwrap();
        let (tx, rx) = sync_channel(QUEUE);
        let out = stuck.clone();
        let writer = std::thread::spawn(move || write_loop(rx, out));
        let mut w = Stderr { tx: tx.clone() };
        let before = dropped();
        let started = Instant::now();
        for i in 0..QUEUE + 100 {
            w.write_all(format!("{i}\n").as_bytes()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "writing blocked"
        );
        assert!(dropped() - before >= 99, "{}", dropped() - before);
        drop(closed);
        drop(Guard { tx });
        drop(w);
        writer.join().unwrap();
        let got = String::from_utf8(stuck.got.lock().unwrap().clone()).unwrap();
        let numbers: Vec<usize> = got.lines().map(|l| l.parse().unwrap()).collect();
        assert!(numbers.len() >= QUEUE, "{}", numbers.len());
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    }
}
