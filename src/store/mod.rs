//! The IPAM store: subnets, their wires, and address records, behind one interface whatever
//! the database. A backend ([`sqlite`], [`postgres`]) only implements the primitive queries
//! of [`Tx`] inside a transaction; the IPAM rules that combine them live once, in [`ops`].

pub mod ops;
pub mod pgconn;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tx_tests;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use crate::ipam::ranges::{Key, Range};
use crate::ipam::subnet::SubnetSpec;

/// A subnet as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetRecord {
    pub id: String,
    /// Instance UUID of the vCenter the subnet's wires belong to.
    pub vcenter: String,
    pub name: String,
    pub wire_id: String,
    pub domain: Option<String>,
    pub spec: SubnetSpec,
}

impl SubnetRecord {
    /// Whether `other`, another subnet, hands out addresses this one would: no two subnets of
    /// a vCenter may (callers compare within one vCenter).
    pub fn overlaps(&self, other: &SubnetRecord) -> bool {
        other.id != self.id && other.spec.allocatable().overlaps(&self.spec.allocatable())
    }

    /// The first of `others` whose range overlaps this one's.
    pub fn first_overlap<'a>(
        &self,
        others: impl IntoIterator<Item = &'a SubnetRecord>,
    ) -> Option<&'a SubnetRecord> {
        others.into_iter().find(|other| self.overlaps(other))
    }
}

/// Another wire whose VMs may take addresses from a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLink {
    pub wire_id: String,
    /// Found on create: VMs on the wire reported addresses inside the range.
    pub detected: bool,
    /// Attached by a `vsphereipam_subnet_additional_wire` resource.
    pub attached: bool,
}

/// Who holds an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerKind {
    /// A `vsphereipam_vm` resource (owner id: VM UUID).
    Vm,
    /// A `vsphereipam_vm_nic_fix` resource (owner id: VM UUID).
    NicFix,
    /// A `vsphereipam_ip_address` resource (owner id: the resource id).
    Address,
    /// Reported in use by VMware Tools; no resource owns it.
    Observed,
    /// Taken directly through the store API (tests, admin commands).
    Manual,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Vm => "vsphereipam_vm",
            OwnerKind::NicFix => "vsphereipam_vm_nic_fix",
            OwnerKind::Address => "vsphereipam_ip_address",
            OwnerKind::Observed => "observed",
            OwnerKind::Manual => "manual",
        }
    }
}

impl FromStr for OwnerKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "vsphereipam_vm" => Ok(OwnerKind::Vm),
            "vsphereipam_vm_nic_fix" => Ok(OwnerKind::NicFix),
            "vsphereipam_ip_address" => Ok(OwnerKind::Address),
            "observed" => Ok(OwnerKind::Observed),
            "manual" => Ok(OwnerKind::Manual),
            other => Err(StoreError::Corrupt(format!("unknown owner kind {other:?}"))),
        }
    }
}

/// An address as both backends store it: the 16 big-endian bytes of its [`Key`] (IPv4 as
/// `::ffff:a.b.c.d`), a BLOB in SQLite and a `bytea` in PostgreSQL. Both compare byte strings
/// byte by byte, so their order is the addresses' order and `start_ip <= $ip ORDER BY start_ip
/// DESC LIMIT 1` stays one index lookup for either family.
pub(crate) fn key_column(k: Key) -> [u8; 16] {
    k.to_be_bytes()
}

/// [`key_column`] of an address.
pub(crate) fn ip_column(ip: IpAddr) -> [u8; 16] {
    key_column(crate::ipam::ranges::key(ip))
}

/// The [`Key`] a column holds; anything but 16 bytes is corrupt data.
pub(crate) fn key_of_column(bytes: &[u8], what: &str) -> Result<Key> {
    <[u8; 16]>::try_from(bytes)
        .map(u128::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what} holds {} bytes, not 16", bytes.len())))
}

/// The address a column holds.
pub(crate) fn ip_of_column(bytes: &[u8], what: &str) -> Result<IpAddr> {
    key_of_column(bytes, what).map(crate::ipam::ranges::addr)
}

/// What a transaction fails with when a newer release migrated the store (to `version`) while
/// this process had it open: its statements and rows no longer fit the tables, and the error
/// they gave (a column type, a missing column) would not say why.
pub(crate) fn upgraded_meanwhile(version: i64, known: usize) -> StoreError {
    StoreError::Unavailable(format!(
        "the store was upgraded to schema version {version} by a newer release of the provider \
         while this one was running (it knows version {known}); nothing of this operation was \
         written. Stop using this release on the store: upgrade the provider in every process \
         that shares it, then run again"
    ))
}

/// Seconds since the Unix epoch, as `created_at` holds them.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// One held address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    pub subnet_id: String,
    pub ip: IpAddr,
    pub owner_kind: OwnerKind,
    pub owner_id: String,
    pub vm_uuid: Option<String>,
    pub mac: Option<String>,
    pub wire_id: Option<String>,
    /// Taken by an operation that has not finished yet (see ARCHITECTURE.md).
    pub pending: bool,
    /// What the address is for, as its owner describes it.
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl AddressRecord {
    /// "vsphereipam_vm 4213a6f2-... (00:50:56:aa:bb:cc)" for diagnostics.
    pub fn holder(&self) -> String {
        let mut s = match self.owner_kind {
            OwnerKind::Observed => format!("{} (reported by vCenter)", self.owner_id),
            kind => format!("{} {}", kind.as_str(), self.owner_id),
        };
        if let Some(mac) = &self.mac {
            s.push_str(&format!(" (MAC {mac})"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the allocatable range {range} overlaps subnet {other_name:?} ({other_id}), range {other_range}")]
    Overlap {
        range: String,
        other_id: String,
        other_name: String,
        other_range: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{ip} is already held by {holder}")]
    AddressTaken { ip: IpAddr, holder: String },
    #[error("{0}")]
    Refused(String),
    #[error("subnet {name:?} ({id}) has no free address left in {range}")]
    SubnetFull {
        id: String,
        name: String,
        range: String,
    },
    #[error("subnet still holds addresses owned by: {}", owners.join(", "))]
    InUse { owners: Vec<String> },
    #[error("addresses held in the subnet would no longer be allocatable: {}", addresses.join(", "))]
    InTheWay { addresses: Vec<String> },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store holds unexpected data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The primitive queries a backend offers inside one transaction. Private to the store: every
/// caller outside goes through an operation of [`ops`], which keeps the IPAM rules.
trait Tx {
    fn subnets(&mut self, vcenter: Option<&str>) -> Result<Vec<SubnetRecord>>;
    fn subnet(&mut self, id: &str) -> Result<Option<SubnetRecord>>;
    /// Serializes allocations in one subnet against other processes until the transaction ends.
    fn lock_subnet(&mut self, id: &str) -> Result<()>;
    /// Serializes subnet range changes of one vCenter (the overlap check) until the
    /// transaction ends.
    fn lock_vcenter(&mut self, vcenter: &str) -> Result<()>;
    fn put_subnet(&mut self, subnet: &SubnetRecord) -> Result<()>;
    /// Removes the subnet with its wire links, addresses and runs.
    fn delete_subnet(&mut self, id: &str) -> Result<()>;
    fn wire_links(&mut self, subnet_id: &str) -> Result<Vec<WireLink>>;
    /// The wire links of every subnet of a vCenter, with their subnet's id, in one query.
    fn wire_links_in_vcenter(&mut self, vcenter: &str) -> Result<Vec<(String, WireLink)>>;
    fn put_wire_link(&mut self, subnet_id: &str, link: &WireLink) -> Result<()>;
    fn delete_wire_link(&mut self, subnet_id: &str, wire_id: &str) -> Result<()>;
    fn addresses(&mut self, subnet_id: &str) -> Result<Vec<AddressRecord>>;
    fn address(&mut self, subnet_id: &str, ip: IpAddr) -> Result<Option<AddressRecord>>;
    fn addresses_of_owner(&mut self, kind: OwnerKind, owner_id: &str)
        -> Result<Vec<AddressRecord>>;
    fn addresses_of_kind(&mut self, subnet_id: &str, kind: OwnerKind)
        -> Result<Vec<AddressRecord>>;
    /// The records of `kind` in every subnet of a vCenter, in one query.
    fn addresses_of_kind_in_vcenter(
        &mut self,
        vcenter: &str,
        kind: OwnerKind,
    ) -> Result<Vec<AddressRecord>>;
    /// Every record naming the VM, whoever owns it.
    fn addresses_of_vm(&mut self, vm_uuid: &str) -> Result<Vec<AddressRecord>>;
    fn insert_address(&mut self, record: &AddressRecord) -> Result<()>;
    fn delete_address(&mut self, subnet_id: &str, ip: IpAddr) -> Result<()>;
    fn set_description(
        &mut self,
        subnet_id: &str,
        ip: IpAddr,
        description: Option<&str>,
    ) -> Result<()>;
    /// The maximal run of consecutive held addresses that contains `ip`.
    fn run_covering(&mut self, subnet_id: &str, ip: Key) -> Result<Option<Range>>;
    fn insert_run(&mut self, subnet_id: &str, run: Range) -> Result<()>;
    fn delete_run(&mut self, subnet_id: &str, start: Key) -> Result<()>;
}

/// A database that runs closures in transactions: committed when the closure returns `Ok`,
/// rolled back otherwise.
trait Backend: Send + Sync {
    /// `commit` false rolls the transaction back even when `f` succeeds (a dry run).
    fn with_tx(&self, commit: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// What the store is, without credentials, for logs.
    fn describe(&self) -> String;
}

/// Cheap to clone; every IPAM operation of the provider goes through it.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.backend.describe())
    }
}

impl Store {
    fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// Opens the store a URL names (`sqlite://<path>`, `postgres://...` or a PostgreSQL
    /// key=value string `host=... dbname=...`), creating and migrating it as needed.
    pub fn open(url: &str) -> Result<Store> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(Store::new(Arc::new(sqlite::SqliteBackend::open(path)?)));
        }
        if pgconn::is_postgres(url) {
            return Ok(Store::new(Arc::new(postgres::PostgresBackend::open(url)?)));
        }
        Err(StoreError::Unavailable(format!(
            "unsupported store URL {:?}: use sqlite://<path> or postgres://user@host/db",
            crate::redact::redact(url)
        )))
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Runs `f` in one transaction (blocking).
    fn transaction<R>(&self, f: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        self.run(true, f)
    }

    /// Runs `f` in one transaction that is rolled back whatever happens: checks that take
    /// the same locks and see the same rows as the real operation (blocking).
    fn dry_run<R>(&self, f: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        self.run(false, f)
    }

    fn run<R>(&self, commit: bool, mut f: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        let mut out = None;
        self.backend.with_tx(commit, &mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Unavailable("transaction produced no result".into()))
    }

    /// Runs store work on a blocking thread, so a lock wait never stalls the async runtime
    /// that serves Terraform.
    pub async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}
