//! The product's rules, free of I/O: identifiers, windows, statuses, opt-outs, contacts.

pub mod consent_request;
pub mod contact;
pub mod figures;
pub mod frequency;
pub mod handover;
pub mod identity;
pub mod ids;
pub mod inbound;
pub mod keywords;
pub mod ledger;
pub mod media;
pub mod numbering;
pub mod policy;
pub mod preferences;
pub mod send_request;
pub mod status;
pub mod template;
pub mod template_shape;
pub mod time;

pub use contact::{ConsentRecord, ContactState, Referral, Stamped};
pub use ids::{Bsuid, ContactKey, IdError, Phone, PhoneNumberId, UserId, UserRef, Wamid};
pub use keywords::{KeywordIntent, KeywordRules};
pub use preferences::{Category, Consent, Preference, PreferenceSource};
pub use status::{DeliveryStatus, StatusLog, StatusObservation};
pub use time::UnixTime;
