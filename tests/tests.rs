//! Integration tests: the real programs, ours and Debian's, in temporary directories.

mod architecture;
mod catchup;
mod cleanup;
mod corruption;
mod crash;
mod daemon;
mod dialects;
mod differential;
mod fidelity;
mod generated;
mod harness;
mod health;
mod idle;
mod load;
mod master;
mod node_faults;
mod reply_form;
mod security;
mod session;
mod soak;
mod value_forms;
