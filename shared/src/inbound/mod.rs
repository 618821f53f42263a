//! The inbound path: a verified webhook body becomes durable, idempotent writes.
//!
//! [`plan::plan`] is pure (parse, apply the rules, fold per message and per person); [`apply`] performs
//! the writes. Benchmarks measure the first, integration tests exercise both.

pub mod apply;
pub mod plan;

#[cfg(test)]
mod properties;

pub use apply::{Applied, ApplyReport, InboundWriter};
pub use plan::{plan, InboundRules, Plan, PlanCounts};
