//! The tenant's store over `wasi:keyvalue` (store and atomics, 0.2.0-draft):
//! the only module that touches it. The host gives each tenant its own store,
//! shared by that tenant's runs (README "Authentication": OAuth 2.0).

use crate::bindings::wasi::keyvalue::{atomics, store};

/// The bucket the step keeps its entries in.
const BUCKET: &str = "https-step";

fn bucket() -> Result<store::Bucket, String> {
    store::open(BUCKET).map_err(describe)
}

fn describe(e: store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "the host offers no store".into(),
        store::Error::AccessDenied => "access to the store was denied".into(),
        store::Error::Other(m) => m,
    }
}

/// The tenant's store, as the step's token store.
pub struct KeyValue;

impl https_step_wasi::TokenStore for KeyValue {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        bucket()?.get(key).map_err(describe)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        bucket()?.set(key, value).map_err(describe)
    }

    fn delete(&mut self, key: &str) -> Result<(), String> {
        bucket()?.delete(key).map_err(describe)
    }

    fn increment(&mut self, key: &str) -> Result<u64, String> {
        atomics::increment(&bucket()?, key, 1).map_err(describe)
    }
}
