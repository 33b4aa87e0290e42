//! SIGTERM, SIGINT and SIGHUP as flags the daemon's loop checks: a handler may do
//! nothing but store an atomic.

use std::sync::atomic::{AtomicBool, Ordering};

static TERMINATE: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

/// Installs the handlers: SIGTERM and SIGINT ask to stop, SIGHUP to read the plugin list
/// again.
pub fn install() {
    let term = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
    let hup = on_reload as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handlers only store to atomics, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, term);
        libc::signal(libc::SIGINT, term);
        libc::signal(libc::SIGHUP, hup);
    }
}

/// Whether a stop was asked for.
pub(crate) fn terminate_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

/// Whether a reload was asked for since the last call.
pub(crate) fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

/// systemd's watchdog interval (`WatchdogSec`, given as `WATCHDOG_USEC`), when it is meant
/// for this process.
pub(crate) fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}

/// Tells systemd (`Type=notify`) something, when it is listening.
pub(crate) fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let path = path.as_encoded_bytes();
    let addr = match path.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
        None => SocketAddr::from_pathname(std::path::Path::new(std::ffi::OsStr::from_bytes(path))),
    };
    if let Ok(addr) = addr {
        let _ = sock.send_to_addr(state.as_bytes(), &addr);
    }
}

use std::os::unix::ffi::OsStrExt;
