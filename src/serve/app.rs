//! munin-async's main flow: set up logging, open the spool, serve, clean up.

use std::io::{self, Write};
use std::path::Path;

use crate::serve::cli::{AsyncConfig, Mode};
use crate::serve::output::ThreadedWriter;
use crate::serve::session::{self, SessionConfig, SessionError};
use crate::spool::cleanup::cleanup;
use crate::spool::Spool;
use crate::util::clock::system_clock;
use crate::util::exit::{self, Exit};
use crate::util::log;
use crate::{log_info, log_warn};

/// The system's host name, as Perl's `Sys::Hostname` gives it.
pub(crate) fn system_hostname() -> String {
    std::fs::read("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read("/etc/hostname"))
        .ok()
        .map(|b| b.trim_ascii().to_vec())
        .filter(|b| crate::spool::meta::is_hostname(b))
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Runs munin-async with a checked configuration: how it ends, or the error that ends it
/// (the binary reports it, see [`exit::fail`]).
pub fn run(cfg: AsyncConfig) -> Result<Exit, String> {
    let target = cfg.log_target;
    if let Mode::AuthorizedKeys { key_file, from } = &cfg.mode {
        return Ok(print_authorized_keys(&cfg, key_file, from.as_deref()));
    }
    log::init("munin-async", target, cfg.log_level);
    let spooldir = match &cfg.node_from_ssh {
        None => cfg.spooldir.clone(),
        Some(sections) => match chosen_spool(&cfg.spooldir, sections) {
            Ok(dir) => dir,
            Err(refused) => return Ok(refused),
        },
    };
    let spool = match Spool::open(&spooldir) {
        Ok(s) => s,
        Err(e) => return Err(e.to_string()),
    };
    let meta = match spool.meta() {
        Ok(m) => m,
        Err(e) => {
            log_warn!("{e}; going on without it");
            Default::default()
        }
    };
    let max_age = match (meta.interval_size(), meta.interval_keep()) {
        (Ok(size), Ok(keep)) => size.saturating_mul(keep),
        (Err(e), _) | (_, Err(e)) => {
            log_warn!("{e} in {}; using the defaults", spool.dir().display());
            crate::spool::meta::DEFAULT_INTERVAL_SIZE * crate::spool::meta::DEFAULT_INTERVAL_KEEP
        }
    };
    let cleanup_after = match cfg.mode {
        Mode::CleanupOnly => return run_cleanup(&spool, max_age).map(|()| Exit::Ok),
        Mode::Serve { cleanup } => cleanup,
        Mode::Inspect => {
            return match crate::serve::inspect::inspect(&spool) {
                Ok(report) => {
                    print!("{}", crate::serve::inspect::render(spool.dir(), &report));
                    Ok(if report.is_clean() {
                        Exit::Ok
                    } else {
                        Exit::Failure
                    })
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Mode::AuthorizedKeys { .. } => return Ok(Exit::Usage),
    };
    let hostname = cfg
        .hostname
        .clone()
        .unwrap_or_else(|| match meta.hostname() {
            Ok(Some(h)) => h.to_string(),
            Ok(None) => system_hostname(),
            Err(e) => {
                log_warn!("{e}; using the system's host name");
                system_hostname()
            }
        });
    let session_cfg = SessionConfig {
        hostname,
        spoolfetch: cfg.spoolfetch,
        catchup: cfg.catchup,
        form: cfg.form,
        interval_size: meta
            .interval_size()
            .unwrap_or(crate::spool::meta::DEFAULT_INTERVAL_SIZE),
        clock: system_clock,
    };
    widen_stdout_pipe();
    let mut output = ThreadedWriter::new(io::stdout());
    let result = session::run(&spool, &session_cfg, io::stdin().lock(), &mut output);
    let served = match result {
        Ok(()) => Ok(()),
        Err(SessionError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            log_info!("the master hung up");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    };
    // Every reply was flushed; dropping ignores a hung-up master.
    drop(output);
    if cleanup_after {
        match (&served, run_cleanup(&spool, max_age)) {
            (Ok(()), cleaned) => return cleaned.map(|()| Exit::Ok),
            // Both failed: both are reported, the session's first.
            (Err(session), Err(cleaned)) => {
                exit::fail("munin-async", target, session);
                return Ok(exit::fail("munin-async", target, &cleaned));
            }
            (Err(_), Ok(())) => {}
        }
    }
    served.map(|()| Exit::Ok)
}

/// `--node-from-ssh`: the spool directory the master's ssh command names, or how the
/// refusal ended munin-async (one `#` line to the master, a warning logged with the
/// master's address; a spool root that cannot be read is refused alike).
fn chosen_spool(
    root: &Path,
    sections: &[crate::asyncd::fanout::NodeEntry],
) -> Result<std::path::PathBuf, Exit> {
    use crate::serve::ssh_command::{parse, peer, Allowed};
    use std::os::unix::ffi::OsStrExt;
    let command = std::env::var_os("SSH_ORIGINAL_COMMAND");
    let bytes = command.as_deref().map(|c| c.as_bytes());
    let resolved = parse(bytes).and_then(|asked| {
        Allowed::new(root, sections)
            .map_err(|e| crate::serve::ssh_command::Refused(format!("the spool root: {e}")))?
            .resolve(&asked)
    });
    match resolved {
        Ok(dir) => {
            log_info!("serving {} to {}", dir.display(), peer());
            Ok(dir)
        }
        Err(why) => {
            log_warn!(
                "refused the ssh command {} from {}: {why}",
                crate::util::log::Quoted(bytes.unwrap_or_default()),
                peer()
            );
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "# munin-async: refused: {why}");
            let _ = out.flush();
            Err(Exit::Failure)
        }
    }
}

fn run_cleanup(spool: &Spool, max_age: u64) -> Result<(), String> {
    match cleanup(spool, system_clock(), max_age, None) {
        Ok(r) if r.failed == 0 => {
            log_info!(
                "cleanup of {}: {} files removed",
                spool.dir().display(),
                r.removed
            );
            Ok(())
        }
        Ok(r) => Err(format!(
            "cleanup of {}: {} files removed, {} could not be removed",
            spool.dir().display(),
            r.removed,
            r.failed
        )),
        Err(e) => Err(format!("cleanup: {e}")),
    }
}

/// Asks for a 1 MiB pipe buffer when stdout is a pipe, so replies stream while the reader
/// drains them; on anything else (a socket, a file) the call fails harmlessly.
fn widen_stdout_pipe() {
    // SAFETY: fcntl on fd 1 with F_SETPIPE_SZ takes an int and touches no memory of ours.
    let _ = unsafe { libc::fcntl(1, libc::F_SETPIPE_SZ, 1 << 20) };
}

/// `--authorized-keys FILE`: prints one hardened line per key, with this very program in
/// the forced command.
fn print_authorized_keys(cfg: &AsyncConfig, key_file: &Path, from: Option<&str>) -> Exit {
    let keys = if key_file == Path::new("-") {
        io::read_to_string(io::stdin())
    } else {
        std::fs::read_to_string(key_file)
    };
    let program = std::env::current_exe();
    let result = match (keys, program) {
        (Err(e), _) => Err(format!("{}: {e}", key_file.display())),
        (_, Err(e)) => Err(format!("cannot tell this program's path: {e}")),
        (Ok(keys), Ok(program)) => {
            let forced = crate::serve::authkeys::Forced {
                program: &program,
                spooldir: &cfg.spooldir,
                hostname: cfg.hostname.as_deref(),
                catchup_window: match cfg.catchup {
                    crate::serve::session::Catchup::Seconds(s) => Some(s),
                    crate::serve::session::Catchup::Intervals(_) => None,
                },
                compat_output: cfg.form == crate::serve::spoolfetch::Form::Records,
                node_from_ssh: cfg
                    .node_from_ssh
                    .as_ref()
                    .map(|_| cfg.config_file.as_deref()),
            };
            crate::serve::authkeys::lines(forced, from, &keys)
                .map_err(|e| format!("{}: {e}", key_file.display()))
        }
    };
    match result {
        Ok(lines) => {
            if !cfg.spooldir.is_dir() {
                eprintln!(
                    "munin-async: note: {} does not exist yet",
                    cfg.spooldir.display()
                );
            }
            for l in lines {
                println!("{l}");
            }
            Exit::Ok
        }
        Err(e) => {
            // Before any log is set up: the terminal only.
            eprintln!("munin-async: {e}");
            Exit::Failure
        }
    }
}
