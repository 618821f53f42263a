//! wahook: serverless WhatsApp Cloud API plumbing for AWS.
//!
//! The Lambda functions are thin adapters over this library, which holds every rule: Meta's webhook
//! handshake and signature, the lenient payload model, the domain (identities, windows, statuses,
//! opt-outs), and the DynamoDB stores. See `docs/architecture.md` for the map.

pub mod aws;
pub mod config;
pub mod domain;
pub mod graph;
pub mod inbound;
pub mod media;
pub mod outbound;
pub mod payload;
pub mod publish;
pub mod retry;
pub mod secret;
pub mod signature;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod verification;
pub mod webhook;
