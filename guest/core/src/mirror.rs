//! Conversion between these types and the generated WIT bindings.
//!
//! The guest (wit-bindgen) and the host (wasmtime `bindgen!`) each generate
//! their own Rust types for `wit/https-step.wit`, with the same names and
//! fields. [`mirror_wit_types!`](crate::mirror_wit_types) implements [`Mirror`]
//! both ways between them and this crate's types. Each type's fields or
//! cases are listed once, where the model declares them (`#[derive(Mirror)]` in
//! [`crate::model`]). JSON travels as text on both sides ([`JsonText`](crate::JsonText)), so nothing is converted by hand.

/// Converts a value to its twin type on the other side of the WIT boundary.
pub trait Mirror<T> {
    /// Converts.
    fn mirror(self) -> T;
}

macro_rules! identity {
    ($($t:ty),*) => {$(
        impl Mirror<$t> for $t {
            fn mirror(self) -> $t {
                self
            }
        }
    )*};
}
identity!(String, bool, u16, u32, u64, f64);

impl<A: Mirror<B>, B> Mirror<Vec<B>> for Vec<A> {
    fn mirror(self) -> Vec<B> {
        self.into_iter().map(Mirror::mirror).collect()
    }
}

impl<A: Mirror<B>, B> Mirror<Option<B>> for Option<A> {
    fn mirror(self) -> Option<B> {
        self.map(Mirror::mirror)
    }
}

impl<A: Mirror<C>, B: Mirror<D>, C, D> Mirror<Result<C, D>> for Result<A, B> {
    fn mirror(self) -> Result<C, D> {
        self.map(Mirror::mirror).map_err(Mirror::mirror)
    }
}

/// Implements [`Mirror`] both ways between this crate's types and the
/// generated bindings of the `workflow:https-step/types` interface, given as a
/// module name in scope (`use …::types as wit; mirror_wit_types!(wit);`).
/// Each line expands the conversion that a type's `#[derive(Mirror)]`
/// wrote; a type missing here has no conversion, which fails to compile
/// wherever it crosses the boundary.
#[macro_export]
macro_rules! mirror_wit_types {
    ($wit:ident) => {
        $crate::__mirror_StepConfig!($wit);
        $crate::__mirror_KeyValue!($wit);
        $crate::__mirror_Method!($wit);
        $crate::__mirror_StatusPattern!($wit);
        $crate::__mirror_ResponseFormat!($wit);
        $crate::__mirror_Body!($wit);
        $crate::__mirror_TextBody!($wit);
        $crate::__mirror_BinaryBody!($wit);
        $crate::__mirror_MultipartPart!($wit);
        $crate::__mirror_Auth!($wit);
        $crate::__mirror_BasicAuth!($wit);
        $crate::__mirror_BearerAuth!($wit);
        $crate::__mirror_ApiKeyAuth!($wit);
        $crate::__mirror_ApiKeyIn!($wit);
        $crate::__mirror_Oauth2ClientCredentials!($wit);
        $crate::__mirror_Oauth2ClientAuth!($wit);
        $crate::__mirror_TokenRefresh!($wit);
        $crate::__mirror_TokenSignal!($wit);
        $crate::__mirror_Signing!($wit);
        $crate::__mirror_SigningScheme!($wit);
        $crate::__mirror_RetryPolicy!($wit);
        $crate::__mirror_Jitter!($wit);
        $crate::__mirror_Pagination!($wit);
        $crate::__mirror_PageNext!($wit);
        $crate::__mirror_LinkHeaderNext!($wit);
        $crate::__mirror_CursorNext!($wit);
        $crate::__mirror_PageNumberNext!($wit);
        $crate::__mirror_OffsetNext!($wit);
        $crate::__mirror_Poll!($wit);
        $crate::__mirror_StatusUrl!($wit);
        $crate::__mirror_PollUntil!($wit);
        $crate::__mirror_StepOutcome!($wit);
        $crate::__mirror_StepFailure!($wit);
        $crate::__mirror_Attempt!($wit);
        $crate::__mirror_WaitReason!($wit);
        $crate::__mirror_Response!($wit);
        $crate::__mirror_PagesOutcome!($wit);
        $crate::__mirror_PageSummary!($wit);
        $crate::__mirror_PagesStop!($wit);
        $crate::__mirror_RunState!($wit);
        $crate::__mirror_AttemptWait!($wit);
        $crate::__mirror_AttemptResult!($wit);
        $crate::__mirror_StepError!($wit);
        $crate::__mirror_Problem!($wit);
        $crate::__mirror_AuthError!($wit);
    };
}
