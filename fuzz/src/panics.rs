//! A quiet panic hook: yrs panics on some malformed input, and `doc::guard` turns those panics
//! into errors, but the default hook would still print each one. This hook prints nothing; it
//! counts panics and keeps the last message, so a driver can report the panic that escaped.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST: Mutex<Option<String>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Installs the hook (once per process).
pub fn install_quiet_hook() {
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = LAST.lock() {
                *last = Some(info.to_string());
            }
        }));
    });
}

/// Panics seen since the hook was installed, caught ones included.
pub fn count() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// The message and location of the last panic.
pub fn last() -> Option<String> {
    LAST.lock().ok().and_then(|last| last.clone())
}

/// Runs `f`, returning the panic message if a panic escaped it.
pub fn run_caught(f: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| last().unwrap_or_else(|| "panic (no message)".to_string()))
}
