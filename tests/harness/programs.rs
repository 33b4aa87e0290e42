//! Running our programs and Debian's Perl munin-async.

use super::*;

/// Runs our munin-async on `spool` with extra arguments and the given input.
pub fn ours(spool: &Path, args: &[&str], input: impl AsRef<[u8]>) -> Output {
    run(
        Command::new(our_async())
            .arg("--spooldir")
            .arg(spool)
            .args(args)
            .arg("--screen"),
        input.as_ref(),
        Duration::from_secs(60),
    )
}

/// Runs Debian's Perl munin-async on `spool`.
pub fn perls(spool: &Path, args: &[&str], input: impl AsRef<[u8]>) -> Output {
    require(PERL_ASYNC, "munin-async");
    run(
        Command::new("perl")
            .arg(PERL_ASYNC)
            .arg("--spooldir")
            .arg(spool)
            .args(args),
        input.as_ref(),
        Duration::from_secs(120),
    )
}

/// Our munin-asyncd binary.
pub fn our_asyncd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_munin-asyncd"))
}

/// Runs our munin-async as the unprivileged user nobody (from a copy it can execute),
/// with these arguments and input.
pub fn ours_as_nobody(args: &[&std::ffi::OsStr], input: &[u8]) -> Output {
    require_root();
    let bin = tempdir();
    let exe = bin.path().join("munin-async");
    fs::copy(our_async(), &exe).unwrap();
    run(
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&exe)
            .args(args),
        input,
        Duration::from_secs(30),
    )
}
