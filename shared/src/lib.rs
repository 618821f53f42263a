//! wahook: serverless WhatsApp Cloud API plumbing for AWS.
//!
//! The Lambda functions are thin adapters over this library, which holds every rule.

pub mod domain;
pub mod payload;
pub mod secret;
pub mod signature;
pub mod verification;
