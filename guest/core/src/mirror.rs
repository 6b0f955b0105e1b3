//! Conversion between these types and the generated WIT bindings.
//!
//! The guest (wit-bindgen) and the host (wasmtime `bindgen!`) each generate
//! their own Rust types for `wit/https-step.wit`, with the same names and
//! fields. [`mirror_wit_types!`](crate::mirror_wit_types) implements [`Mirror`]
//! both ways between them and this crate's types. The records' fields are
//! listed once, where the model declares them (`wit_records!` in
//! [`crate::model`]); the enums' cases here. JSON travels as text on both
//! sides ([`JsonText`](crate::JsonText)), so nothing is converted by hand.

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
#[macro_export]
macro_rules! mirror_wit_types {
    ($wit:ident) => {
        $crate::__mirror_records!($wit);
        $crate::mirror_wit_types!(@map $wit; Method; [Get, Post, Put, Patch, Delete, Head, Options]; []);
        $crate::mirror_wit_types!(@map $wit; SigningScheme; [Persona, StandardWebhooks, Github]; []);
        $crate::mirror_wit_types!(@map $wit; Jitter; [None, Full]; []);
        $crate::mirror_wit_types!(@map $wit; WaitReason; [Interval, Backoff, RetryAfter, TokenRefresh, PageInterval, PollInterval]; []);
        $crate::mirror_wit_types!(@map $wit; PageNext; []; [LinkHeader, NextUrl, Cursor, Page, Offset]);
        $crate::mirror_wit_types!(@map $wit; StatusUrl; [Location]; [Pointer]);
        $crate::mirror_wit_types!(@map $wit; AttemptResult; []; [Done, Wait]);
        $crate::mirror_wit_types!(@map $wit; PagesStop; [NoNext, EmptyPage, RepeatedPage, MaxPages, MaxItems, MaxTotalResponseBytes, Deadline, Failed]; []);
        $crate::mirror_wit_types!(@map $wit; StatusPattern; []; [Code, Pattern]);
        $crate::mirror_wit_types!(@map $wit; Body; []; [Json, Form, Text, Binary, Multipart]);
        $crate::mirror_wit_types!(@map $wit; ResponseFormat; [Auto, Json, Text, Binary]; []);
        $crate::mirror_wit_types!(@map $wit; Auth; []; [Basic, Bearer, ApiKey, Oauth2ClientCredentials]);
        $crate::mirror_wit_types!(@map $wit; Oauth2ClientAuth; [Basic, Body]; []);
        $crate::mirror_wit_types!(@map $wit; ApiKeyIn; [Header, Query]; []);
        // `StepError` is non_exhaustive: a case without a WIT twin (a bug)
        // crosses the boundary as `internal` with its message.
        $crate::mirror_wit_types!(@map $wit; StepError; []; [InvalidConfig, Denied, Timeout,
            Connection, Tls, Protocol, UnexpectedStatus, ResponseTooLarge, InvalidResponse,
            SchemaMismatch, MissingOutput, Auth, Internal]; fallback Internal);
    };
    (@map $wit:ident; $name:ident; [$($unit:ident),*]; [$($payload:ident),*] $(; fallback $fb:ident)?) => {
        impl $crate::mirror::Mirror<$crate::$name> for $wit::$name {
            fn mirror(self) -> $crate::$name {
                match self {
                    $(Self::$unit => $crate::$name::$unit,)*
                    $(Self::$payload(v) => $crate::$name::$payload($crate::mirror::Mirror::mirror(v)),)*
                }
            }
        }
        impl $crate::mirror::Mirror<$wit::$name> for $crate::$name {
            fn mirror(self) -> $wit::$name {
                match self {
                    $(Self::$unit => $wit::$name::$unit,)*
                    $(Self::$payload(v) => $wit::$name::$payload($crate::mirror::Mirror::mirror(v)),)*
                    $(other => $wit::$name::$fb(other.to_string()),)?
                }
            }
        }
    };
}
