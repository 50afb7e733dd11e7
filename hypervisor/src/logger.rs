//! The `log` backend: one line per record on the host's serial port.
use crate::arch::serial;
use core::fmt::Write;
use log::{LevelFilter, Log, Metadata, Record};

struct SerialLogger;

struct Sink;

impl Write for Sink {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Whole lines, so that records from several CPUs and the guests'
        // output do not mix.
        let _line = crate::syscall::console::for_log_line();
        let _ = writeln!(Sink, "[{:5}] {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

/// Installs the serial logger with `level`. Later calls only change the level.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
