//! The output JSON (README "CLI"), written by the core's `output` module; a
//! host failure is reported in the same shape.

use crate::Error;
pub use https_step_core::output::step_result_json;

/// The output object when the host could not run the step at all, as JSON text.
pub fn host_error_json(e: &Error) -> String {
    https_step_core::output::unrun_json(e.kind(), &e.to_string())
}
