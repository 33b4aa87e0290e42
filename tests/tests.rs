//! Integration tests: the real programs, ours and Debian's, in temporary directories.

mod catchup;
mod differential;
mod harness;
mod master;
mod session;
