//! Serial source: one blocking reader thread per port.
//!
//! The thread opens the device, reads with a short timeout, feeds the bytes to the
//! [`edgewatch_protocol::Decoder`] and sends frames on. When the device disappears (USB unplug:
//! a read or open fails) it closes the port, resets the decoder (a partial chunk cannot continue
//! on a new connection) and reopens with exponential backoff and jitter until the device is back
//! or the agent stops. Cancellation is checked between reads, so the thread ends within one read
//! timeout of shutdown.

use super::config::SerialSource;
use super::{IngestSender, count_reject};
use crate::backoff::Backoff;
use crate::ops::events::{Event, SourceLost};
use edgewatch_protocol::Decoder;
use std::io::{ErrorKind, Read};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one read waits for bytes before the thread checks for shutdown.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Starts the reader thread for one port; it ends on `shutdown` or when the pipeline closes.
pub fn spawn(
    cfg: SerialSource,
    tx: IngestSender,
    shutdown: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let name: Arc<str> = format!("serial:{}", cfg.device.display()).into();
    std::thread::Builder::new()
        .name(format!("serial {}", cfg.device.display()))
        .spawn(move || run(&cfg, &name, &tx, &shutdown))
}

fn sleep_unless_cancelled(shutdown: &CancellationToken, ms: u64) {
    let mut left = ms;
    while left > 0 && !shutdown.is_cancelled() {
        let step = left.min(50);
        std::thread::sleep(Duration::from_millis(step));
        left -= step;
    }
}

fn run(cfg: &SerialSource, name: &Arc<str>, tx: &IngestSender, shutdown: &CancellationToken) {
    let mut backoff = Backoff::new(cfg.reconnect_min_ms, cfg.reconnect_max_ms);
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 8192];
    let connected = metrics::gauge!("edgewatch_source_connected", "source" => name.to_string());
    let device = cfg.device.to_string_lossy().to_string();
    while !shutdown.is_cancelled() && !tx.is_closed() {
        let port = serialport::new(&device, cfg.baud)
            .timeout(READ_TIMEOUT)
            .open();
        let mut port = match port {
            Ok(p) => p,
            Err(e) => {
                let delay = backoff.next_delay_ms(rand::random());
                tracing::warn!(source = %name, error = %e, retry_ms = delay, "cannot open serial device");
                sleep_unless_cancelled(shutdown, delay);
                continue;
            }
        };
        tracing::info!(source = %name, baud = cfg.baud, "serial device open");
        connected.set(1.0);
        decoder.reset();
        'read: while !shutdown.is_cancelled() {
            match port.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    backoff.reset();
                    for result in decoder.decode(&buf[..n]) {
                        match result {
                            Ok(frame) => {
                                if tx.blocking_send(name, frame).is_err() {
                                    break 'read;
                                }
                            }
                            Err(e) => count_reject(name, &e),
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock
                    ) => {}
                Err(e) => {
                    SourceLost {
                        source: name,
                        error: &e,
                        retry_ms: None,
                    }
                    .emit();
                    break 'read;
                }
            }
        }
        connected.set(0.0);
        drop(port);
        if !shutdown.is_cancelled() {
            sleep_unless_cancelled(shutdown, backoff.next_delay_ms(rand::random()));
        }
    }
    tracing::info!(source = %name, "serial source stopped");
}
