//! `wasi:keyvalue/store` and `wasi:keyvalue/atomics` (0.2.0-draft) over the
//! run's tenant's [`TenantStore`]: every run of a tenant sees the same
//! entries, no run of another tenant does. (wasmtime-wasi-keyvalue's store is
//! per `Store`, so a token could not outlive its run there.)

use super::StoreData;
use super::bindings::wasi::keyvalue::{atomics, store};
use crate::store::{Bucket, TenantStore};
use std::sync::Arc;
use wasmtime::component::Resource;

/// Keys per `list-keys` page.
const LIST_PAGE: usize = 100;

impl StoreData {
    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<(&Arc<TenantStore>, &str), store::Error> {
        let open = self
            .table
            .get(bucket)
            .map_err(|e| store::Error::Other(e.to_string()))?;
        Ok((&self.store, open.name()))
    }
}

impl store::Host for StoreData {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, store::Error> {
        self.table
            .push(Bucket::new(identifier))
            .map_err(|e| store::Error::Other(e.to_string()))
    }
}

impl store::HostBucket for StoreData {
    fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let (store, name) = self.bucket(&bucket)?;
        Ok(store.get(name, &key))
    }

    fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let (store, name) = self.bucket(&bucket)?;
        store
            .set(name, &key, value)
            .map_err(|e| store::Error::Other(e.to_string()))
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        let (store, name) = self.bucket(&bucket)?;
        store.delete(name, &key);
        Ok(())
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, store::Error> {
        let (store, name) = self.bucket(&bucket)?;
        Ok(store.exists(name, &key))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, store::Error> {
        let (store, name) = self.bucket(&bucket)?;
        let (keys, cursor) = store.list_keys(name, cursor.unwrap_or(0), LIST_PAGE);
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for StoreData {
    fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, store::Error> {
        let (store, name) = self.bucket(&bucket)?;
        store
            .increment(name, &key, delta)
            .map_err(|e| store::Error::Other(e.to_string()))
    }
}
