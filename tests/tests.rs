//! Integration tests: the real programs, ours and Debian's, in temporary directories.

mod harness;
mod catchup;
mod differential;
mod session;
