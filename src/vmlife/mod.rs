//! The life of a `vsphereipam_vm` without Terraform: checking a new VM at plan time, creating
//! it (place, allocate pending, clone/customize/power on, wait, finish or undo), destroying it,
//! and sweeping the creates of processes that died. The provider edge (`provider::vm`) turns
//! Terraform values into a [`VmRequest`] and the typed errors here into diagnostics; nothing in
//! this module names a protocol type, so it is tested against the simulator directly.
//!
//! The rule every path keeps: an address is released only once it is known that no VM holds
//! it. When a vCenter call's outcome cannot be found out (vCenter unreachable past the client's
//! find-out budget), the addresses stay pending under the creation ticket, and the sweep of a
//! later process finds out ([`sweep_pending`]).

mod create;
mod sweep;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use create::{
    check_new, create, destroy, find_template, inventory_path, is_windows, subnets_of,
    vm_datacenter, Created, CreatedNic, NicSubnets, PlanView,
};
pub use sweep::{abandoned, sweep_pending};

use crate::pending::Abandoned;
use crate::placement::{Placement, PlacementError};
use crate::store::ops::ClaimError;
use crate::store::{Store, StoreError};
use crate::vsphere::cache::InventoryCache;
use crate::vsphere::model::Inventory;
use crate::vsphere::vm_ops::{GuestFamily, VmOpError};

/// What the VM operations need of a configured provider.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub cache: &'a InventoryCache,
    pub store: &'a Store,
    pub creates: &'a Creates,
}

/// Per-process state of VM creation.
#[derive(Default)]
pub struct Creates {
    /// VMs this process placed per host since the snapshot was taken: parallel creates see the
    /// same snapshot and would all pick the same least loaded host otherwise.
    placed: Mutex<(Weak<Inventory>, HashMap<String, usize>)>,
    /// Creates that died unfinished, found once per process (plan counts their addresses as
    /// free, the first VM create cleans them up).
    abandoned: tokio::sync::OnceCell<Vec<Abandoned>>,
    /// Abandoned VM creates are cleaned up once per process, before its first VM create.
    swept: tokio::sync::OnceCell<()>,
}

impl Creates {
    /// Runs `choose` with the VMs this process placed per host on top of `inventory`, and
    /// counts the host it returns, under one lock so parallel creates spread out.
    fn place(
        &self,
        inventory: &Arc<Inventory>,
        choose: impl FnOnce(&HashMap<String, usize>) -> Result<Placement, PlacementError>,
    ) -> Result<Placement, PlacementError> {
        let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
        if !placed
            .0
            .upgrade()
            .is_some_and(|i| Arc::ptr_eq(&i, inventory))
        {
            *placed = (Arc::downgrade(inventory), HashMap::new());
        }
        let chosen = choose(&placed.1)?;
        *placed.1.entry(chosen.host.clone()).or_default() += 1;
        Ok(chosen)
    }

    /// Takes back a placement on `host` whose create left no VM there (never made, or removed
    /// again), so later creates on the same snapshot do not avoid that host for nothing.
    fn take_back(&self, inventory: &Arc<Inventory>, host: &str) {
        let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
        if placed
            .0
            .upgrade()
            .is_some_and(|i| Arc::ptr_eq(&i, inventory))
        {
            if let Some(count) = placed.1.get_mut(host) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

/// One NIC as asked for: an address from `subnet_id` (either family) and, for a dual-stack
/// NIC whose first subnet is IPv4, one from the IPv6 subnet `ipv6_subnet_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicInput {
    pub subnet_id: String,
    /// The address asked for; `None`: the next free one.
    pub ip: Option<IpAddr>,
    pub ipv6_subnet_id: Option<String>,
    /// The IPv6 address asked for; `None`: the next free one of `ipv6_subnet_id`.
    pub ipv6: Option<Ipv6Addr>,
}

/// The guest customization a create asks for, as the edge parsed it.
pub trait Guest: Send + Sync + std::fmt::Debug {
    /// The spec for a template of this family (`windows_template`), with `first_domain` (the
    /// first NIC's subnet's) for defaults; `None` when the request does not fit that family.
    fn family(&self, windows_template: bool, first_domain: Option<&str>) -> Option<GuestFamily>;
}

/// Every input of a new VM, known and valid. New inputs are new fields.
#[derive(Debug, Clone)]
pub struct VmRequest {
    pub name: String,
    pub datacenter: String,
    /// Template or VM to clone, by name or UUID.
    pub template: String,
    pub num_cpus: Option<i32>,
    pub memory_mb: Option<i64>,
    /// Host by name or moref; `None`: the least loaded one that reaches every subnet.
    pub host: Option<String>,
    /// VM folder path, relative to the datacenter's VM folder or absolute.
    pub folder: Option<String>,
    pub datastore: Option<String>,
    /// `None`: the name reduced to a host name.
    pub hostname: Option<String>,
    /// Linux or Windows customization, chosen by the template's guest family.
    pub guest: Arc<dyn Guest>,
    /// Wait until VMware Tools report every assigned address (IPv4: exactly that one on the
    /// NIC; IPv6: among the NIC's), at most `timeout`.
    pub wait: bool,
    pub timeout: Duration,
    pub nics: Vec<NicInput>,
}

/// Where the addresses of a create that did not finish are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// None had been taken yet.
    Nothing,
    /// Released: it is known that no VM of this create exists.
    Released,
    /// Still pending under the creation ticket: a VM of this create may exist. A later
    /// process's sweep finds out, removes the VM if there is one, and releases them.
    Pending,
}

/// Why a VM could not be created (or checked at plan time), with what the edge needs to point
/// at the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Inventory(String),
    #[error("{0}")]
    Store(StoreError),
    /// The template is missing or ambiguous (attribute `template`).
    #[error("{0}")]
    Template(String),
    /// NIC `index` names a subnet the store does not have (its `subnet_id`, or with `ipv6`
    /// its `ipv6_subnet_id`).
    #[error(
        "No subnet {subnet_id:?} of this vCenter in the IPAM store {store}. Use the id of a \
         vsphereipam_ipsubnet."
    )]
    SubnetMissing {
        index: usize,
        subnet_id: String,
        store: String,
        ipv6: bool,
    },
    /// NIC `index`'s `ipv6_subnet_id` names an IPv4 subnet.
    #[error(
        "Subnet {name:?} ({cidr}) is IPv4; ipv6_subnet_id takes an IPv6 subnet. Put the IPv4 \
         subnet in subnet_id and an IPv6 subnet of the same wire in ipv6_subnet_id."
    )]
    Ipv6SubnetIsIpv4 {
        index: usize,
        name: String,
        cidr: String,
    },
    /// NIC `index` has `ipv6_subnet_id` while its `subnet_id` is IPv6 already.
    #[error(
        "subnet_id names the IPv6 subnet {name:?} ({cidr}), so ipv6_subnet_id would give the \
         NIC two subnets of one family. For a dual-stack NIC put an IPv4 subnet in subnet_id; \
         for an IPv6-only NIC remove ipv6_subnet_id."
    )]
    TwoIpv6Subnets {
        index: usize,
        name: String,
        cidr: String,
    },
    #[error("{0}")]
    Placement(PlacementError),
    /// `folder` or `datastore` names nothing (`attribute`).
    #[error("No {what} at inventory path {path:?}. Fix `{attribute}`; nothing was created.")]
    PathNotFound {
        attribute: &'static str,
        what: &'static str,
        path: String,
    },
    #[error("{reason}")]
    PathLookup {
        attribute: &'static str,
        what: &'static str,
        reason: String,
    },
    /// No address for a NIC (taken, outside the range, subnet full). The claim's index is the
    /// NIC's; `ipv6`: its `ipv6_subnet_id`/`ipv6_address` address.
    #[error("{}", .claim.error)]
    Allocation { claim: ClaimError, ipv6: bool },
    #[error("{0}")]
    PortGroup(String),
    /// The customization does not fit the template's family (`windows`: a Windows template).
    #[error("the guest customization does not fit the template")]
    Guest { windows: bool },
    /// vCenter refused or failed the create, or its outcome stayed unknown.
    #[error("{error}")]
    VCenter { error: VmOpError, held: Held },
    /// VMware Tools did not report the addresses; the VM was to be removed.
    #[error("{error}")]
    GuestIps { error: VmOpError, held: Held },
    /// The VM exists but its addresses could not be handed to it; the VM was to be removed.
    #[error("{error}")]
    Record { error: StoreError, held: Held },
}

impl CreateError {
    /// Whether a VM of the failed create may still exist: its addresses stayed pending
    /// because vCenter could not say, or the partial VM could not be removed.
    pub fn may_have_left_a_vm(&self) -> bool {
        matches!(
            self,
            CreateError::VCenter {
                held: Held::Pending,
                ..
            } | CreateError::GuestIps {
                held: Held::Pending,
                ..
            } | CreateError::Record {
                held: Held::Pending,
                ..
            }
        )
    }
}

/// Why a VM could not be destroyed; its addresses stay held.
#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    #[error("{0}")]
    Inventory(String),
    #[error("{0}")]
    VCenter(VmOpError),
    #[error("{0}")]
    Store(StoreError),
}

/// `name` as a host name: lower case letters, digits and inner hyphens, at most `max` long.
pub fn host_name_of(name: &str, max: usize) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "vm".to_string()
    } else {
        out
    }
}

/// Windows (NetBIOS) computer names are at most 15 characters, other host names 63.
pub fn host_name_limit(windows: bool) -> usize {
    if windows {
        15
    } else {
        63
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name_of("Web_Server 01", 63), "web-server-01");
        assert_eq!(host_name_of("--x--", 63), "x");
        assert_eq!(host_name_of("___", 63), "vm");
        assert_eq!(
            host_name_of("a-very-long-windows-name", 15),
            "a-very-long-win"
        );
        assert_eq!(host_name_of("abcdefghijklmn-p", 15), "abcdefghijklmn");
    }
}
