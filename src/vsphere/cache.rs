//! One inventory snapshot per provider process, shared by every resource of a plan or apply.
//!
//! Terraform calls resources concurrently; readers that arrive while a load is running wait for
//! it instead of starting their own, so a plan costs one bulk fetch however many resources it has.
//! The provider's own changes do not reload it (placement counts what this process placed since
//! the snapshot; a VM it made is looked up in vCenter when the snapshot lacks it): only the sweep
//! of abandoned creates, which removes VMs, calls [`InventoryCache::invalidate`].

use std::sync::Arc;

use tokio::sync::Mutex;

use super::client::VsphereClient;
use super::inventory::load_inventory;
use super::model::Inventory;

pub struct InventoryCache {
    client: VsphereClient,
    current: Mutex<Option<Arc<Inventory>>>,
}

impl InventoryCache {
    pub fn new(client: VsphereClient) -> Self {
        Self {
            client,
            current: Mutex::new(None),
        }
    }

    pub fn client(&self) -> &VsphereClient {
        &self.client
    }

    /// The current snapshot, loading it if there is none. The lock is held across the load on
    /// purpose: concurrent callers share that one load.
    pub async fn get(&self) -> anyhow::Result<Arc<Inventory>> {
        let mut current = self.current.lock().await;
        if let Some(inventory) = current.as_ref() {
            return Ok(inventory.clone());
        }
        let inventory = Arc::new(load_inventory(&self.client).await?);
        *current = Some(inventory.clone());
        Ok(inventory)
    }

    /// Drops the snapshot; the next [`get`](Self::get) loads a fresh one.
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}
