//! SIGTERM, SIGINT and SIGHUP as [`Request`]s. A handler does nothing but store an
//! atomic and write one byte to a pipe; a thread reading that pipe hands each request to
//! whoever subscribed ([`subscribe`]: munin-asyncd's driving thread, through its channel),
//! so the loop can sleep until its next due poll and still stop or reload at once. Also
//! systemd's side: its notify socket and its watchdog interval.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

static TERMINATE: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
/// The write end of the wake pipe (-1 before `install`).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// What the operator asked for with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// What to call on each request.
pub type Subscriber = Box<dyn Fn(Request) + Send>;
static SUBSCRIBERS: Mutex<Vec<Subscriber>> = Mutex::new(Vec::new());

fn wake_from_handler() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe (EAGAIN) already holds a wake.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
    wake_from_handler();
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
    wake_from_handler();
}

/// Installs the handlers: SIGTERM and SIGINT ask to stop, SIGHUP to read the plugin list
/// again. Starts the thread that wakes the loops.
pub fn install() {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the two descriptors it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
        let read_fd = fds[0];
        // Reads block; only the handlers' end is non-blocking.
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            libc::fcntl(read_fd, libc::F_SETFL, 0);
        }
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                // SAFETY: reads into a buffer of the given length.
                let n = unsafe { libc::read(read_fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                if n <= 0 {
                    return;
                }
                let subscribers = SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner());
                tell(&subscribers);
            }
        });
    }
    let term = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
    let hup = on_reload as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handlers only store to atomics and write(2), both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, term);
        libc::signal(libc::SIGINT, term);
        libc::signal(libc::SIGHUP, hup);
    }
}

/// Hands the requests that came to `subscribers`: a reload once, a stop every time.
fn tell(subscribers: &[Subscriber]) {
    let reload = RELOAD.swap(false, Ordering::SeqCst);
    let stop = TERMINATE.load(Ordering::SeqCst);
    for subscriber in subscribers {
        if reload {
            subscriber(Request::Reload);
        }
        if stop {
            subscriber(Request::Stop);
        }
    }
}

/// Calls `subscriber` with every request from a signal from now on (from another
/// thread), and at once with any that came since [`install`].
pub fn subscribe(subscriber: Subscriber) {
    let mut subscribers = SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner());
    subscribers.push(subscriber);
    tell(&subscribers);
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
