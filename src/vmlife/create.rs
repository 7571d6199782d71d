//! Checking a new VM at plan time, creating it, destroying it.
//!
//! Create order, each step undone when a later one fails: place (in memory) → allocate every
//! address (a NIC's `subnet_id` one, then its `ipv6_subnet_id` one on a dual-stack NIC) in one
//! store transaction, as pending records owned by a creation ticket
//! ([`crate::pending`]) → clone, customize, power on (`vm_ops::create_vm`, which finds out the
//! outcome of a call whose answer was lost) → wait for VMware Tools → hand the records to the
//! VM's UUID. Undoing releases the addresses only once no VM of the ticket exists ([`settle`]).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::{sweep, CreateError, Ctx, DestroyError, Held, NicInput, VmRequest};
use crate::ipam::ranges::RangeSet;
use crate::nics;
use crate::pending::Ticket;
use crate::placement::{self, Placement};
use crate::store::ops::{AllocRequest, ClaimError, NicAddress, SubnetView};
use crate::store::{OwnerKind, StoreError};
use crate::vsphere::client::VsphereClient;
use crate::vsphere::model::{Inventory, PortGroupKind, Vm};
use crate::vsphere::vm_ops::{
    self, CreateVm, Ipv4Settings, Ipv6Settings, NicBacking, NicSpec, VmOpError,
};
use crate::vsphere::wire;

/// What the plan of a new VM can already tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanView {
    /// The guest host name the create will use.
    pub hostname: String,
    /// The template's CPU count and memory (what the VM gets when the inputs are unset).
    pub template_cpus: Option<i32>,
    pub template_memory_mb: Option<i64>,
    /// The host's moref when the request names a host.
    pub host: Option<String>,
    /// Whether the template is a Windows one.
    pub windows: bool,
}

/// A VM the create made, with its addresses handed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `config.uuid`, lower case: the owner of its address records.
    pub uuid: String,
    pub moref: String,
    pub host: String,
    pub hostname: String,
    /// The IPv4 addresses VMware Tools reported, sorted (empty when the create did not wait).
    pub guest_ips: Vec<Ipv4Addr>,
    /// In the order of the request's NICs.
    pub nics: Vec<CreatedNic>,
    pub template_cpus: Option<i32>,
    pub template_memory_mb: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedNic {
    pub subnet_id: String,
    pub ip: IpAddr,
    /// A dual-stack NIC's IPv6 subnet and address.
    pub ipv6_subnet_id: Option<String>,
    pub ipv6: Option<IpAddr>,
    pub mac: String,
    pub wire_id: String,
    pub port_group: Option<String>,
}

pub(super) async fn inventory(ctx: Ctx<'_>) -> Result<Arc<Inventory>, CreateError> {
    ctx.cache
        .get()
        .await
        .map_err(|e| CreateError::Inventory(format!("{e:#}")))
}

async fn subnet_views(ctx: Ctx<'_>, inventory: &Inventory) -> Result<Vec<SubnetView>, CreateError> {
    let vcenter = inventory.instance_uuid.clone();
    ctx.store
        .blocking(move |s| s.subnet_views(&vcenter))
        .await
        .map_err(CreateError::Store)
}

/// The datacenter of a VM, by its host.
pub fn vm_datacenter<'i>(inventory: &'i Inventory, vm: &Vm) -> Option<&'i str> {
    let host = vm.host.as_deref()?;
    inventory
        .hosts
        .iter()
        .find(|h| h.moref == host)
        .map(|h| h.datacenter.as_str())
}

/// The template (or VM) to clone, by name or UUID, in the datacenter.
pub fn find_template<'i>(
    inventory: &'i Inventory,
    datacenter: &str,
    template: &str,
) -> Result<&'i Vm, String> {
    let found: Vec<&Vm> = inventory
        .vms
        .iter()
        .filter(|vm| vm.name == template || vm.uuid.eq_ignore_ascii_case(template))
        .filter(|vm| vm_datacenter(inventory, vm).is_none_or(|dc| dc == datacenter))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "No template or VM named {template:?} (or with that UUID) in datacenter \
             {datacenter:?}. Give the name or `config.uuid` of the template to clone."
        )),
        many => Err(format!(
            "{} VMs are named {template:?} in datacenter {datacenter:?} ({}); give the UUID of \
             the one to clone.",
            many.len(),
            many.iter()
                .map(|v| v.uuid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub fn is_windows(template: &Vm) -> bool {
    template.guest_family.as_deref() == Some("windowsGuest")
}

/// The subnets of one NIC: its `subnet_id`'s and, on a dual-stack NIC, its IPv6 one.
#[derive(Debug, Clone, Copy)]
pub struct NicSubnets<'s> {
    pub subnet: &'s SubnetView,
    pub ipv6: Option<&'s SubnetView>,
}

impl<'s> NicSubnets<'s> {
    /// Both subnets, `subnet_id`'s first.
    pub fn all(&self) -> Vec<&'s SubnetView> {
        std::iter::once(self.subnet).chain(self.ipv6).collect()
    }
}

/// The subnet views of each NIC, in order: `subnet_id` of either family, `ipv6_subnet_id` an
/// IPv6 subnet beside an IPv4 one.
pub fn subnets_of<'s>(
    views: &'s [SubnetView],
    nics: &[NicInput],
    store: &str,
) -> Result<Vec<NicSubnets<'s>>, CreateError> {
    let find = |index: usize, id: &str, ipv6: bool| {
        views
            .iter()
            .find(|v| v.subnet.id == id)
            .ok_or_else(|| CreateError::SubnetMissing {
                index,
                subnet_id: id.to_string(),
                store: store.to_string(),
                ipv6,
            })
    };
    nics.iter()
        .enumerate()
        .map(|(index, nic)| {
            let subnet = find(index, &nic.subnet_id, false)?;
            let ipv6 = match &nic.ipv6_subnet_id {
                None => None,
                Some(id) => {
                    let v6 = find(index, id, true)?;
                    if v6.subnet.spec.is_v4() {
                        return Err(CreateError::Ipv6SubnetIsIpv4 {
                            index,
                            name: v6.subnet.name.clone(),
                            cidr: v6.subnet.spec.cidr.to_string(),
                        });
                    }
                    if !subnet.subnet.spec.is_v4() {
                        return Err(CreateError::TwoIpv6Subnets {
                            index,
                            name: subnet.subnet.name.clone(),
                            cidr: subnet.subnet.spec.cidr.to_string(),
                        });
                    }
                    Some(v6)
                }
            };
            Ok(NicSubnets { subnet, ipv6 })
        })
        .collect()
}

/// Which NIC each allocation request is for, and whether it is the NIC's `ipv6_*` address:
/// one request per address, a NIC's `subnet_id` address first.
fn slots(subnets: &[NicSubnets<'_>]) -> Vec<(usize, bool)> {
    subnets
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::once((i, false)).chain(s.ipv6.map(|_| (i, true))))
        .collect()
}

/// A failed allocation, pointed at the NIC and address it was for.
fn allocation_error(subnets: &[NicSubnets<'_>], mut claim: ClaimError) -> CreateError {
    let slot = claim.index.and_then(|k| slots(subnets).get(k).copied());
    claim.index = slot.map(|(nic, _)| nic);
    CreateError::Allocation {
        claim,
        ipv6: slot.is_some_and(|(_, v6)| v6),
    }
}

fn requests(
    req: &VmRequest,
    subnets: &[NicSubnets<'_>],
    inventory: &Inventory,
    owner: &str,
    portgroups: Option<&[String]>,
) -> (Vec<AllocRequest>, Vec<RangeSet>) {
    let mut reqs = Vec::new();
    let mut observed = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        let nic = &req.nics[i];
        let asked = std::iter::once((s.subnet, nic.ip))
            .chain(s.ipv6.map(|v6| (v6, nic.ipv6.map(IpAddr::V6))));
        for (subnet, ip) in asked {
            reqs.push(AllocRequest {
                subnet_id: subnet.subnet.id.clone(),
                ip,
                owner_kind: OwnerKind::Vm,
                owner_id: owner.to_string(),
                vm_uuid: None,
                mac: None,
                wire_id: portgroups
                    .and_then(|p| p.get(i))
                    .map(|pg| wire::wire_id(inventory, pg)),
                pending: true,
                description: Some(format!("VM {:?}", req.name)),
            });
            observed.push(nics::observed_in(inventory, subnet));
        }
    }
    (reqs, observed)
}

/// Checks a new VM (or a replacement) against vCenter and the store without changing
/// anything: datacenter, template, folder and datastore, subnets, placement, and that every
/// NIC can get its address (a dry-run allocation that is rolled back).
pub async fn check_new(
    ctx: Ctx<'_>,
    inventory: &Inventory,
    req: &VmRequest,
) -> Result<PlanView, CreateError> {
    placement::require_datacenter(inventory, &req.datacenter).map_err(CreateError::Placement)?;
    let template =
        find_template(inventory, &req.datacenter, &req.template).map_err(CreateError::Template)?;
    let hostname = req.hostname.clone().unwrap_or_else(|| {
        super::host_name_of(&req.name, super::host_name_limit(is_windows(template)))
    });
    // Looked up as the create will, so a typo fails the plan, not the apply.
    let client = ctx.cache.client();
    find_path(client, &req.datacenter, "folder", &req.folder).await?;
    find_path(client, &req.datacenter, "datastore", &req.datastore).await?;
    let views = subnet_views(ctx, inventory).await?;
    let subnets = subnets_of(&views, &req.nics, &ctx.store.describe())?;
    let placed = placement::place_nics(
        inventory,
        &req.datacenter,
        &per_nic(&subnets),
        req.host.as_deref(),
        &Default::default(),
    )
    .map_err(CreateError::Placement)?;
    let mut released: Vec<(OwnerKind, String)> = sweep::abandoned(ctx, inventory)
        .await
        .map_err(CreateError::Store)?
        .iter()
        .map(|a| (OwnerKind::Vm, a.ticket.owner_id()))
        .collect();
    // A replacement plans the new VM while the old one still holds its addresses; the old one
    // goes first. It carries the same name, so a VM of that name in the datacenter is taken as
    // gone (if it is another resource's, the create says so). A VM that vanished from vCenter
    // keeps its records until the apply that destroys or replaces it: counted as free too.
    let same_name = |vm: &Vm| {
        vm.name == req.name && vm_datacenter(inventory, vm).is_none_or(|dc| dc == req.datacenter)
    };
    released.extend(
        inventory
            .vms
            .iter()
            .filter(|vm| same_name(vm))
            .map(|vm| (OwnerKind::Vm, vm.uuid.to_ascii_lowercase())),
    );
    let without_replaced;
    let seen: &Inventory = if inventory.vms.iter().any(same_name) {
        let mut copy = inventory.clone();
        copy.vms.retain(|vm| !same_name(vm));
        without_replaced = copy;
        &without_replaced
    } else {
        inventory
    };
    let (reqs, observed) = requests(req, &subnets, seen, "plan", None);
    let live: HashSet<String> = inventory
        .vms
        .iter()
        .map(|vm| vm.uuid.to_ascii_lowercase())
        .collect();
    let subnet_ids: Vec<String> = subnets
        .iter()
        .flat_map(|s| s.all())
        .map(|s| s.subnet.id.clone())
        .collect();
    ctx.store
        .blocking(move |s| {
            for id in &subnet_ids {
                for a in s.addresses(id)? {
                    if a.owner_kind == OwnerKind::Vm && !a.pending && !live.contains(&a.owner_id) {
                        released.push((OwnerKind::Vm, a.owner_id));
                    }
                }
            }
            Ok(s.check_allocations(&reqs, &observed, &released))
        })
        .await
        .unwrap_or_else(|e| Err(ClaimError::from(e)))
        .map_err(|c| allocation_error(&subnets, c))?;
    Ok(PlanView {
        hostname,
        template_cpus: template.num_cpus,
        template_memory_mb: template.memory_mb,
        host: req.host.as_ref().map(|_| placed.host.clone()),
        windows: is_windows(template),
    })
}

/// Inventory path of a folder or datastore given relative to the datacenter.
pub fn inventory_path(datacenter: &str, kind: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.trim_start_matches('/').to_string()
    } else {
        format!("{datacenter}/{kind}/{}", path.trim_matches('/'))
    }
}

/// The moref of the `folder` or `datastore` the request names (`None` when unset).
async fn find_path(
    client: &VsphereClient,
    datacenter: &str,
    attribute: &'static str,
    value: &Option<String>,
) -> Result<Option<String>, CreateError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (kind, what) = match attribute {
        "folder" => ("vm", "VM folder"),
        _ => ("datastore", "datastore"),
    };
    let path = inventory_path(datacenter, kind, value);
    match vm_ops::find_by_path(client, &path).await {
        Ok(Some(moref)) => Ok(Some(moref)),
        Ok(None) => Err(CreateError::PathNotFound {
            attribute,
            what,
            path,
        }),
        Err(e) => Err(CreateError::PathLookup {
            attribute,
            what,
            reason: e.to_string(),
        }),
    }
}

/// How a NIC is connected to its port group.
fn backing(inventory: &Inventory, portgroup: &str) -> Result<NicBacking, CreateError> {
    let pg = inventory
        .portgroups
        .iter()
        .find(|p| p.moref == portgroup)
        .ok_or_else(|| CreateError::PortGroup(format!("Port group {portgroup} is gone.")))?;
    Ok(match pg.kind {
        PortGroupKind::Standard => NicBacking::Standard {
            network: pg.moref.clone(),
        },
        PortGroupKind::Distributed => NicBacking::Distributed {
            switch_uuid: pg.switch_uuid.clone().ok_or_else(|| {
                CreateError::PortGroup(format!(
                    "Port group {portgroup} has no distributed switch UUID in the inventory."
                ))
            })?,
            portgroup_key: pg.key.clone().unwrap_or_else(|| pg.moref.clone()),
        },
    })
}

/// Every subnet of each NIC, for [`placement::place_nics`].
fn per_nic<'s>(subnets: &[NicSubnets<'s>]) -> Vec<Vec<&'s SubnetView>> {
    subnets.iter().map(NicSubnets::all).collect()
}

/// The subnet's gateway as the customization of an address of one family lists it: `pick`
/// keeps a gateway of that family (a subnet's gateway is of its own family; the filter keeps
/// a mismatched one out of the spec).
fn gateways_of<T>(gateway: Option<IpAddr>, pick: impl FnOnce(IpAddr) -> Option<T>) -> Vec<T> {
    gateway.and_then(pick).into_iter().collect()
}

/// The customization of a NIC: its addresses (`ips`, one per subnet of `subnets.all()`) with
/// their subnets' prefix and gateway, and the DNS servers and domain of its subnets (the
/// `subnet_id` subnet's first).
fn nic_spec(backing: NicBacking, subnets: &NicSubnets<'_>, ips: &[IpAddr]) -> NicSpec {
    let mut nic = NicSpec {
        backing,
        ipv4: None,
        ipv6: None,
        dns_servers: Vec::new(),
        dns_domain: None,
    };
    for (view, ip) in subnets.all().into_iter().zip(ips) {
        let spec = &view.subnet.spec;
        let prefix_len = spec.cidr.prefix_len();
        match ip {
            IpAddr::V4(ip) => {
                nic.ipv4 = Some(Ipv4Settings {
                    ip: *ip,
                    prefix_len,
                    gateways: gateways_of(spec.gateway, |g| match g {
                        IpAddr::V4(g) => Some(g),
                        IpAddr::V6(_) => None,
                    }),
                })
            }
            IpAddr::V6(ip) => {
                nic.ipv6 = Some(Ipv6Settings {
                    ip: *ip,
                    prefix_len,
                    gateways: gateways_of(spec.gateway, |g| match g {
                        IpAddr::V6(g) => Some(g),
                        IpAddr::V4(_) => None,
                    }),
                })
            }
        }
        for server in &spec.dns_servers {
            if !nic.dns_servers.contains(server) {
                nic.dns_servers.push(*server);
            }
        }
        if nic.dns_domain.is_none() {
            nic.dns_domain = view.subnet.domain.clone();
        }
    }
    nic
}

/// Creates the VM the request describes. Before its first create, a process sweeps the
/// creates that died unfinished ([`sweep::sweep_pending`]).
pub async fn create(ctx: Ctx<'_>, req: &VmRequest) -> Result<Created, CreateError> {
    let first = inventory(ctx).await?;
    ctx.creates
        .swept
        .get_or_init(|| async {
            if sweep::sweep_pending(ctx, &first).await {
                ctx.cache.invalidate().await;
            }
        })
        .await;
    let inventory = inventory(ctx).await?;
    let template = find_template(&inventory, &req.datacenter, &req.template)
        .map_err(CreateError::Template)?
        .clone();
    let views = subnet_views(ctx, &inventory).await?;
    let subnets = subnets_of(&views, &req.nics, &ctx.store.describe())?;
    let client = ctx.cache.client();
    let folder = find_path(client, &req.datacenter, "folder", &req.folder).await?;
    let datastore = find_path(client, &req.datacenter, "datastore", &req.datastore).await?;
    let placed = ctx
        .creates
        .place(&inventory, |extra| {
            placement::place_nics(
                &inventory,
                &req.datacenter,
                &per_nic(&subnets),
                req.host.as_deref(),
                extra,
            )
        })
        .map_err(CreateError::Placement)?;
    let result = create_placed(
        ctx, req, &inventory, &template, &subnets, folder, datastore, &placed,
    )
    .await;
    if result.as_ref().is_err_and(|e| !e.may_have_left_a_vm()) {
        ctx.creates.take_back(&inventory, &placed.host);
    }
    result
}

/// The create once its host is chosen: addresses, the VM, its guest addresses, the records.
#[allow(clippy::too_many_arguments)]
async fn create_placed(
    ctx: Ctx<'_>,
    req: &VmRequest,
    inventory: &Inventory,
    template: &Vm,
    subnets: &[NicSubnets<'_>],
    folder: Option<String>,
    datastore: Option<String>,
    placed: &Placement,
) -> Result<Created, CreateError> {
    let client = ctx.cache.client();
    let windows = is_windows(template);
    let first_domain = subnets
        .first()
        .and_then(|s| s.subnet.subnet.domain.as_deref());
    let guest = req
        .guest
        .family(windows, first_domain)
        .ok_or(CreateError::Guest { windows })?;
    let backings = placed
        .portgroups
        .iter()
        .map(|pg| backing(inventory, pg))
        .collect::<Result<Vec<_>, _>>()?;

    // Addresses first, as pending records of a ticket: from here on every failure is undone.
    let ticket = Ticket::mine();
    let owner = ticket.owner_id();
    let (reqs, observed) = requests(req, subnets, inventory, &owner, Some(&placed.portgroups));
    let records = ctx
        .store
        .blocking(move |s| Ok(s.allocate_all(&reqs, &observed)))
        .await
        .unwrap_or_else(|e| Err(ClaimError::from(e)))
        .map_err(|c| allocation_error(subnets, c))?;
    // The records of each NIC, in the order of `slots`.
    let mut per_nic_ips: Vec<Vec<IpAddr>> = vec![Vec::new(); subnets.len()];
    for ((nic, _), record) in slots(subnets).into_iter().zip(&records) {
        per_nic_ips[nic].push(record.ip);
    }
    let hostname = req
        .hostname
        .clone()
        .unwrap_or_else(|| super::host_name_of(&req.name, super::host_name_limit(windows)));
    let spec = CreateVm {
        name: req.name.clone(),
        source: template.moref.clone(),
        host: placed.host.clone(),
        datastore,
        folder,
        num_cpus: req.num_cpus,
        memory_mb: req.memory_mb,
        hostname: hostname.clone(),
        guest,
        nics: backings
            .into_iter()
            .zip(subnets)
            .zip(&per_nic_ips)
            .map(|((backing, subnets), ips)| nic_spec(backing, subnets, ips))
            .collect(),
        instance_uuid: Some(ticket.instance_uuid.clone()),
    };
    let created = match vm_ops::create_vm(client, &spec).await {
        Ok(c) => c,
        Err(error) => {
            let held = match &error {
                // vCenter could not be asked, or the partial VM could not be removed: a VM of
                // the ticket may exist, so its addresses stay pending for the sweep.
                VmOpError::Unknown { .. } | VmOpError::CreateLeftover { .. } => Held::Pending,
                _ => settle(ctx, &ticket, None).await,
            };
            return Err(CreateError::VCenter { error, held });
        }
    };
    let mut guest_ips: Vec<Ipv4Addr> = Vec::new();
    if req.wait {
        let expected: Vec<(String, IpAddr)> = created
            .macs
            .iter()
            .zip(&per_nic_ips)
            .flat_map(|(mac, ips)| ips.iter().map(move |ip| (mac.clone(), *ip)))
            .collect();
        match vm_ops::wait_for_guest_ips(client, &created.moref, &expected, req.timeout).await {
            Ok(reported) => {
                guest_ips = reported
                    .into_values()
                    .flatten()
                    .filter_map(|ip| match ip {
                        IpAddr::V4(v4) => Some(v4),
                        IpAddr::V6(_) => None,
                    })
                    .collect()
            }
            Err(error) => {
                let held = settle(ctx, &ticket, Some(&created.moref)).await;
                return Err(match error {
                    VmOpError::GuestIpTimeout { .. } => CreateError::GuestIps { error, held },
                    _ => CreateError::VCenter { error, held },
                });
            }
        }
    }
    guest_ips.sort();
    guest_ips.dedup();
    let nics: Vec<CreatedNic> = per_nic_ips
        .iter()
        .zip(subnets)
        .zip(&created.macs)
        .zip(&placed.portgroups)
        .map(|(((ips, s), mac), pg)| CreatedNic {
            subnet_id: s.subnet.subnet.id.clone(),
            ip: ips[0],
            ipv6_subnet_id: s.ipv6.map(|v6| v6.subnet.id.clone()),
            ipv6: ips.get(1).copied(),
            mac: mac.clone(),
            wire_id: wire::wire_id(inventory, pg),
            port_group: inventory
                .portgroups
                .iter()
                .find(|p| &p.moref == pg)
                .map(|p| p.name.clone()),
        })
        .collect();
    let nic_addresses: Vec<NicAddress> = nics
        .iter()
        .flat_map(|n| {
            let v6 = n.ipv6_subnet_id.clone().zip(n.ipv6);
            std::iter::once((n.subnet_id.clone(), n.ip))
                .chain(v6)
                .map(|(subnet_id, ip)| NicAddress {
                    subnet_id,
                    ip,
                    mac: n.mac.clone(),
                    wire_id: n.wire_id.clone(),
                })
        })
        .collect();
    let uuid = created.uuid.to_ascii_lowercase();
    let (finish_uuid, finish_owner) = (uuid.clone(), owner.clone());
    if let Err(error) = ctx
        .store
        .blocking(move |s| {
            s.finish_pending(OwnerKind::Vm, &finish_owner, &finish_uuid, &nic_addresses)
        })
        .await
    {
        let held = settle(ctx, &ticket, Some(&created.moref)).await;
        return Err(CreateError::Record { error, held });
    }
    tracing::info!(
        vm = %created.moref, name = %req.name, host = %created.host,
        addresses = ?records.iter().map(|r| r.ip).collect::<Vec<_>>(),
        "VM created"
    );
    Ok(Created {
        uuid,
        moref: created.moref,
        host: created.host,
        hostname,
        guest_ips,
        nics,
        template_cpus: template.num_cpus,
        template_memory_mb: template.memory_mb,
    })
}

/// Undoes a create of this process: removes the VM (`vm`, else whatever carries the ticket's
/// instance UUID), then releases the ticket's addresses. When vCenter cannot say or the
/// removal fails, they stay pending for a later sweep.
async fn settle(ctx: Ctx<'_>, ticket: &Ticket, vm: Option<&str>) -> Held {
    let client = ctx.cache.client();
    let vm = match vm {
        Some(moref) => Some(moref.to_string()),
        None => match vm_ops::find_by_instance_uuid(client, &ticket.instance_uuid).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("cannot find out whether the failed create left a VM: {e}");
                return Held::Pending;
            }
        },
    };
    if let Some(moref) = &vm {
        if let Err(e) = vm_ops::destroy_vm(client, moref).await {
            tracing::warn!(vm = %moref, "cannot remove the VM of a failed create: {e}");
            return Held::Pending;
        }
    }
    match sweep::release(ctx, &ticket.owner_id()).await {
        Ok(()) => Held::Released,
        Err(e) => {
            tracing::warn!("cannot release the addresses of a failed create: {e}");
            Held::Pending
        }
    }
}

/// Destroys the VM with BIOS UUID `vm_uuid` (powered off first) and releases its addresses.
/// A VM that is already gone only has its addresses released: once vCenter confirms it, not
/// on the snapshot's word alone (the snapshot may predate a VM this process made). On any
/// failure the addresses stay held. Returns how many were released.
pub async fn destroy(ctx: Ctx<'_>, vm_uuid: &str) -> Result<usize, DestroyError> {
    let vm_uuid = vm_uuid.to_ascii_lowercase();
    let inventory = ctx
        .cache
        .get()
        .await
        .map_err(|e| DestroyError::Inventory(format!("{e:#}")))?;
    let client = ctx.cache.client();
    // The moref in the state may be stale (the VM re-registered); the UUID is not.
    let moref = match nics::find_vm(&inventory, &vm_uuid) {
        Some(vm) => Some(vm.moref.clone()),
        None => vm_ops::find_by_uuid(client, &vm_uuid)
            .await
            .map_err(DestroyError::VCenter)?,
    };
    if let Some(moref) = moref {
        vm_ops::destroy_vm(client, &moref)
            .await
            .map_err(DestroyError::VCenter)?;
    }
    let released = ctx
        .store
        .blocking(move |s| s.release_owner(OwnerKind::Vm, &vm_uuid))
        .await
        .map_err(DestroyError::Store)?;
    tracing::info!(
        addresses = released.len(),
        "VM destroyed, addresses released"
    );
    Ok(released.len())
}

impl From<StoreError> for CreateError {
    fn from(e: StoreError) -> Self {
        CreateError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_paths() {
        assert_eq!(inventory_path("DC0", "vm", "prod/web"), "DC0/vm/prod/web");
        assert_eq!(inventory_path("DC0", "vm", "/DC1/vm/x"), "DC1/vm/x");
        assert_eq!(
            inventory_path("DC0", "datastore", "ds1"),
            "DC0/datastore/ds1"
        );
    }
}
