//! The IPAM operations, written once over the [`Tx`] primitives so every backend behaves the
//! same. Each public function is one transaction: it checks and writes together, so no two
//! callers, in one process or many, can hand out the same address.

use std::collections::HashMap;
use std::net::IpAddr;

use rand::Rng;

use super::{AddressRecord, OwnerKind, Result, Store, StoreError, SubnetRecord, Tx, WireLink};
use crate::ipam::alloc::{self, Held};
use crate::ipam::ranges::{key, Key, Range, RangeSet};

/// What an allocation asks for.
#[derive(Debug, Clone)]
pub struct AllocRequest {
    pub subnet_id: String,
    /// A specific address, or `None` for the next free one under the subnet's policy.
    pub ip: Option<IpAddr>,
    pub owner_kind: OwnerKind,
    pub owner_id: String,
    pub vm_uuid: Option<String>,
    pub mac: Option<String>,
    pub wire_id: Option<String>,
    pub pending: bool,
    pub description: Option<String>,
}

/// A subnet with its wire links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetView {
    pub subnet: SubnetRecord,
    pub links: Vec<WireLink>,
}

impl SubnetView {
    /// Whether a NIC on `wire_id` takes addresses from this subnet: its wire or an additional one.
    pub fn reaches(&self, wire_id: &str) -> bool {
        self.subnet.wire_id == wire_id || self.links.iter().any(|l| l.wire_id == wire_id)
    }

    /// Sorted additional wires: attached or detected.
    pub fn additional_wire_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.links.iter().map(|l| l.wire_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

use super::unix_now as now;

/// Held runs of one subnet as the allocator sees them.
struct TxHeld<'t> {
    tx: &'t mut dyn Tx,
    subnet_id: &'t str,
}

impl Held for TxHeld<'_> {
    type Error = StoreError;
    fn covering(&mut self, ip: Key) -> Result<Option<Range>> {
        self.tx.run_covering(self.subnet_id, ip)
    }
}

/// Marks `ip` held, merging it with the runs on either side.
fn hold(tx: &mut dyn Tx, subnet_id: &str, ip: Key) -> Result<()> {
    let mut run = Range { start: ip, end: ip };
    if let Some(left) = ip
        .checked_sub(1)
        .map(|p| tx.run_covering(subnet_id, p))
        .transpose()?
        .flatten()
    {
        tx.delete_run(subnet_id, left.start)?;
        run.start = left.start;
    }
    if let Some(right) = ip
        .checked_add(1)
        .map(|n| tx.run_covering(subnet_id, n))
        .transpose()?
        .flatten()
    {
        tx.delete_run(subnet_id, right.start)?;
        run.end = right.end;
    }
    tx.insert_run(subnet_id, run)
}

/// Marks `ip` free, splitting its run.
fn unhold(tx: &mut dyn Tx, subnet_id: &str, ip: Key) -> Result<()> {
    let Some(run) = tx.run_covering(subnet_id, ip)? else {
        return Ok(());
    };
    tx.delete_run(subnet_id, run.start)?;
    if run.start < ip {
        tx.insert_run(
            subnet_id,
            Range {
                start: run.start,
                end: ip - 1,
            },
        )?;
    }
    if ip < run.end {
        tx.insert_run(
            subnet_id,
            Range {
                start: ip + 1,
                end: run.end,
            },
        )?;
    }
    Ok(())
}

/// The subnet of the same vCenter whose range overlaps `subnet`'s, other than itself.
fn overlapping(tx: &mut dyn Tx, subnet: &SubnetRecord) -> Result<Option<SubnetRecord>> {
    Ok(subnet
        .first_overlap(&tx.subnets(Some(&subnet.vcenter))?)
        .cloned())
}

fn overlap_error(subnet: &SubnetRecord, other: &SubnetRecord) -> StoreError {
    StoreError::Overlap {
        range: subnet.spec.allocatable().to_string(),
        other_id: other.id.clone(),
        other_name: other.name.clone(),
        other_range: other.spec.allocatable().to_string(),
    }
}

fn get_subnet(tx: &mut dyn Tx, id: &str) -> Result<SubnetRecord> {
    tx.subnet(id)?
        .ok_or_else(|| StoreError::NotFound(format!("subnet {id}")))
}

impl Store {
    /// A fresh id: a new subnet's, or the owner id of an address held by a
    /// `vsphereipam_ip_address`.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// Another subnet of the same vCenter whose range overlaps, without writing anything.
    pub fn find_overlap(&self, subnet: &SubnetRecord) -> Result<Option<SubnetRecord>> {
        self.transaction(|tx| overlapping(tx, subnet))
    }

    /// Stores a new subnet with the wires detected for it, refusing an overlapping range.
    pub fn create_subnet(
        &self,
        subnet: &SubnetRecord,
        detected_wires: &[String],
    ) -> Result<SubnetView> {
        self.transaction(|tx| {
            tx.lock_vcenter(&subnet.vcenter)?;
            if let Some(other) = overlapping(tx, subnet)? {
                return Err(overlap_error(subnet, &other));
            }
            tx.put_subnet(subnet)?;
            for wire_id in detected_wires.iter().filter(|w| **w != subnet.wire_id) {
                tx.put_wire_link(
                    &subnet.id,
                    &WireLink {
                        wire_id: wire_id.clone(),
                        detected: true,
                        attached: false,
                    },
                )?;
            }
            Ok(SubnetView {
                subnet: subnet.clone(),
                links: tx.wire_links(&subnet.id)?,
            })
        })
    }

    pub fn subnet(&self, id: &str) -> Result<Option<SubnetView>> {
        self.transaction(|tx| {
            let Some(subnet) = tx.subnet(id)? else {
                return Ok(None);
            };
            Ok(Some(SubnetView {
                links: tx.wire_links(id)?,
                subnet,
            }))
        })
    }

    pub fn subnets(&self, vcenter: Option<&str>) -> Result<Vec<SubnetRecord>> {
        self.transaction(|tx| tx.subnets(vcenter))
    }

    /// Addresses owned by resources (not observed ones) that `subnet` would no longer allow.
    pub fn addresses_in_the_way(&self, subnet: &SubnetRecord) -> Result<Vec<AddressRecord>> {
        self.transaction(|tx| in_the_way(tx, subnet))
    }

    /// Changes a subnet in place (cidr and wire are fixed: changing them replaces it). The
    /// vCenter is the stored one; `subnet.vcenter` is ignored.
    pub fn update_subnet(&self, subnet: &SubnetRecord) -> Result<SubnetView> {
        self.transaction(|tx| {
            let old = get_subnet(tx, &subnet.id)?;
            let subnet = &SubnetRecord {
                vcenter: old.vcenter.clone(),
                ..subnet.clone()
            };
            tx.lock_vcenter(&subnet.vcenter)?;
            tx.lock_subnet(&subnet.id)?;
            if old.spec.cidr != subnet.spec.cidr || old.wire_id != subnet.wire_id {
                return Err(StoreError::Refused(
                    "cidr and wire_id cannot change in place".into(),
                ));
            }
            if let Some(other) = overlapping(tx, subnet)? {
                return Err(overlap_error(subnet, &other));
            }
            let blocking = in_the_way(tx, subnet)?;
            if !blocking.is_empty() {
                return Err(StoreError::InTheWay {
                    addresses: blocking
                        .iter()
                        .map(|a| format!("{} ({})", a.ip, a.holder()))
                        .collect(),
                });
            }
            // Observed addresses that fall outside the new range are no longer the subnet's.
            for gone in tx
                .addresses(&subnet.id)?
                .into_iter()
                .filter(|a| subnet.spec.refusal(a.ip).is_some())
            {
                tx.delete_address(&subnet.id, gone.ip)?;
                unhold(tx, &subnet.id, key(gone.ip))?;
            }
            tx.put_subnet(subnet)?;
            Ok(SubnetView {
                subnet: subnet.clone(),
                links: tx.wire_links(&subnet.id)?,
            })
        })
    }

    /// Deletes a subnet unless resources still own addresses in it.
    pub fn delete_subnet(&self, id: &str) -> Result<()> {
        self.transaction(|tx| {
            tx.lock_subnet(id)?;
            let owners: Vec<String> = tx
                .addresses(id)?
                .iter()
                .filter(|a| a.owner_kind != OwnerKind::Observed)
                .map(|a| format!("{} {}", a.holder(), a.ip))
                .collect();
            if !owners.is_empty() {
                return Err(StoreError::InUse { owners });
            }
            tx.delete_subnet(id)
        })
    }

    /// Attaches a wire explicitly; an automatically detected link is kept as such.
    pub fn attach_wire(&self, subnet_id: &str, wire_id: &str) -> Result<SubnetView> {
        self.transaction(|tx| {
            let subnet = get_subnet(tx, subnet_id)?;
            if subnet.wire_id == wire_id {
                return Err(StoreError::Refused(format!(
                    "{wire_id} is the subnet's own wire; only other wires can be attached"
                )));
            }
            let links = tx.wire_links(subnet_id)?;
            // One explicit attachment per pair: with two, destroying either would detach both.
            if links.iter().any(|l| l.wire_id == wire_id && l.attached) {
                return Err(StoreError::Refused(format!(
                    "{wire_id} is already attached to subnet {:?} by another \
                     vsphereipam_subnet_additional_wire; keep one resource per attachment (import \
                     the existing one as {subnet_id}/{wire_id})",
                    subnet.name
                )));
            }
            let detected = links.iter().any(|l| l.wire_id == wire_id && l.detected);
            tx.put_wire_link(
                subnet_id,
                &WireLink {
                    wire_id: wire_id.into(),
                    detected,
                    attached: true,
                },
            )?;
            Ok(SubnetView {
                subnet,
                links: tx.wire_links(subnet_id)?,
            })
        })
    }

    /// Removes an explicit attachment; a detected link stays.
    pub fn detach_wire(&self, subnet_id: &str, wire_id: &str) -> Result<()> {
        self.transaction(|tx| {
            let link = tx
                .wire_links(subnet_id)?
                .into_iter()
                .find(|l| l.wire_id == wire_id);
            match link {
                Some(l) if l.detected => tx.put_wire_link(
                    subnet_id,
                    &WireLink {
                        attached: false,
                        ..l
                    },
                ),
                Some(_) => tx.delete_wire_link(subnet_id, wire_id),
                None => Ok(()),
            }
        })
    }

    /// Takes an address: the requested one if it is free, else the next free one under the
    /// subnet's policy. `observed` holds addresses vCenter reports in use on the subnet's
    /// wires, which no resource owns but which must never be handed out.
    pub fn allocate(&self, req: &AllocRequest, observed: &RangeSet) -> Result<AddressRecord> {
        self.allocate_with(req, observed, OnConflict::Error)
    }

    /// [`allocate`](Self::allocate), and what a requested address that a record or vCenter
    /// already holds gets: an error naming the holder, or the next free address. An address
    /// the subnet can never hand out (outside the range, reserved, the gateway) is refused
    /// either way: that is a configuration mistake, not a conflict.
    pub fn allocate_with(
        &self,
        req: &AllocRequest,
        observed: &RangeSet,
        on_conflict: OnConflict,
    ) -> Result<AddressRecord> {
        self.transaction(|tx| allocate_resolving(tx, req, observed, on_conflict))
    }

    /// The address [`allocate_with`](Self::allocate_with) would hand out now, or its error, in
    /// a transaction that is rolled back (for plan time).
    pub fn check_allocation(
        &self,
        req: &AllocRequest,
        observed: &RangeSet,
        on_conflict: OnConflict,
    ) -> Result<IpAddr> {
        self.dry_run(|tx| allocate_resolving(tx, req, observed, on_conflict).map(|r| r.ip))
    }

    /// Releases every address an owner holds; returns what was released.
    pub fn release_owner(&self, kind: OwnerKind, owner_id: &str) -> Result<Vec<AddressRecord>> {
        self.transaction(|tx| release_in(tx, kind, owner_id))
    }

    /// Changes the description of every address an owner holds.
    pub fn describe_owner(
        &self,
        kind: OwnerKind,
        owner_id: &str,
        description: Option<&str>,
    ) -> Result<()> {
        self.transaction(|tx| {
            for a in tx.addresses_of_owner(kind, owner_id)? {
                tx.set_description(&a.subnet_id, a.ip, description)?;
            }
            Ok(())
        })
    }

    pub fn addresses(&self, subnet_id: &str) -> Result<Vec<AddressRecord>> {
        self.transaction(|tx| tx.addresses(subnet_id))
    }

    pub fn addresses_of_owner(
        &self,
        kind: OwnerKind,
        owner_id: &str,
    ) -> Result<Vec<AddressRecord>> {
        self.transaction(|tx| tx.addresses_of_owner(kind, owner_id))
    }
}

fn release_in(tx: &mut dyn Tx, kind: OwnerKind, owner_id: &str) -> Result<Vec<AddressRecord>> {
    // Releasing rewrites the held runs (read, then write), so it takes the subnets' locks like
    // an allocation; the records are read again under them, as another transaction may have
    // changed them meanwhile. Without the locks, two releases in one subnet split the same run
    // (on PostgreSQL: a duplicate run, or a run that no longer matches the records).
    let mut locked = std::collections::BTreeSet::new();
    loop {
        let held = tx.addresses_of_owner(kind, owner_id)?;
        let unlocked: std::collections::BTreeSet<String> = held
            .iter()
            .map(|a| a.subnet_id.clone())
            .filter(|s| !locked.contains(s))
            .collect();
        if unlocked.is_empty() {
            for a in &held {
                tx.delete_address(&a.subnet_id, a.ip)?;
                unhold(tx, &a.subnet_id, key(a.ip))?;
            }
            return Ok(held);
        }
        for subnet in unlocked {
            tx.lock_subnet(&subnet)?;
            locked.insert(subnet);
        }
    }
}

fn in_the_way(tx: &mut dyn Tx, subnet: &SubnetRecord) -> Result<Vec<AddressRecord>> {
    Ok(tx
        .addresses(&subnet.id)?
        .into_iter()
        .filter(|a| a.owner_kind != OwnerKind::Observed && subnet.spec.refusal(a.ip).is_some())
        .collect())
}

/// What a requested address that is already held gets (`on_conflict` of
/// `vsphereipam_ip_address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// An error naming the holder.
    #[default]
    Error,
    /// The next free address under the subnet's policy.
    NextFree,
}

impl OnConflict {
    pub const ALL: [OnConflict; 2] = [OnConflict::Error, OnConflict::NextFree];

    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Error => "error",
            OnConflict::NextFree => "next_free",
        }
    }
}

impl std::str::FromStr for OnConflict {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        OnConflict::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not \"error\" or \"next_free\""))
    }
}

fn allocate_resolving(
    tx: &mut dyn Tx,
    req: &AllocRequest,
    observed: &RangeSet,
    on_conflict: OnConflict,
) -> Result<AddressRecord> {
    let rng = &mut rand::thread_rng();
    match allocate_in(tx, req, observed, rng) {
        // allocate_in checks before it writes: nothing of the first try is left to undo.
        Err(StoreError::AddressTaken { .. }) if on_conflict == OnConflict::NextFree => {
            let next = AllocRequest {
                ip: None,
                ..req.clone()
            };
            allocate_in(tx, &next, observed, rng)
        }
        other => other,
    }
}

fn allocate_in(
    tx: &mut dyn Tx,
    req: &AllocRequest,
    observed: &RangeSet,
    rng: &mut impl Rng,
) -> Result<AddressRecord> {
    tx.lock_subnet(&req.subnet_id)?;
    let subnet = get_subnet(tx, &req.subnet_id)?;
    let mut exclusions = subnet.spec.static_exclusions();
    for r in observed.iter() {
        exclusions.insert(r);
    }
    let ip = match req.ip {
        Some(ip) => {
            if let Some(why) = subnet.spec.refusal(ip) {
                return Err(StoreError::Refused(format!(
                    "{why} of subnet {:?}",
                    subnet.name
                )));
            }
            if let Some(holder) = tx.address(&subnet.id, ip)? {
                return Err(StoreError::AddressTaken {
                    ip,
                    holder: holder.holder(),
                });
            }
            if observed.contains(key(ip)) {
                return Err(StoreError::AddressTaken {
                    ip,
                    holder: "a VM whose VMware Tools report it".into(),
                });
            }
            ip
        }
        None => {
            let range = subnet.spec.allocatable();
            let mut held = TxHeld {
                tx: &mut *tx,
                subnet_id: &subnet.id,
            };
            alloc::allocate(range, &exclusions, &mut held, subnet.spec.policy, rng)?.ok_or_else(
                || StoreError::SubnetFull {
                    id: subnet.id.clone(),
                    name: subnet.name.clone(),
                    range: range.to_string(),
                },
            )?
        }
    };
    let record = AddressRecord {
        subnet_id: subnet.id.clone(),
        ip,
        owner_kind: req.owner_kind,
        owner_id: req.owner_id.clone(),
        vm_uuid: req.vm_uuid.clone(),
        mac: req.mac.clone(),
        wire_id: req.wire_id.clone(),
        pending: req.pending,
        description: req.description.clone(),
        created_at: now(),
    };
    tx.insert_address(&record)?;
    hold(tx, &subnet.id, key(ip))?;
    Ok(record)
}

/// One NIC address of an existing VM to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicClaim {
    pub subnet_id: String,
    pub ip: IpAddr,
    pub mac: String,
    pub wire_id: String,
}

/// Why a claim was refused, and which one (index into the claims) when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError {
    pub index: Option<usize>,
    pub error: StoreError,
}

impl From<StoreError> for ClaimError {
    fn from(error: StoreError) -> Self {
        ClaimError { index: None, error }
    }
}

/// An address vCenter reports in use, as an observed record would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub ip: IpAddr,
    /// The wire it was reported on.
    pub wire_id: String,
    /// Who reports it, for people: `VM "web-1" (4213...)` or `host "esx-1" vmk1`.
    pub who: String,
    pub vm_uuid: Option<String>,
    pub mac: Option<String>,
}

impl Store {
    /// The vCenter's subnets with their wires and every record in them, read in one rolled-back
    /// transaction rather than one per subnet.
    pub fn subnets_with_records(
        &self,
        vcenter: &str,
    ) -> Result<Vec<(SubnetView, Vec<AddressRecord>)>> {
        self.read(|tx| {
            views_in(tx, vcenter)?
                .into_iter()
                .map(|view| {
                    let records = tx.addresses(&view.subnet.id)?;
                    Ok((view, records))
                })
                .collect()
        })
    }

    /// Every subnet of a vCenter with its wire links (ordered by range), in one read.
    pub fn subnet_views(&self, vcenter: &str) -> Result<Vec<SubnetView>> {
        self.read(|tx| views_in(tx, vcenter))
    }

    /// Of `(wire, subnet)` pairs (a NIC's wire now, the subnet its address came from), the
    /// indexes of those whose wire no longer reaches the subnet, or whose subnet is gone.
    pub fn off_their_subnet(&self, pairs: &[(String, String)]) -> Result<Vec<usize>> {
        let mut off = Vec::new();
        for (i, (wire, subnet)) in pairs.iter().enumerate() {
            if !self.subnet(subnet)?.is_some_and(|v| v.reaches(wire)) {
                off.push(i);
            }
        }
        Ok(off)
    }

    pub fn addresses_of_vm(&self, vm_uuid: &str) -> Result<Vec<AddressRecord>> {
        self.transaction(|tx| tx.addresses_of_vm(vm_uuid))
    }

    /// Records the addresses of a VM's NICs for `owner`, all or none. `reported` names who
    /// vCenter reports using an address on the subnet's wires, other than the VM itself. The
    /// VM's own observed record of an address becomes the owner's record.
    pub fn claim_nics(
        &self,
        owner: (OwnerKind, &str),
        vm_uuid: &str,
        claims: &[NicClaim],
        reported: &dyn Fn(&NicClaim) -> Option<String>,
    ) -> Result<Vec<AddressRecord>, ClaimError> {
        self.run_located(true, |tx| {
            claim_in(tx, owner, vm_uuid, claims, reported, true)
        })
    }

    /// [`claim_nics`](Self::claim_nics) after releasing what `owner` holds, in the same
    /// transaction: a re-import that is refused leaves the records it had in place.
    pub fn reclaim_nics(
        &self,
        owner: (OwnerKind, &str),
        vm_uuid: &str,
        claims: &[NicClaim],
        reported: &dyn Fn(&NicClaim) -> Option<String>,
    ) -> Result<Vec<AddressRecord>, ClaimError> {
        self.run_located(true, |tx| {
            release_in(tx, owner.0, owner.1)?;
            claim_in(tx, owner, vm_uuid, claims, reported, true)
        })
    }

    /// The checks of [`claim_nics`](Self::claim_nics) without writing, for plan time.
    pub fn check_claims(
        &self,
        owner: (OwnerKind, &str),
        vm_uuid: &str,
        claims: &[NicClaim],
        reported: &dyn Fn(&NicClaim) -> Option<String>,
    ) -> Result<(), ClaimError> {
        self.run_located(false, |tx| {
            claim_in(tx, owner, vm_uuid, claims, reported, false).map(drop)
        })
    }

    /// Makes the observed records of a vCenter's subnets match what it reports now: an address
    /// reported on a subnet's wire or additional wire inside its range is recorded as observed
    /// unless a record holds it already; observed records no longer reported go. Returns how
    /// many records were added and removed.
    pub fn sync_observed(
        &self,
        vcenter: &str,
        observations: &[Observation],
    ) -> Result<(usize, usize)> {
        self.transaction(|tx| {
            let (mut added, mut removed) = (0, 0);
            // Three queries whatever the number of subnets; a subnet whose observed records
            // match what vCenter reports is neither locked nor written.
            let mut observed: HashMap<String, Vec<AddressRecord>> = HashMap::new();
            for a in tx.addresses_of_kind_in_vcenter(vcenter, OwnerKind::Observed)? {
                observed.entry(a.subnet_id.clone()).or_default().push(a);
            }
            for SubnetView { subnet, links } in views_in(tx, vcenter)? {
                let mut wires = vec![subnet.wire_id.clone()];
                wires.extend(links.into_iter().map(|l| l.wire_id));
                let range = subnet.spec.allocatable();
                let mut wanted: Vec<&Observation> = observations
                    .iter()
                    .filter(|o| wires.contains(&o.wire_id) && range.contains(key(o.ip)))
                    .collect();
                wanted.sort_by_key(|o| o.ip);
                wanted.dedup_by_key(|o| o.ip);
                let current = observed.remove(&subnet.id).unwrap_or_default();
                let stale: Vec<&AddressRecord> = current
                    .iter()
                    .filter(|a| !wanted.iter().any(|o| o.ip == a.ip && o.who == a.owner_id))
                    .collect();
                let fresh: Vec<&&Observation> = wanted
                    .iter()
                    .filter(|o| !current.iter().any(|a| a.ip == o.ip && a.owner_id == o.who))
                    .collect();
                if stale.is_empty() && fresh.is_empty() {
                    continue;
                }
                tx.lock_subnet(&subnet.id)?;
                for a in stale {
                    tx.delete_address(&subnet.id, a.ip)?;
                    unhold(tx, &subnet.id, key(a.ip))?;
                    removed += 1;
                }
                for o in fresh {
                    if tx.address(&subnet.id, o.ip)?.is_some() {
                        continue;
                    }
                    tx.insert_address(&AddressRecord {
                        subnet_id: subnet.id.clone(),
                        ip: o.ip,
                        owner_kind: OwnerKind::Observed,
                        owner_id: o.who.clone(),
                        vm_uuid: o.vm_uuid.clone(),
                        mac: o.mac.clone(),
                        wire_id: Some(o.wire_id.clone()),
                        pending: false,
                        description: None,
                        created_at: now(),
                    })?;
                    hold(tx, &subnet.id, key(o.ip))?;
                    added += 1;
                }
            }
            Ok((added, removed))
        })
    }
}

/// The vCenter's subnets (ordered by range) with their wire links, in two queries.
fn views_in(tx: &mut dyn Tx, vcenter: &str) -> Result<Vec<SubnetView>> {
    let mut links: HashMap<String, Vec<WireLink>> = HashMap::new();
    for (subnet_id, link) in tx.wire_links_in_vcenter(vcenter)? {
        links.entry(subnet_id).or_default().push(link);
    }
    Ok(tx
        .subnets(Some(vcenter))?
        .into_iter()
        .map(|subnet| SubnetView {
            links: links.remove(&subnet.id).unwrap_or_default(),
            subnet,
        })
        .collect())
}

fn claim_in(
    tx: &mut dyn Tx,
    (kind, owner_id): (OwnerKind, &str),
    vm_uuid: &str,
    claims: &[NicClaim],
    reported: &dyn Fn(&NicClaim) -> Option<String>,
    write: bool,
) -> Result<Vec<AddressRecord>, ClaimError> {
    let at = |index: usize| {
        move |error: StoreError| ClaimError {
            index: Some(index),
            error,
        }
    };
    // A check plans a create; for a replacement the owner's current records are still there
    // and go before the create runs, so they are not in the way.
    let replaced = |a: &AddressRecord| !write && a.owner_kind == kind && a.owner_id == owner_id;
    let recorded: Vec<AddressRecord> = tx
        .addresses_of_vm(vm_uuid)?
        .into_iter()
        .filter(|a| a.owner_kind != OwnerKind::Observed && !replaced(a))
        .collect();
    let mut out = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        if let Some(a) = recorded
            .iter()
            .find(|a| a.mac.as_deref() == Some(&claim.mac))
        {
            return Err(at(i)(StoreError::Refused(format!(
                "NIC {} of VM {vm_uuid} already has address {} recorded by {}",
                claim.mac,
                a.ip,
                a.holder()
            ))));
        }
        tx.lock_subnet(&claim.subnet_id).map_err(at(i))?;
        let subnet = get_subnet(tx, &claim.subnet_id).map_err(at(i))?;
        let range = subnet.spec.allocatable();
        if !range.contains(key(claim.ip)) {
            return Err(at(i)(StoreError::Refused(format!(
                "{} is outside the range {range} of subnet {:?}",
                claim.ip, subnet.name
            ))));
        }
        let own_observed = |a: &AddressRecord| {
            a.owner_kind == OwnerKind::Observed && a.vm_uuid.as_deref() == Some(vm_uuid)
        };
        match tx.address(&subnet.id, claim.ip).map_err(at(i))? {
            // The VM's own reported address becomes the owner's record.
            Some(a) if own_observed(&a) && write => {
                tx.delete_address(&subnet.id, a.ip).map_err(at(i))?;
                unhold(tx, &subnet.id, key(a.ip)).map_err(at(i))?;
            }
            Some(a) if own_observed(&a) || replaced(&a) => {}
            Some(a) => {
                return Err(at(i)(StoreError::AddressTaken {
                    ip: claim.ip,
                    holder: a.holder(),
                }))
            }
            None => {}
        }
        if let Some(holder) = reported(claim) {
            return Err(at(i)(StoreError::AddressTaken {
                ip: claim.ip,
                holder,
            }));
        }
        let record = AddressRecord {
            subnet_id: subnet.id.clone(),
            ip: claim.ip,
            owner_kind: kind,
            owner_id: owner_id.to_string(),
            vm_uuid: Some(vm_uuid.to_string()),
            mac: Some(claim.mac.clone()),
            wire_id: Some(claim.wire_id.clone()),
            pending: false,
            description: None,
            created_at: now(),
        };
        if write {
            tx.insert_address(&record).map_err(at(i))?;
            hold(tx, &subnet.id, key(claim.ip)).map_err(at(i))?;
        } else if out
            .iter()
            .any(|r: &AddressRecord| r.subnet_id == record.subnet_id && r.ip == record.ip)
        {
            return Err(at(i)(StoreError::AddressTaken {
                ip: claim.ip,
                holder: format!("another nic block of this {}", kind.as_str()),
            }));
        }
        out.push(record);
    }
    Ok(out)
}

/// A VM NIC's address as the VM got it: which record (by address) belongs to which NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicAddress {
    pub subnet_id: String,
    pub ip: IpAddr,
    pub mac: String,
    pub wire_id: String,
}

/// An owner whose records are all still pending, with the time the oldest was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOwner {
    pub owner_id: String,
    pub created_at: i64,
    pub addresses: Vec<IpAddr>,
}

impl Store {
    /// Takes one address per request, all or none, in one transaction. `observed[i]` is what
    /// vCenter reports on the wires of request `i`'s subnet. The error names the request.
    pub fn allocate_all(
        &self,
        requests: &[AllocRequest],
        observed: &[RangeSet],
    ) -> Result<Vec<AddressRecord>, ClaimError> {
        self.run_located(true, |tx| allocate_each(tx, requests, observed))
    }

    /// The checks of [`allocate_all`](Self::allocate_all) without keeping anything: the
    /// transaction is rolled back. The records of the owners in `released` are taken as gone
    /// (they will be by the time the allocation runs).
    pub fn check_allocations(
        &self,
        requests: &[AllocRequest],
        observed: &[RangeSet],
        released: &[(OwnerKind, String)],
    ) -> Result<(), ClaimError> {
        self.run_located(false, |tx| {
            for (kind, owner) in released {
                release_in(tx, *kind, owner)?;
            }
            allocate_each(tx, requests, observed).map(drop)
        })
    }

    /// Runs `f` in one transaction (committed, or rolled back as a dry run), keeping which
    /// request a failure belongs to.
    fn run_located<R>(
        &self,
        commit: bool,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, ClaimError>,
    ) -> Result<R, ClaimError> {
        let mut failure = None;
        let out = self.run(commit, |tx| {
            f(tx).map_err(|e| {
                let error = e.error.clone();
                failure = Some(e);
                error
            })
        });
        out.map_err(|e| failure.take().unwrap_or(ClaimError::from(e)))
    }

    /// Hands the pending records of `ticket` to the VM that now exists: owner and VM UUID, the
    /// MAC and wire of each NIC (matched by address), no longer pending.
    pub fn finish_pending(
        &self,
        kind: OwnerKind,
        ticket: &str,
        vm_uuid: &str,
        nics: &[NicAddress],
    ) -> Result<Vec<AddressRecord>> {
        self.transaction(|tx| {
            let mut out = Vec::new();
            for record in tx.addresses_of_owner(kind, ticket)? {
                let nic = nics
                    .iter()
                    .find(|n| n.subnet_id == record.subnet_id && n.ip == record.ip);
                let done = AddressRecord {
                    owner_id: vm_uuid.to_string(),
                    vm_uuid: Some(vm_uuid.to_string()),
                    mac: nic.map(|n| n.mac.clone()).or(record.mac.clone()),
                    wire_id: nic.map(|n| n.wire_id.clone()).or(record.wire_id.clone()),
                    pending: false,
                    ..record.clone()
                };
                // The address stays held: only the row changes, not the held runs.
                tx.delete_address(&record.subnet_id, record.ip)?;
                tx.insert_address(&done)?;
                out.push(done);
            }
            Ok(out)
        })
    }

    /// Owners of `kind` in a vCenter's subnets whose records are pending.
    pub fn pending_owners(&self, vcenter: &str, kind: OwnerKind) -> Result<Vec<PendingOwner>> {
        self.transaction(|tx| {
            let mut owners: Vec<PendingOwner> = Vec::new();
            for subnet in tx.subnets(Some(vcenter))? {
                for a in tx.addresses_of_kind(&subnet.id, kind)? {
                    if !a.pending {
                        continue;
                    }
                    match owners.iter_mut().find(|o| o.owner_id == a.owner_id) {
                        Some(o) => {
                            o.created_at = o.created_at.min(a.created_at);
                            o.addresses.push(a.ip);
                        }
                        None => owners.push(PendingOwner {
                            owner_id: a.owner_id.clone(),
                            created_at: a.created_at,
                            addresses: vec![a.ip],
                        }),
                    }
                }
            }
            Ok(owners)
        })
    }
}

fn allocate_each(
    tx: &mut dyn Tx,
    requests: &[AllocRequest],
    observed: &[RangeSet],
) -> Result<Vec<AddressRecord>, ClaimError> {
    let none = RangeSet::new();
    let mut rng = rand::thread_rng();
    // Requested addresses first: a NIC taking the next free address must not take the one
    // another NIC of the same request asks for.
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| requests[i].ip.is_none());
    let mut out: Vec<Option<AddressRecord>> = vec![None; requests.len()];
    for i in order {
        let record = allocate_in(tx, &requests[i], observed.get(i).unwrap_or(&none), &mut rng)
            .map_err(|error| ClaimError {
                index: Some(i),
                error,
            })?;
        out[i] = Some(record);
    }
    Ok(out.into_iter().flatten().collect())
}

/// How many addresses of a subnet's allocatable range `[start_ip, end_ip]` are in which state.
/// `reserved`, `held` and `observed` may overlap (an observed address inside a reserved range
/// counts in both); `free` counts each address once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubnetCounts {
    /// Addresses of the allocatable range.
    pub size: u128,
    /// Addresses held by records of resources (and manual ones), pending included.
    pub held: u64,
    /// Addresses vCenter reports in use that no resource holds.
    pub observed: u64,
    /// The gateway and the reserved ranges inside the allocatable range.
    pub reserved: u128,
    /// Addresses an allocation could hand out now.
    pub free: u128,
}

/// A subnet, its wires and its counts, read together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetUsage {
    pub view: SubnetView,
    pub counts: SubnetCounts,
}

/// Which subnet to look up: every criterion given must match. `id` alone names one subnet of
/// any vCenter; `name`, `cidr` (its network, e.g. `10.20.0.0/24`) and `wire_id` (the subnet's
/// own wire, not an additional one) search the subnets of the vCenter passed along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetQuery {
    pub id: Option<String>,
    pub name: Option<String>,
    pub cidr: Option<String>,
    pub wire_id: Option<String>,
}

impl SubnetQuery {
    /// `name = "app", cidr = "10.20.0.0/24"`: the criteria given, for messages.
    pub fn describe(&self) -> String {
        [
            ("id", &self.id),
            ("name", &self.name),
            ("cidr", &self.cidr),
            ("wire_id", &self.wire_id),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = {v:?}")))
        .collect::<Vec<_>>()
        .join(", ")
    }

    fn is_empty(&self) -> bool {
        self.id.is_none() && self.name.is_none() && self.cidr.is_none() && self.wire_id.is_none()
    }
}

/// Why a [`SubnetQuery`] found no single subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// None or several subnets matched; `candidates` describes each of several.
    #[error("{}", matches_message(*.count, .query, .candidates))]
    Matches {
        count: usize,
        query: String,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn matches_message(count: usize, query: &str, candidates: &[String]) -> String {
    match count {
        0 => format!("no subnet matches {query}"),
        n => format!("{n} subnets match {query}: {}", candidates.join("; ")),
    }
}

/// Counts of one subnet from its records, in the transaction `tx`.
fn counts_in(tx: &mut dyn Tx, subnet: &SubnetRecord) -> Result<SubnetCounts> {
    let range = subnet.spec.allocatable();
    let reserved = subnet.spec.static_exclusions();
    let mut recorded = RangeSet::new();
    let (mut held, mut observed) = (0, 0);
    for a in tx.addresses(&subnet.id)? {
        recorded.insert(Range::single(a.ip));
        if a.owner_kind == OwnerKind::Observed {
            observed += 1;
        } else {
            held += 1;
        }
    }
    Ok(SubnetCounts {
        size: range.len(),
        held,
        observed,
        reserved: reserved.count_within(range),
        free: alloc::free_count(range, &reserved, &recorded),
    })
}

/// What the `vsphereipam_ip_addresses` data source may filter on; `None` takes all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressFilter {
    pub owner_kind: Option<OwnerKind>,
    pub vm_uuid: Option<String>,
}

impl AddressFilter {
    fn takes(&self, a: &AddressRecord) -> bool {
        self.owner_kind.is_none_or(|k| k == a.owner_kind)
            && self.vm_uuid.as_deref().is_none_or(|want| {
                a.vm_uuid
                    .as_deref()
                    .is_some_and(|have| have.eq_ignore_ascii_case(want))
            })
    }
}

impl Store {
    /// Runs `f` in a transaction that is rolled back: a read, which can never write, even by
    /// mistake, and whose locks end with it.
    fn read<R>(&self, f: impl FnMut(&mut dyn Tx) -> Result<R>) -> Result<R> {
        self.dry_run(f)
    }

    /// The one subnet `query` names, with its wires and counts, in one read transaction.
    /// `vcenter` scopes the search by name, cidr or wire (not a lookup by `id`).
    pub fn find_subnet(
        &self,
        vcenter: Option<&str>,
        query: &SubnetQuery,
    ) -> Result<SubnetUsage, LookupError> {
        if query.is_empty() {
            return Err(StoreError::Refused(
                "name a subnet by id, or by name, cidr or wire_id".into(),
            )
            .into());
        }
        let cidr = match &query.cidr {
            Some(text) => Some(text.parse::<ipnet::IpNet>().map_err(|_| {
                StoreError::Refused(format!(
                    "cidr {text:?} is not a network such as 10.20.0.0/24 or 2001:db8:0:1::/64"
                ))
            })?),
            None => None,
        };
        let found = self.read(|tx| {
            let candidates = match &query.id {
                Some(id) => tx.subnet(id)?.into_iter().collect(),
                None => tx.subnets(vcenter)?,
            };
            let matching: Vec<SubnetRecord> = candidates
                .into_iter()
                .filter(|s| {
                    query.id.as_ref().is_none_or(|id| *id == s.id)
                        && query.name.as_ref().is_none_or(|n| *n == s.name)
                        && cidr.is_none_or(|c| c == s.spec.cidr)
                        && query.wire_id.as_ref().is_none_or(|w| *w == s.wire_id)
                })
                .collect();
            let [one] = matching.as_slice() else {
                return Ok(Err(LookupError::Matches {
                    count: matching.len(),
                    query: query.describe(),
                    candidates: matching
                        .iter()
                        .map(|s| {
                            format!(
                                "{:?} {} on wire {} (id {})",
                                s.name, s.spec.cidr, s.wire_id, s.id
                            )
                        })
                        .collect(),
                }));
            };
            // Under the subnet's lock, the subnet and its records are read as one state even
            // on PostgreSQL, whose statements each see the latest commit.
            tx.lock_subnet(&one.id)?;
            let Some(subnet) = tx.subnet(&one.id)? else {
                return Ok(Err(LookupError::Matches {
                    count: 0,
                    query: query.describe(),
                    candidates: Vec::new(),
                }));
            };
            let counts = counts_in(tx, &subnet)?;
            Ok(Ok(SubnetUsage {
                view: SubnetView {
                    links: tx.wire_links(&subnet.id)?,
                    subnet,
                },
                counts,
            }))
        })?;
        found
    }

    /// Every subnet (of `vcenter`, or all) with its wires and counts, in one read transaction
    /// so the counts agree with each other.
    pub fn subnet_usages(&self, vcenter: Option<&str>) -> Result<Vec<SubnetUsage>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for subnet in tx.subnets(vcenter)? {
                out.push(SubnetUsage {
                    counts: counts_in(tx, &subnet)?,
                    view: SubnetView {
                        links: tx.wire_links(&subnet.id)?,
                        subnet,
                    },
                });
            }
            Ok(out)
        })
    }

    /// The address records of a subnet that `filter` takes, by address, in one read
    /// transaction; a subnet that does not exist is [`StoreError::NotFound`].
    pub fn subnet_addresses(
        &self,
        subnet_id: &str,
        filter: &AddressFilter,
    ) -> Result<Vec<AddressRecord>> {
        self.read(|tx| {
            get_subnet(tx, subnet_id)?;
            let mut records: Vec<AddressRecord> = tx
                .addresses(subnet_id)?
                .into_iter()
                .filter(|a| filter.takes(a))
                .collect();
            records.sort_by_key(|a| a.ip);
            Ok(records)
        })
    }
}
