//! Each tenant's key-value store: what the component reaches through
//! `wasi:keyvalue` (store and atomics; bound in `runtime::keyvalue`). The
//! step keeps OAuth 2.0 tokens and their single-flight lock here, so a
//! tenant's runs share a token and no other tenant ever sees it.
//!
//! The store lives in memory, in the [`Tenant`](crate::Tenant), for as long
//! as the host keeps the tenant: a host that reloads its tenants (or a CLI
//! process that ends) starts cold, which costs one token request per grant.
//! It is bounded ([`MAX_ENTRIES`], [`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`]), so
//! a guest cannot grow the host's memory through it.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Most entries a tenant's store holds (a grant uses at most two).
pub const MAX_ENTRIES: usize = 1024;
/// Longest key.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value (a token response's access token is far smaller).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why a store operation failed. Internal to the host: the guest sees the
/// message as `wasi:keyvalue/store.error.other`, and the step treats any store
/// failure alike (it fetches a token without caching it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StoreError {
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("the key is {0} bytes long; at most {MAX_KEY_BYTES} are allowed")]
    KeyTooLong(usize),
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("the value is {0} bytes long; at most {MAX_VALUE_BYTES} are allowed")]
    ValueTooLarge(usize),
    /// The store already holds [`MAX_ENTRIES`] entries.
    #[error("the tenant's store is full ({MAX_ENTRIES} entries)")]
    Full,
    /// `increment` on a value that is not a decimal counter, or past `u64::MAX`.
    #[error("the value at this key is not a counter that can be incremented")]
    NotACounter,
}

/// An open bucket of a tenant's store: the `wasi:keyvalue/store.bucket`
/// resource a guest holds, a name within the store.
pub struct Bucket {
    name: String,
}

impl Bucket {
    pub(crate) fn new(name: String) -> Bucket {
        Bucket { name }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// One tenant's store: buckets of keys to bytes.
#[derive(Debug, Default)]
pub(crate) struct TenantStore {
    /// (bucket, key) → value; ordered, so `list-keys` pages are stable.
    entries: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl TenantStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        // A panic while holding the lock cannot leave a map half-updated
        // (every operation is one map call), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value at `key` in `bucket`.
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.entries()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    /// Whether `key` is in `bucket`.
    pub(crate) fn exists(&self, bucket: &str, key: &str) -> bool {
        self.entries()
            .contains_key(&(bucket.to_string(), key.to_string()))
    }

    /// Sets `key` in `bucket`.
    pub(crate) fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::ValueTooLarge(value.len()));
        }
        let mut entries = self.entries();
        let k = (bucket.to_string(), key.to_string());
        if !entries.contains_key(&k) && entries.len() >= MAX_ENTRIES {
            return Err(StoreError::Full);
        }
        entries.insert(k, value);
        Ok(())
    }

    /// Deletes `key` from `bucket`; absent keys are not an error.
    pub(crate) fn delete(&self, bucket: &str, key: &str) {
        self.entries()
            .remove(&(bucket.to_string(), key.to_string()));
    }

    /// Up to `page` keys of `bucket` from position `cursor`, and the cursor of
    /// the next page, if any.
    pub(crate) fn list_keys(
        &self,
        bucket: &str,
        cursor: u64,
        page: usize,
    ) -> (Vec<String>, Option<u64>) {
        let entries = self.entries();
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let mut keys = entries
            .keys()
            .filter(|(b, _)| b == bucket)
            .skip(skip)
            .map(|(_, k)| k.clone());
        let out: Vec<String> = keys.by_ref().take(page).collect();
        let more = keys.next().is_some();
        (
            out.clone(),
            more.then(|| cursor.saturating_add(out.len() as u64)),
        )
    }

    /// Atomically adds `delta` to the decimal counter at `key` (absent is 0)
    /// and returns the new value. The whole read-modify-write holds the lock,
    /// which is what makes the step's token fetch single-flight.
    pub(crate) fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StoreError> {
        check_key(key)?;
        let mut entries = self.entries();
        let k = (bucket.to_string(), key.to_string());
        let current = match entries.get(&k) {
            None if entries.len() >= MAX_ENTRIES => return Err(StoreError::Full),
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(StoreError::NotACounter)?,
        };
        let next = current.checked_add(delta).ok_or(StoreError::NotACounter)?;
        entries.insert(k, next.to_string().into_bytes());
        Ok(next)
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_BYTES {
        Err(StoreError::KeyTooLong(key.len()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counting() {
        let store = TenantStore::default();
        assert_eq!(store.increment("b", "lock", 1), Ok(1));
        assert_eq!(store.increment("b", "lock", 1), Ok(2));
        assert_eq!(store.get("b", "lock").as_deref(), Some(&b"2"[..]));
        store.set("b", "text", b"x".to_vec()).expect("set");
        assert_eq!(
            store.increment("b", "text", 1),
            Err(StoreError::NotACounter)
        );
        assert_eq!(
            store.set("b", "big", vec![0; MAX_VALUE_BYTES + 1]),
            Err(StoreError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        assert_eq!(
            store.set("b", &"k".repeat(MAX_KEY_BYTES + 1), vec![]),
            Err(StoreError::KeyTooLong(MAX_KEY_BYTES + 1))
        );
        for i in 2..MAX_ENTRIES {
            store.set("fill", &i.to_string(), vec![]).expect("room");
        }
        assert_eq!(store.set("b", "one-more", vec![]), Err(StoreError::Full));
        assert_eq!(
            store.increment("b", "new-counter", 1),
            Err(StoreError::Full)
        );
        store
            .set("b", "text", b"replacing is fine when full".to_vec())
            .expect("replace");
        store.delete("b", "text");
        assert!(!store.exists("b", "text"));
        let (page, next) = store.list_keys("b", 0, 10);
        assert_eq!((page, next), (vec!["lock".to_string()], None));
        let (page, next) = store.list_keys("fill", 0, 2);
        assert_eq!((page.len(), next), (2, Some(2)));
    }
}
