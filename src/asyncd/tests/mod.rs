//! Tests of munin-asyncd's core as a whole, beside it: the shipped driving loop turning a
//! node in-process against a fake munin-node, on a clock the test moves.

mod in_process;
