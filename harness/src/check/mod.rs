//! Checkers: pure functions from a history to verdicts, one module per spec section.

pub mod verdict;
