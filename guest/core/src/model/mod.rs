//! The step's data model: one Rust type per WIT type of `wit/https-step.wit`,
//! with the same names and fields, by concern:
//!
//! - [`config`]: the step config and its parts (README "Step config"), with
//!   every default as a named constant next to the field it belongs to;
//! - [`outcome`]: what a run reports (attempts, the response, pages);
//! - [`state`]: what a durable engine keeps between attempts;
//! - [`error`]: why a step failed, and configuration problems.
//!
//! Each type is declared once. Its serde binding (the step-config JSON:
//! snake_case, unknown keys refused), its JSON Schema (feature `schema`, see
//! [`schema`]) and its conversion to and from the WIT bindings of the guest
//! and the host (`#[derive(Mirror)]`, expanded on each side by
//! [`mirror_wit_types!`](crate::mirror_wit_types)) all come from that one
//! declaration. Shapes that serde cannot derive (a method in any case,
//! `secret` as one string or a list, `outputs` as an object) are in
//! `shapes`; [`read`] collects every problem of a config at once.

pub mod config;
pub mod error;
pub mod outcome;
pub mod read;
#[cfg(feature = "schema")]
pub mod schema;
mod shapes;
pub mod state;

pub use config::*;
pub use error::*;
pub use outcome::*;
pub use shapes::{JsonText, type_name as json_type_name};
pub use state::*;
