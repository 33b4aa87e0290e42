//! Tests of munin-asyncd's core as a whole, beside it: the shipped driving loop turning a
//! node in-process against a fake munin-node, on a clock the test moves; and the one fake
//! munin-node, shared with the integration tests and the benchmark (its source lives in
//! `tests/harness/`, where the integration tests take it from).

#[path = "../../../tests/harness/fake_node.rs"]
pub(crate) mod fake_node;
mod in_process;
