//! Resource `vsphereipam_vm`: a VM cloned from a template whose NICs take their addresses from
//! subnets, placed on a host that carries a port group of every NIC's subnet.
//!
//! Create order, each step undone when a later one fails: place (in memory) → allocate every
//! address in one store transaction, as pending records owned by a creation ticket
//! ([`crate::pending`]) → clone, customize, power on (`vm_ops::create_vm`) → wait for VMware
//! Tools → hand the records to the VM's UUID. A process killed in between leaves pending records
//! that the next process cleans up before its first create ([`sweep_pending`]).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::schema::{AttributeType, Block, Description, NestedBlock, Schema};
use tfplugin::value::{Value, ValueBool, ValueEmpty, ValueList, ValueNumber, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, Resource};

use super::customization::{self, GuestInput, LinuxState, WindowsState};
use super::schema::{computed, optional, optional_computed, required, string_list};
use super::values::{self, known, opt_string, string, strings};
use super::{Session, Shared};
use crate::ipam::ranges::RangeSet;
use crate::nics::{self, NicRequest};
use crate::pending::{self, Abandoned, Ticket};
use crate::placement::{self, Placement, PlacementError};
use crate::store::ops::{AllocRequest, ClaimError, NicAddress, SubnetView};
use crate::store::{AddressRecord, OwnerKind, StoreError};
use crate::vsphere::model::{Inventory, PortGroupKind, Vm};
use crate::vsphere::vm_ops::{self, CreateVm, NicBacking, NicSpec, VmOpError};
use crate::vsphere::wire;

const DEFAULT_TIMEOUT: &str = "10m";
/// vSphere 8's maxima for one VM (hardware version 20).
const MAX_CPUS: i64 = 768;
const MAX_MEMORY_MB: i64 = 24 * 1024 * 1024;

pub struct VmResource {
    shared: Arc<Shared>,
}

impl VmResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicState<'a> {
    pub subnet_id: ValueString<'a>,
    pub ip_address: ValueString<'a>,
    pub mac: ValueString<'a>,
    pub wire_id: ValueString<'a>,
    pub port_group: ValueString<'a>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmState<'a> {
    pub id: ValueString<'a>,
    pub moref: ValueString<'a>,
    pub name: ValueString<'a>,
    pub datacenter: ValueString<'a>,
    pub template: ValueString<'a>,
    pub num_cpus: ValueNumber,
    pub memory_mb: ValueNumber,
    pub host: ValueString<'a>,
    pub host_id: ValueString<'a>,
    pub folder: ValueString<'a>,
    pub datastore: ValueString<'a>,
    pub network_interface: ValueList<Value<NicState<'a>>>,
    pub hostname: ValueString<'a>,
    pub wait_for_guest_ip: ValueBool,
    pub guest_ip_timeout: ValueString<'a>,
    pub power_state: ValueString<'a>,
    pub guest_ip_addresses: ValueList<ValueString<'a>>,
    #[serde(default, with = "customization::optional_block")]
    pub linux: Value<LinuxState<'a>>,
    #[serde(default, with = "customization::optional_block")]
    pub windows: Value<WindowsState<'a>>,
}

pub fn schema() -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            description: Description::markdown(
                "Creates a VM from a template whose NICs get their addresses from subnets, on a \
                 host that can reach them. Each NIC takes an address (the requested one, or the \
                 next free one under the subnet's `alloc_policy`), is connected to a port group \
                 of its subnet's wire (or an additional wire) that the chosen host carries, and \
                 the guest is customized with the address, netmask, gateway, DNS servers and \
                 domain of its subnet, and with the `linux` or `windows` block (after the \
                 template's guest family; Windows templates need a `windows` block with an \
                 `admin_password`). Without `host`, the least loaded host that carries a port \
                 group for every NIC is chosen. Any failure after an address was taken removes \
                 the partial VM and releases its addresses. `num_cpus`, `memory_mb`, `name` and \
                 `host` change in place; a changed NIC subnet or address, `template`, `folder`, \
                 `datastore`, `hostname` or anything in `linux`/`windows` replaces the VM \
                 (customization runs once, at create).\n\n\
                 Drift: a VM powered off outside Terraform is powered on by the next apply, one \
                 moved off its configured `host` is moved back, a NIC moved off its subnet's \
                 wires (or removed) replaces the VM, and guest addresses that differ from the \
                 assigned ones are reported as a warning. A VM deleted outside Terraform leaves \
                 the state and its addresses are released. If the provider is killed in the \
                 middle of a create, the next run on that machine (or any run after an hour) \
                 removes the half-made VM and releases its addresses.\n\n\
                 Import by the VM UUID records the addresses VMware Tools report on its NICs as \
                 the resource's own; inputs vCenter does not keep (`template`, `folder`, \
                 `datastore`, `hostname`, the guest IP wait, the `linux`/`windows` blocks) are \
                 recorded by the first apply without changing the VM.",
            ),
            attributes: map! {
                "id" => computed(AttributeType::String, "The VM's UUID (`config.uuid`)."),
                "moref" => computed(AttributeType::String,
                    "Managed object id of the VM (`vm-123`)."),
                "name" => required(AttributeType::String, "VM name in vCenter. Changes in place."),
                "datacenter" => required(AttributeType::String,
                    "Datacenter to create the VM in, by name."),
                "template" => required(AttributeType::String,
                    "Template or VM to clone, by name or UUID, in the datacenter. Linux or \
                     Windows customization follows its guest family. Changing it replaces the VM."),
                "num_cpus" => optional_computed(AttributeType::Number,
                    "Virtual CPUs; the template's when unset. Changes in place (the VM is powered \
                     off for it when vCenter refuses a hot change)."),
                "memory_mb" => optional_computed(AttributeType::Number,
                    "Memory in MiB; the template's when unset. Changes in place like `num_cpus`."),
                "host" => optional(AttributeType::String,
                    "Host to run on, by name or moref. It must carry a port group of every NIC's \
                     subnet; otherwise the plan fails naming the subnets it cannot reach. Unset: \
                     the least loaded host that can. Changing it moves the VM."),
                "host_id" => computed(AttributeType::String, "Moref of the host the VM runs on."),
                "folder" => optional(AttributeType::String,
                    "VM folder, relative to the datacenter's VM folder (`prod/web`) or as an \
                     absolute inventory path (`/DC0/vm/prod/web`); the datacenter's VM folder when \
                     unset. Changing it replaces the VM."),
                "datastore" => optional(AttributeType::String,
                    "Datastore name for the VM's files; the template's when unset. Changing it \
                     replaces the VM."),
                "hostname" => optional_computed(AttributeType::String,
                    "Guest host name (Windows: computer name, at most 15 characters). Default: \
                     `linux.host_name` or `windows.computer_name` when set, else `name` reduced \
                     to a valid host name. Changing it replaces the VM."),
                "wait_for_guest_ip" => optional_computed(AttributeType::Bool,
                    "Wait until VMware Tools reports exactly the assigned address on every NIC \
                     (default `true`). When it does not within `guest_ip_timeout`, the VM is \
                     removed and its addresses are released."),
                "guest_ip_timeout" => optional_computed(AttributeType::String,
                    "How long to wait for VMware Tools, as a duration such as `10m`, `90s` or \
                     `1h30m` (default `10m`)."),
                "power_state" => computed(AttributeType::String,
                    "`poweredOn`, `poweredOff` or `suspended`, as vCenter reports it."),
                "guest_ip_addresses" => computed(string_list(),
                    "IPv4 addresses VMware Tools reports for the VM, sorted.")
            },
            blocks: map! {
                "network_interface" => NestedBlock::List(Block {
                    version: 1,
                    description: Description::markdown(
                        "One block per NIC, in device order; at least one. The template's NICs \
                         are reused in order, extra ones added, surplus ones removed."),
                    attributes: map! {
                        "subnet_id" => required(AttributeType::String,
                            "Subnet the NIC takes its address from (`vsphereipam_ipsubnet.x.id`). \
                             Changing it replaces the VM."),
                        "ip_address" => optional_computed(AttributeType::String,
                            "Ask for this address; unset: the next free one. Changing it \
                             replaces the VM."),
                        "mac" => computed(AttributeType::String, "MAC address of the NIC."),
                        "wire_id" => computed(AttributeType::String,
                            "Wire of the port group the NIC is connected to."),
                        "port_group" => computed(AttributeType::String,
                            "Name of the port group the NIC is connected to.")
                    },
                    ..Default::default()
                }),
                "linux" => customization::linux_block(),
                "windows" => customization::windows_block()
            },
            ..Default::default()
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Input

fn nic_path(index: usize, attribute: &'static str) -> AttributePath {
    AttributePath::new("network_interface")
        .index(index as i64)
        .attribute(attribute)
}

fn nic_list<'s, 'a>(state: &'s VmState<'a>) -> Vec<&'s NicState<'a>> {
    values::blocks(&state.network_interface)
}

fn nic_list_mut<'s, 'a>(state: &'s mut VmState<'a>) -> Vec<&'s mut NicState<'a>> {
    values::blocks_mut(&mut state.network_interface)
}

/// Go-style durations as Terraform users write them: `90s`, `10m`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit..];
    }
    Some(total)
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

pub(super) fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn validate_config(diags: &mut Diagnostics, config: &VmState<'_>) {
    if let Value::Value(name) = &config.name {
        if name.trim().is_empty() {
            diags.error(
                "Empty VM name",
                "Give the VM a name.",
                AttributePath::new("name"),
            );
        }
    }
    for (attr, value, min, max, limit) in [
        ("num_cpus", &config.num_cpus, 1, MAX_CPUS, ""),
        (
            "memory_mb",
            &config.memory_mb,
            4,
            MAX_MEMORY_MB,
            " (24 TiB)",
        ),
    ] {
        if let Value::Value(n) = value {
            if !(min..=max).contains(n) {
                diags.error(
                    format!("Invalid {attr}"),
                    format!(
                        "{attr} is {n}; give a number from {min} to {max}{limit}, the range \
                         vSphere 8 allows for one VM."
                    ),
                    AttributePath::new(attr),
                );
            }
        }
    }
    if let Value::Value(h) = &config.hostname {
        if !valid_host_name(h) {
            diags.error(
                "Invalid hostname",
                format!(
                    "{h:?} is not a host name: use letters, digits and inner hyphens, at most 63 \
                     characters."
                ),
                AttributePath::new("hostname"),
            );
        }
    }
    customization::validate(diags, &config.linux, &config.windows, &config.hostname);
    if let Value::Value(t) = &config.guest_ip_timeout {
        if parse_duration(t).is_none() {
            diags.error(
                "Invalid guest_ip_timeout",
                format!("{t:?} is not a duration; write e.g. \"10m\", \"90s\" or \"1h30m\"."),
                AttributePath::new("guest_ip_timeout"),
            );
        }
    }
    let no_blocks = match &config.network_interface {
        Value::Value(list) => list.is_empty(),
        Value::Null => true,
        Value::Unknown => false,
    };
    if no_blocks {
        diags.error(
            "No network_interface block",
            "Add at least one network_interface block with the subnet_id the NIC takes its \
             address from.",
            AttributePath::new("network_interface"),
        );
    }
    let mut asked: Vec<(Ipv4Addr, usize)> = Vec::new();
    for (i, nic) in nic_list(config).into_iter().enumerate() {
        if let Value::Value(ip) = &nic.ip_address {
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                diags.error(
                    "Invalid IPv4 address",
                    format!("{ip:?} is not an IPv4 address such as 10.20.0.50."),
                    nic_path(i, "ip_address"),
                );
                continue;
            };
            match asked.iter().find(|(other, _)| *other == ip) {
                Some((_, first)) => diags.error(
                    "Two NICs ask for one address",
                    format!(
                        "network_interface[{first}] and network_interface[{i}] both ask for {ip}; \
                         an address belongs to one NIC. Give each NIC its own ip_address, or \
                         leave it unset on one of them to get the next free address."
                    ),
                    nic_path(i, "ip_address"),
                ),
                None => asked.push((ip, i)),
            }
        }
    }
}

/// One NIC as asked for.
#[derive(Debug, Clone)]
struct NicInput {
    subnet_id: String,
    ip: Option<Ipv4Addr>,
}

/// Every input of a create, known and valid.
#[derive(Debug, Clone)]
struct Input {
    name: String,
    datacenter: String,
    template: String,
    num_cpus: Option<i32>,
    memory_mb: Option<i64>,
    host: Option<String>,
    folder: Option<String>,
    datastore: Option<String>,
    /// The guest's name as configured: the customization block's, else `hostname`.
    hostname: Option<String>,
    guest: GuestInput,
    wait: bool,
    timeout: Duration,
    nics: Vec<NicInput>,
}

/// `None` while some input is unknown (or invalid: `validate` reports it).
fn input_of(config: &VmState<'_>) -> Option<Input> {
    let number = |v: &ValueNumber| values::field_num(v).settled();
    let text = |v: &ValueString<'_>| values::field_str(v).settled();
    let Value::Value(blocks) = &config.network_interface else {
        return None;
    };
    let mut nics = Vec::new();
    for block in blocks {
        let nic = block.as_ref_option()?;
        nics.push(NicInput {
            subnet_id: known(&nic.subnet_id)?,
            ip: match text(&nic.ip_address)? {
                Some(ip) => Some(ip.parse().ok()?),
                None => None,
            },
        });
    }
    if nics.is_empty() {
        return None;
    }
    let wait = match &config.wait_for_guest_ip {
        Value::Unknown => return None,
        Value::Null => true,
        Value::Value(b) => *b,
    };
    let timeout = text(&config.guest_ip_timeout)?.unwrap_or(DEFAULT_TIMEOUT.to_string());
    let guest = customization::input_of(&config.linux, &config.windows)?;
    let hostname = match guest.name() {
        Some(name) => Some(name.to_string()),
        None => text(&config.hostname)?,
    };
    Some(Input {
        name: known(&config.name)?,
        datacenter: known(&config.datacenter)?,
        template: known(&config.template)?,
        num_cpus: number(&config.num_cpus)?.map(|n| n as i32),
        memory_mb: number(&config.memory_mb)?,
        host: text(&config.host)?,
        folder: text(&config.folder)?,
        datastore: text(&config.datastore)?,
        hostname,
        guest,
        wait,
        timeout: parse_duration(&timeout)?,
        nics,
    })
}

/// Defaults of the optional inputs that have one.
fn plan_defaults(planned: &mut VmState<'_>) {
    if planned.wait_for_guest_ip.is_null() {
        planned.wait_for_guest_ip = Value::Value(true);
    }
    if planned.guest_ip_timeout.is_null() {
        planned.guest_ip_timeout = string(DEFAULT_TIMEOUT);
    }
}

/// The plan of a VM to create (new or replacing one): what only the create knows is unknown,
/// and so is every optional input the configuration leaves to it.
fn plan_new_vm(planned: &mut VmState<'_>, config: &VmState<'_>) {
    planned.id = Value::Unknown;
    planned.moref = Value::Unknown;
    planned.host_id = Value::Unknown;
    planned.power_state = Value::Unknown;
    planned.guest_ip_addresses = Value::Unknown;
    if config.num_cpus.is_null() {
        planned.num_cpus = Value::Unknown;
    }
    if config.memory_mb.is_null() {
        planned.memory_mb = Value::Unknown;
    }
    if config.hostname.is_null() {
        planned.hostname = Value::Unknown;
    }
    plan_defaults(planned);
    let asked: Vec<bool> = nic_list(config)
        .iter()
        .map(|n| n.ip_address.is_value())
        .collect();
    for (i, nic) in nic_list_mut(planned).into_iter().enumerate() {
        if !asked.get(i).copied().unwrap_or(false) {
            nic.ip_address = Value::Unknown;
        }
        nic.mac = Value::Unknown;
        nic.wire_id = Value::Unknown;
        nic.port_group = Value::Unknown;
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups

fn vm_datacenter<'i>(inventory: &'i Inventory, vm: &Vm) -> Option<&'i str> {
    let host = vm.host.as_deref()?;
    inventory
        .hosts
        .iter()
        .find(|h| h.moref == host)
        .map(|h| h.datacenter.as_str())
}

/// The template (or VM) to clone, by name or UUID, in the datacenter.
fn find_template<'i>(
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

fn template_or_diag<'i>(
    diags: &mut Diagnostics,
    inventory: &'i Inventory,
    input: &Input,
) -> Option<&'i Vm> {
    find_template(inventory, &input.datacenter, &input.template)
        .map_err(|detail| diags.error("Template not found", detail, AttributePath::new("template")))
        .ok()
}

fn subnets_of<'s>(
    diags: &mut Diagnostics,
    views: &'s [SubnetView],
    nics: &[NicInput],
    store: &str,
) -> Option<Vec<&'s SubnetView>> {
    let mut out = Vec::new();
    for (i, nic) in nics.iter().enumerate() {
        match views.iter().find(|v| v.subnet.id == nic.subnet_id) {
            Some(v) => out.push(v),
            None => diags.error(
                "Subnet not found",
                format!(
                    "No subnet {:?} of this vCenter in the IPAM store {store}. Use the id of a \
                     vsphereipam_ipsubnet.",
                    nic.subnet_id
                ),
                nic_path(i, "subnet_id"),
            ),
        }
    }
    (out.len() == nics.len()).then_some(out)
}

fn placement_error(diags: &mut Diagnostics, e: &PlacementError) {
    let (summary, path) = match e {
        PlacementError::NoDatacenter(..) => {
            ("Datacenter not found", AttributePath::new("datacenter"))
        }
        PlacementError::NoHost(..) => ("Host not found", AttributePath::new("host")),
        PlacementError::Unreachable { .. } => (
            "The host cannot reach the VM's subnets",
            AttributePath::new("host"),
        ),
        PlacementError::NoCandidate { .. } => (
            "No host can reach every subnet of the VM",
            AttributePath::new("network_interface"),
        ),
    };
    let advice = match e {
        PlacementError::Unreachable { .. } => {
            " Choose a host that carries those port groups, or leave `host` unset."
        }
        PlacementError::NoCandidate { .. } => {
            " Add the port groups to a common host, attach an additional wire the hosts carry \
             (vsphereipam_subnet_additional_wire), or use subnets whose wires share a host."
        }
        _ => "",
    };
    diags.error(summary, format!("{e}.{advice}"), path);
}

fn allocation_error(diags: &mut Diagnostics, e: &ClaimError) {
    let path = e.index.map(|i| match e.error {
        StoreError::AddressTaken { .. } | StoreError::Refused(_) => nic_path(i, "ip_address"),
        _ => nic_path(i, "subnet_id"),
    });
    values::store_error_at(diags, &e.error, path);
}

fn requests(
    input: &Input,
    subnets: &[&SubnetView],
    inventory: &Inventory,
    owner: &str,
    portgroups: Option<&[String]>,
) -> (Vec<AllocRequest>, Vec<RangeSet>) {
    let reqs = input
        .nics
        .iter()
        .enumerate()
        .map(|(i, nic)| AllocRequest {
            subnet_id: nic.subnet_id.clone(),
            ip: nic.ip,
            owner_kind: OwnerKind::Vm,
            owner_id: owner.to_string(),
            vm_uuid: None,
            mac: None,
            wire_id: portgroups
                .and_then(|p| p.get(i))
                .map(|pg| wire::wire_id(inventory, pg)),
            pending: true,
            description: Some(format!("VM {:?}", input.name)),
        })
        .collect();
    let observed = subnets
        .iter()
        .map(|s| nics::observed_in(inventory, s))
        .collect();
    (reqs, observed)
}

/// Pending VM tickets of this vCenter whose create is over without having finished; looked up
/// once per process (the store scan would otherwise run for every VM of a plan).
async fn abandoned<'s>(
    session: &'s Session,
    inventory: &Inventory,
) -> Result<&'s [Abandoned], StoreError> {
    let found = session.abandoned.get_or_try_init(|| async {
        let vcenter = inventory.instance_uuid.clone();
        let owners = session
            .store
            .blocking(move |s| s.pending_owners(&vcenter, OwnerKind::Vm))
            .await?;
        let now = crate::store::unix_now();
        let here = pending::this_host();
        Ok::<_, StoreError>(
            owners
                .into_iter()
                .filter_map(|o| {
                    let ticket = Ticket::parse(&o.owner_id)?;
                    let age = Duration::from_secs(now.saturating_sub(o.created_at).max(0) as u64);
                    ticket
                        .abandoned(age, &here, pending::process_alive)
                        .then_some(Abandoned {
                            ticket,
                            addresses: o.addresses,
                        })
                })
                .collect(),
        )
    });
    Ok(found.await?.as_slice())
}

/// Undoes creates whose process died: destroys the VM each left behind (found by the instance
/// UUID it was given) and releases its pending addresses. Returns whether a VM was destroyed,
/// so the caller reloads the snapshot that still shows it.
async fn sweep_pending(session: &Session, inventory: &Inventory) -> bool {
    let tickets = match abandoned(session, inventory).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot look for abandoned VM creates: {e}");
            return false;
        }
    };
    let mut destroyed = false;
    for Abandoned { ticket, addresses } in tickets {
        let leftover = inventory.vms.iter().find(|vm| {
            vm.instance_uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&ticket.instance_uuid))
        });
        if let Some(vm) = leftover {
            match vm_ops::destroy_vm(session.inventory.client(), &vm.moref).await {
                Ok(()) => {
                    destroyed = true;
                    tracing::warn!(vm = %vm.moref, name = %vm.name,
                        "destroyed a VM left behind by an interrupted create");
                }
                Err(e) => {
                    tracing::warn!(vm = %vm.moref, "cannot destroy a VM left behind by an interrupted create: {e}");
                    continue;
                }
            }
        }
        let owner = ticket.owner_id();
        match session
            .store
            .blocking(move |s| s.release_owner(OwnerKind::Vm, &owner))
            .await
        {
            Ok(_) => tracing::warn!(
                ticket = %ticket.owner_id(),
                addresses = ?addresses,
                "released the addresses of an interrupted VM create"
            ),
            Err(e) => tracing::warn!("cannot release the addresses of an interrupted create: {e}"),
        }
    }
    destroyed
}

/// Inventory path of a folder or datastore given relative to the datacenter.
fn inventory_path(datacenter: &str, kind: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.trim_start_matches('/').to_string()
    } else {
        format!("{datacenter}/{kind}/{}", path.trim_matches('/'))
    }
}

/// The guest's name: the customization block's or `hostname`, else `name` reduced to a host
/// name (15 characters for Windows).
fn guest_name(input: &Input, windows: bool) -> String {
    input.hostname.clone().unwrap_or_else(|| {
        let max = if windows {
            customization::MAX_WINDOWS_NAME
        } else {
            63
        };
        host_name_of(&input.name, max)
    })
}

fn is_windows(template: &Vm) -> bool {
    template.guest_family.as_deref() == Some("windowsGuest")
}

fn nic_spec(
    inventory: &Inventory,
    portgroup: &str,
    subnet: &SubnetView,
    ip: Ipv4Addr,
) -> Option<NicSpec> {
    let pg = inventory.portgroups.iter().find(|p| p.moref == portgroup)?;
    let backing = match pg.kind {
        PortGroupKind::Standard => NicBacking::Standard {
            network: pg.moref.clone(),
        },
        PortGroupKind::Distributed => NicBacking::Distributed {
            switch_uuid: pg.switch_uuid.clone()?,
            portgroup_key: pg.key.clone().unwrap_or_else(|| pg.moref.clone()),
        },
    };
    let spec = &subnet.subnet.spec;
    Some(NicSpec {
        backing,
        ip,
        prefix_len: spec.cidr.prefix_len(),
        gateways: spec.gateway.into_iter().collect(),
        dns_servers: spec.dns_servers.clone(),
        dns_domain: subnet.subnet.domain.clone(),
    })
}

fn vm_op_error(diags: &mut Diagnostics, e: &VmOpError, released: bool) {
    let released = if released {
        " Its addresses were released."
    } else {
        " Its addresses stay held as pending; the next run of the provider on this machine \
         releases them (or after an hour, any machine)."
    };
    match e {
        VmOpError::GuestIpTimeout { .. } => diags.error(
            "VMware Tools did not report the assigned addresses",
            format!(
                "{e}. The VM was removed.{released} Check the template's VMware Tools and guest \
                 customization, raise guest_ip_timeout, or set wait_for_guest_ip = false."
            ),
            AttributePath::new("guest_ip_timeout"),
        ),
        VmOpError::Invalid(_) => diags.root_error(
            "vCenter refused the VM",
            format!("{e}. Nothing was created.{released}"),
        ),
        _ => diags.root_error("Creating the VM failed", format!("{e}.{released}")),
    }
}

// ---------------------------------------------------------------------------------------------
// State from vCenter and the store

/// Fills the read-only values from the VM as the snapshot shows it and the store's records.
fn refresh(state: &mut VmState<'_>, inventory: &Inventory, vm: &Vm, records: &[AddressRecord]) {
    state.id = string(vm.uuid.to_ascii_lowercase());
    state.moref = string(vm.moref.clone());
    state.name = string(vm.name.clone());
    state.host_id = opt_string(vm.host.clone());
    state.power_state = string(vm.power_state.clone());
    state.guest_ip_addresses = strings(vm.all_guest_ips());
    if let Some(n) = vm.num_cpus {
        state.num_cpus = Value::Value(n as i64);
    }
    if let Some(m) = vm.memory_mb {
        state.memory_mb = Value::Value(m);
    }
    for nic in nic_list_mut(state) {
        let mac = known(&nic.mac).unwrap_or_default();
        let current = vm.nics.iter().find(|n| same_mac(&n.mac, &mac));
        let pg = current
            .and_then(|n| n.portgroup.as_deref())
            .and_then(|m| inventory.portgroups.iter().find(|p| p.moref == m));
        nic.wire_id = opt_string(pg.map(|p| wire::wire_id(inventory, &p.moref)));
        nic.port_group = opt_string(pg.map(|p| p.name.clone()));
        if current.is_none() {
            // The NIC is gone: plan_update sees no MAC and replaces the VM.
            nic.mac = Value::Null;
        }
        if let Some(r) = records
            .iter()
            .find(|r| same_mac(r.mac.as_deref().unwrap_or_default(), &mac))
        {
            nic.subnet_id = string(r.subnet_id.clone());
            nic.ip_address = string(r.ip.to_string());
        }
    }
}

use nics::same_mac;

/// The VM's records (owned by its lower-case UUID).
async fn records_of(session: &Session, vm_uuid: &str) -> Result<Vec<AddressRecord>, StoreError> {
    let owner = vm_uuid.to_ascii_lowercase();
    session
        .store
        .blocking(move |s| s.addresses_of_owner(OwnerKind::Vm, &owner))
        .await
}

/// A warning when VMware Tools reports addresses on the VM's NICs other than those assigned.
fn guest_drift(diags: &mut Diagnostics, vm: &Vm, records: &[AddressRecord]) {
    if vm.power_state != "poweredOn" {
        return;
    }
    let mut odd = Vec::new();
    for r in records {
        let Some(mac) = r.mac.as_deref() else {
            continue;
        };
        if let Some(reported) = vm.guest_ips.get(&mac.to_ascii_lowercase()) {
            if reported.as_slice() != [r.ip] {
                odd.push(format!(
                    "NIC {mac} has {} assigned but VMware Tools report {}",
                    r.ip,
                    reported
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if !odd.is_empty() {
        diags.root_warning(
            format!("Guest addresses of VM {:?} differ from the IPAM", vm.name),
            format!(
                "{}. The guest's network configuration was changed outside Terraform; fix it in \
                 the guest, or taint the resource to recreate the VM.",
                odd.join("; ")
            ),
        );
    }
}

#[async_trait]
impl Resource for VmResource {
    type State<'a> = VmState<'a>;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        validate_config(diags, &config);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let vm_uuid = known(&state.id)?;
        let inventory = session.inventory_or_diag(diags).await?;
        let Some(vm) = nics::find_vm(&inventory, &vm_uuid) else {
            tracing::info!(%vm_uuid, "VM gone: releasing its addresses");
            let owner = vm_uuid.to_ascii_lowercase();
            if let Err(e) = session
                .store
                .blocking(move |s| s.release_owner(OwnerKind::Vm, &owner))
                .await
            {
                values::store_error(diags, &e, None);
                return Some((state, private_state));
            }
            return None;
        };
        let records = match records_of(&session, &vm_uuid).await {
            Ok(r) => r,
            Err(e) => {
                values::store_error(diags, &e, None);
                return Some((state, private_state));
            }
        };
        let mut fresh = state.clone();
        refresh(&mut fresh, &inventory, vm, &records);
        guest_drift(diags, vm, &records);
        Some((fresh, private_state))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut planned = proposed;
        plan_new_vm(&mut planned, &config);
        // Checks that need vCenter and the store, when every input is known.
        let Some(input) = input_of(&config) else {
            return Some((planned, ValueEmpty::default()));
        };
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        if let Err(e) = placement::require_datacenter(&inventory, &input.datacenter) {
            placement_error(diags, &e);
            return None;
        }
        let template = template_or_diag(diags, &inventory, &input)?;
        let windows = is_windows(template);
        if !customization::check_family(diags, windows, &input.template, &input.guest) {
            return None;
        }
        // Looked up as the create will, so a typo fails the plan, not the apply.
        find_path(diags, &session, &input.datacenter, "folder", &input.folder).await?;
        find_path(
            diags,
            &session,
            &input.datacenter,
            "datastore",
            &input.datastore,
        )
        .await?;
        if planned.hostname.is_unknown() {
            planned.hostname = string(guest_name(&input, windows));
        }
        if let (true, Some(name)) = (windows, &input.hostname) {
            if name.len() > customization::MAX_WINDOWS_NAME
                || name.chars().all(|c| c.is_ascii_digit())
            {
                diags.error(
                    "Invalid Windows computer name",
                    format!(
                        "Template {:?} is a Windows template and {name:?} is not a Windows \
                         computer name: at most {} characters, not only digits. Set a shorter \
                         hostname or windows.computer_name.",
                        input.template,
                        customization::MAX_WINDOWS_NAME
                    ),
                    AttributePath::new("hostname"),
                );
                return None;
            }
        }
        if planned.num_cpus.is_unknown() {
            planned.num_cpus = template.num_cpus.map(i64::from).into();
        }
        if planned.memory_mb.is_unknown() {
            planned.memory_mb = template.memory_mb.into();
        }
        let views = session.subnet_views_or_diag(diags, &inventory).await?;
        let subnets = subnets_of(diags, &views, &input.nics, &session.store.describe())?;
        let placed = match placement::place(
            &inventory,
            &input.datacenter,
            &subnets,
            input.host.as_deref(),
            &Default::default(),
        ) {
            Ok(p) => p,
            Err(e) => {
                placement_error(diags, &e);
                return None;
            }
        };
        if input.host.is_some() {
            planned.host_id = string(placed.host.clone());
        }
        let mut released: Vec<(OwnerKind, String)> = match abandoned(&session, &inventory).await {
            Ok(t) => t
                .iter()
                .map(|a| (OwnerKind::Vm, a.ticket.owner_id()))
                .collect(),
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        };
        // A replacement plans the new VM while the old one still holds its addresses; the
        // old one goes first. It carries the same name, so a VM of that name in the
        // datacenter is taken as gone (if it is another resource's, the create says so).
        let same_name = |vm: &Vm| {
            vm.name == input.name
                && vm_datacenter(&inventory, vm).is_none_or(|dc| dc == input.datacenter)
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
            let mut copy = (*inventory).clone();
            copy.vms.retain(|vm| !same_name(vm));
            without_replaced = copy;
            &without_replaced
        } else {
            &inventory
        };
        let (reqs, observed) = requests(&input, &subnets, seen, "plan", None);
        if let Err(e) = session
            .store
            .blocking(move |s| Ok(s.check_allocations(&reqs, &observed, &released)))
            .await
            .unwrap_or_else(|e| Err(ClaimError::from(e)))
        {
            allocation_error(diags, &e);
            return None;
        }
        Some((planned, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        config: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut planned = proposed;
        let mut replace = Vec::new();
        if prior.datacenter != planned.datacenter {
            replace.push(AttributePath::new("datacenter"));
        }
        // Inputs only a create uses; an imported VM has none recorded, which is no change.
        for (attr, before, after) in [
            ("template", &prior.template, &planned.template),
            ("folder", &prior.folder, &planned.folder),
            ("datastore", &prior.datastore, &planned.datastore),
        ] {
            if !before.is_null() && before != after {
                replace.push(AttributePath::new(attr));
            }
        }
        if config.hostname.is_value()
            && !prior.hostname.is_null()
            && prior.hostname != planned.hostname
        {
            replace.push(AttributePath::new("hostname"));
        }
        // Customization runs once: any change replaces the VM, except on an imported VM (no
        // template recorded yet), whose first apply records the blocks as they are.
        if !prior.template.is_null() {
            if prior.linux != planned.linux {
                replace.push(AttributePath::new("linux"));
            }
            if prior.windows != planned.windows {
                replace.push(AttributePath::new("windows"));
            }
        }
        plan_defaults(&mut planned);
        let before = nic_list(&prior);
        let after = nic_list(&planned);
        let wanted_ips: Vec<ValueString<'_>> = nic_list(&config)
            .iter()
            .map(|n| n.ip_address.clone())
            .collect();
        if before.len() != after.len() {
            replace.push(AttributePath::new("network_interface"));
        }
        let subnet_ids: Vec<Option<String>> = after.iter().map(|n| known(&n.subnet_id)).collect();
        let mut drifted = Vec::new();
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if b.subnet_id != a.subnet_id {
                replace.push(nic_path(i, "subnet_id"));
            }
            if matches!(wanted_ips.get(i), Some(Value::Value(_))) && b.ip_address != a.ip_address {
                replace.push(nic_path(i, "ip_address"));
            }
            // A NIC gone or moved off its subnet's wires outside Terraform.
            match (known(&b.mac), known(&b.wire_id), known(&b.subnet_id)) {
                (Some(_), Some(wire), Some(subnet)) => drifted.push((i, wire, subnet)),
                _ => replace.push(nic_path(i, "mac")),
            }
        }
        let session = self.shared.session(diags)?;
        if !drifted.is_empty() {
            let (index, pairs): (Vec<usize>, Vec<(String, String)>) = drifted
                .into_iter()
                .map(|(i, wire, subnet)| (i, (wire, subnet)))
                .unzip();
            match session
                .store
                .blocking(move |s| s.off_their_subnet(&pairs))
                .await
            {
                Ok(off) => replace.extend(off.into_iter().map(|k| nic_path(index[k], "wire_id"))),
                Err(e) => values::store_error(diags, &e, None),
            }
        }
        if !replace.is_empty() {
            plan_new_vm(&mut planned, &config);
            return Some((planned, prior_private, replace));
        }
        // In place: a VM powered off outside Terraform is powered on; a VM moved off the
        // configured host goes back; other drift shows as read.
        if prior.power_state.as_ref_option().map(|p| p.as_ref()) != Some("poweredOn") {
            planned.power_state = string("poweredOn");
        }
        if let Some(wanted) = known(&config.host) {
            let inventory = session.inventory_or_diag(diags).await?;
            let views = session.subnet_views_or_diag(diags, &inventory).await?;
            let nics: Vec<NicInput> = subnet_ids
                .into_iter()
                .flatten()
                .map(|subnet_id| NicInput {
                    subnet_id,
                    ip: None,
                })
                .collect();
            let subnets = subnets_of(diags, &views, &nics, &session.store.describe())?;
            let datacenter = known(&planned.datacenter).unwrap_or_default();
            match placement::place(
                &inventory,
                &datacenter,
                &subnets,
                Some(&wanted),
                &Default::default(),
            ) {
                Ok(p) => planned.host_id = string(p.host),
                Err(e) => {
                    placement_error(diags, &e);
                    return None;
                }
            }
        }
        Some((planned, prior_private, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        prior_private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let Some(input) = input_of(&config) else {
            diags.root_error(
                "Unknown values at apply time",
                "Every input of the VM must be known when it is created.",
            );
            return None;
        };
        let session = self.shared.session(diags)?;
        let mut inventory = session.inventory_or_diag(diags).await?;
        session
            .pending_swept
            .get_or_init(|| async {
                if sweep_pending(&session, &inventory).await {
                    session.inventory.invalidate().await;
                }
            })
            .await;
        inventory = session.inventory_or_diag(diags).await?;
        let template = template_or_diag(diags, &inventory, &input)?.clone();
        let views = session.subnet_views_or_diag(diags, &inventory).await?;
        let subnets = subnets_of(diags, &views, &input.nics, &session.store.describe())?;
        let client = session.inventory.client();
        let folder = find_path(diags, &session, &input.datacenter, "folder", &input.folder).await?;
        let datastore = find_path(
            diags,
            &session,
            &input.datacenter,
            "datastore",
            &input.datastore,
        )
        .await?;
        let placed: Placement = match session.place(&inventory, |extra| {
            placement::place(
                &inventory,
                &input.datacenter,
                &subnets,
                input.host.as_deref(),
                extra,
            )
        }) {
            Ok(p) => p,
            Err(e) => {
                placement_error(diags, &e);
                return None;
            }
        };

        // Checked at plan time too; a replacement's plan does not look at the template.
        let windows = is_windows(&template);
        let hostname = guest_name(&input, windows);
        let first_domain = subnets.first().and_then(|s| s.subnet.domain.as_deref());
        let Some(guest) = customization::guest_family(windows, &input.guest, first_domain) else {
            customization::check_family(diags, windows, &input.template, &input.guest);
            return None;
        };

        // Addresses first, as pending records of a ticket: from here on every failure rolls back.
        let ticket = Ticket::mine();
        let owner = ticket.owner_id();
        let (reqs, observed) = requests(
            &input,
            &subnets,
            &inventory,
            &owner,
            Some(&placed.portgroups),
        );
        let records = match session
            .store
            .blocking(move |s| Ok(s.allocate_all(&reqs, &observed)))
            .await
            .unwrap_or_else(|e| Err(ClaimError::from(e)))
        {
            Ok(r) => r,
            Err(e) => {
                allocation_error(diags, &e);
                return None;
            }
        };
        let mut nic_specs = Vec::new();
        for ((record, pg), subnet) in records.iter().zip(&placed.portgroups).zip(&subnets) {
            match nic_spec(&inventory, pg, subnet, record.ip) {
                Some(spec) => nic_specs.push(spec),
                None => {
                    undo_create(&session, &owner, None).await;
                    diags.root_error(
                        "Port group not usable",
                        format!("Port group {pg} has no distributed switch UUID in the inventory."),
                    );
                    return None;
                }
            }
        }
        let spec = CreateVm {
            name: input.name.clone(),
            source: template.moref.clone(),
            host: placed.host.clone(),
            datastore,
            folder,
            num_cpus: input.num_cpus,
            memory_mb: input.memory_mb,
            hostname: hostname.clone(),
            guest,
            nics: nic_specs,
            instance_uuid: Some(ticket.instance_uuid.clone()),
        };
        let created = match vm_ops::create_vm(client, &spec).await {
            Ok(c) => c,
            Err(e) => {
                // A partial VM that could not be removed keeps its addresses pending: the next
                // sweep removes it (it carries the ticket's instance UUID) and releases them.
                let released = !matches!(e, VmOpError::CreateLeftover { .. })
                    && undo_create(&session, &owner, None).await;
                vm_op_error(diags, &e, released);
                return None;
            }
        };
        let mut guest_ips: Vec<Ipv4Addr> = Vec::new();
        if input.wait {
            let expected: Vec<(String, Ipv4Addr)> = created
                .macs
                .iter()
                .cloned()
                .zip(records.iter().map(|r| r.ip))
                .collect();
            match vm_ops::wait_for_guest_ips(client, &created.moref, &expected, input.timeout).await
            {
                Ok(reported) => guest_ips = reported.into_values().flatten().collect(),
                Err(e) => {
                    let released = undo_create(&session, &owner, Some(&created.moref)).await;
                    vm_op_error(diags, &e, released);
                    return None;
                }
            }
        }
        guest_ips.sort();
        guest_ips.dedup();
        let nic_addresses: Vec<NicAddress> = records
            .iter()
            .zip(&created.macs)
            .zip(&placed.portgroups)
            .map(|((r, mac), pg)| NicAddress {
                subnet_id: r.subnet_id.clone(),
                ip: r.ip,
                mac: mac.clone(),
                wire_id: wire::wire_id(&inventory, pg),
            })
            .collect();
        let uuid = created.uuid.to_ascii_lowercase();
        let finish_uuid = uuid.clone();
        let finish_owner = owner.clone();
        if let Err(e) = session
            .store
            .blocking(move |s| {
                s.finish_pending(OwnerKind::Vm, &finish_owner, &finish_uuid, &nic_addresses)
            })
            .await
        {
            let released = undo_create(&session, &owner, Some(&created.moref)).await;
            values::store_error(diags, &e, None);
            diags.root_error(
                "The VM was removed again",
                if released {
                    "Its addresses could not be recorded, so the VM was destroyed and they were released."
                } else {
                    "Its addresses could not be recorded; they stay pending and are released by the next run."
                },
            );
            return None;
        }
        tracing::info!(
            vm = %created.moref, name = %input.name, host = %created.host,
            addresses = ?records.iter().map(|r| r.ip).collect::<Vec<_>>(),
            "VM created"
        );

        let mut state = planned;
        state.id = string(uuid);
        state.moref = string(created.moref.clone());
        state.host_id = string(created.host.clone());
        state.power_state = string("poweredOn");
        state.guest_ip_addresses = strings(guest_ips);
        state.hostname = string(hostname);
        if state.num_cpus.is_unknown() {
            state.num_cpus = template.num_cpus.map(i64::from).into();
        }
        if state.memory_mb.is_unknown() {
            state.memory_mb = template.memory_mb.into();
        }
        if state.wait_for_guest_ip.is_unknown() {
            state.wait_for_guest_ip = Value::Value(input.wait);
        }
        for (i, nic) in nic_list_mut(&mut state).into_iter().enumerate() {
            let pg = inventory
                .portgroups
                .iter()
                .find(|p| p.moref == placed.portgroups[i]);
            nic.ip_address = string(records[i].ip.to_string());
            nic.mac = string(created.macs[i].clone());
            nic.wire_id = string(wire::wire_id(&inventory, &placed.portgroups[i]));
            nic.port_group = opt_string(pg.map(|p| p.name.clone()));
        }
        Some((state, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let client = session.inventory.client();
        let moref = known(&prior.moref)?;
        let changed = |a: &ValueNumber, b: &ValueNumber| (a != b).then_some(()).and(b.as_option());
        let cpus = changed(&prior.num_cpus, &planned.num_cpus).map(|n| n as i32);
        let memory = changed(&prior.memory_mb, &planned.memory_mb);
        let name = (prior.name != planned.name)
            .then(|| known(&planned.name))
            .flatten();
        let mut state = planned.clone();
        if cpus.is_some() || memory.is_some() || name.is_some() {
            let mut result =
                vm_ops::reconfigure_vm(client, &moref, cpus, memory, name.clone()).await;
            // vCenter refuses a CPU or memory change of a running VM without hot add: power
            // it off for the change, then on again.
            if result.is_err()
                && (cpus.is_some() || memory.is_some())
                && prior.power_state.as_ref_option().map(|p| p.as_ref()) == Some("poweredOn")
            {
                tracing::info!(vm = %moref, "powering the VM off to change CPU or memory");
                result = async {
                    vm_ops::set_power(client, &moref, false).await?;
                    let changed =
                        vm_ops::reconfigure_vm(client, &moref, cpus, memory, name.clone()).await;
                    vm_ops::set_power(client, &moref, true).await?;
                    changed
                }
                .await;
            }
            if let Err(e) = result {
                diags.root_error("Changing the VM failed", format!("{e}."));
                return None;
            }
            if let Some(name) = &name {
                let owner = known(&prior.id).unwrap_or_default();
                let description = format!("VM {name:?}");
                if let Err(e) = session
                    .store
                    .blocking(move |s| s.describe_owner(OwnerKind::Vm, &owner, Some(&description)))
                    .await
                {
                    tracing::warn!("cannot update the description of the VM's addresses: {e}");
                }
            }
        }
        if let (Some(to), Some(from)) = (known(&planned.host_id), known(&prior.host_id)) {
            if to != from {
                if let Err(e) = vm_ops::relocate_vm(client, &moref, &to).await {
                    diags.error(
                        "Moving the VM failed",
                        format!("{e}."),
                        AttributePath::new("host"),
                    );
                    return None;
                }
            }
        }
        if known(&planned.power_state).as_deref() == Some("poweredOn")
            && known(&prior.power_state).as_deref() != Some("poweredOn")
        {
            if let Err(e) = vm_ops::set_power(client, &moref, true).await {
                diags.root_error("Powering the VM on failed", format!("{e}."));
                return None;
            }
        }
        if state.guest_ip_addresses.is_unknown() {
            state.guest_ip_addresses = prior.guest_ip_addresses.clone();
        }
        Some((state, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let session = self.shared.session(diags)?;
        let vm_uuid = known(&state.id)?.to_ascii_lowercase();
        let inventory = session.inventory_or_diag(diags).await?;
        // The moref in the state may be stale (the VM re-registered); the UUID is not.
        if let Some(vm) = nics::find_vm(&inventory, &vm_uuid) {
            if let Err(e) = vm_ops::destroy_vm(session.inventory.client(), &vm.moref).await {
                diags.root_error(
                    "Destroying the VM failed",
                    format!("{e}. Its addresses stay held; retry the destroy."),
                );
                return None;
            }
        }
        let released = values::or_diag(
            diags,
            session
                .store
                .blocking(move |s| s.release_owner(OwnerKind::Vm, &vm_uuid))
                .await,
        )?;
        tracing::info!(
            addresses = released.len(),
            "VM destroyed, addresses released"
        );
        Some(())
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        let Some(vm) = nics::find_vm(&inventory, &id) else {
            diags.root_error(
                "VM not found",
                format!(
                    "No VM with UUID {id:?} in vCenter (instance {}). Import by the VM's \
                     `config.uuid`.",
                    inventory.instance_uuid
                ),
            );
            return None;
        };
        if vm.template {
            diags.root_error(
                "Cannot import a template",
                format!("{:?} is a template, not a VM.", vm.name),
            );
            return None;
        }
        let vm_uuid = vm.uuid.to_ascii_lowercase();
        let existing = match records_of(&session, &vm_uuid).await {
            Ok(r) => r,
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        };
        // Each NIC's address: recorded already (a re-import), else what VMware Tools reports.
        let mut requests = Vec::new();
        for nic in &vm.nics {
            let recorded = existing
                .iter()
                .find(|r| same_mac(r.mac.as_deref().unwrap_or_default(), &nic.mac))
                .map(|r| r.ip);
            let reported = vm
                .guest_ips
                .get(&nic.mac)
                .and_then(|ips| match ips.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                });
            match recorded.or(reported) {
                Some(ip) => requests.push(NicRequest {
                    mac: Some(nic.mac.clone()),
                    ip,
                }),
                None => {
                    diags.root_error(
                        "Cannot import the VM's addresses",
                        format!(
                            "NIC {} of VM {:?} has no single IPv4 address reported by VMware \
                             Tools, so its address is unknown. Power the VM on with Tools running, \
                             or record it with vsphereipam_vm_nic_fix instead.",
                            nic.mac, vm.name
                        ),
                    );
                    return None;
                }
            }
        }
        let views = session.subnet_views_or_diag(diags, &inventory).await?;
        let claims = match nics::resolve(&inventory, vm, &requests, &views) {
            Ok(c) => c,
            Err(problems) => {
                for p in problems {
                    diags.root_error(p.summary, p.detail);
                }
                return None;
            }
        };
        let observations = nics::observations(&inventory);
        let claim_uuid = vm_uuid.clone();
        let recorded_claims = claims.clone();
        let result = session
            .store
            .blocking(move |s| {
                let reported = nics::claim_reporter(&observations, &views, &claim_uuid);
                // A re-import finds its own records: claim them afresh.
                Ok(s.reclaim_nics(
                    (OwnerKind::Vm, &claim_uuid),
                    &claim_uuid,
                    &recorded_claims,
                    &reported,
                ))
            })
            .await;
        let records = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                values::store_error_at(diags, &e.error, None);
                return None;
            }
            Err(e) => {
                values::store_error(diags, &e, None);
                return None;
            }
        };
        let datacenter = vm_datacenter(&inventory, vm).map(str::to_string);
        let mut state = VmState {
            id: string(vm_uuid),
            name: string(vm.name.clone()),
            datacenter: opt_string(datacenter),
            // What the guest calls itself is not necessarily what customization set: like
            // the template, the first apply records the configured value.
            hostname: Value::Null,
            wait_for_guest_ip: Value::Value(true),
            guest_ip_timeout: string(DEFAULT_TIMEOUT),
            network_interface: Value::Value(
                claims
                    .iter()
                    .map(|c| {
                        Value::Value(NicState {
                            subnet_id: string(c.subnet_id.clone()),
                            ip_address: string(c.ip.to_string()),
                            mac: string(c.mac.clone()),
                            wire_id: string(c.wire_id.clone()),
                            port_group: Value::Null,
                        })
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        refresh(&mut state, &inventory, vm, &records);
        Some((state, ValueEmpty::default()))
    }
}

/// The moref of the `folder` or `datastore` the user named (`Some(None)` when unset), or
/// `None` with a diagnostic on the attribute.
async fn find_path(
    diags: &mut Diagnostics,
    session: &Session,
    datacenter: &str,
    attribute: &'static str,
    value: &Option<String>,
) -> Option<Option<String>> {
    let Some(value) = value else {
        return Some(None);
    };
    let (kind, what) = match attribute {
        "folder" => ("vm", "VM folder"),
        _ => ("datastore", "datastore"),
    };
    let path = inventory_path(datacenter, kind, value);
    match vm_ops::find_by_path(session.inventory.client(), &path).await {
        Ok(Some(moref)) => Some(Some(moref)),
        Ok(None) => {
            diags.error(
                format!("The {what} was not found"),
                format!(
                    "No {what} at inventory path {path:?}. Fix `{attribute}`; nothing was created."
                ),
                AttributePath::new(attribute),
            );
            None
        }
        Err(e) => {
            diags.error(
                format!("Cannot look up the {what}"),
                format!("{e}."),
                AttributePath::new(attribute),
            );
            None
        }
    }
}

/// Undoes a create after its addresses were taken: destroys the VM when there is one, then
/// releases the ticket's addresses. False (and a log line) when either fails: the addresses
/// then stay pending for the next sweep.
async fn undo_create(session: &Session, owner: &str, vm: Option<&str>) -> bool {
    if let Some(moref) = vm {
        if let Err(e) = vm_ops::destroy_vm(session.inventory.client(), moref).await {
            tracing::warn!(vm = %moref, "cannot remove the VM of a failed create: {e}");
            return false;
        }
    }
    let owner = owner.to_string();
    match session
        .store
        .blocking(move |s| s.release_owner(OwnerKind::Vm, &owner))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("cannot release the addresses of a failed create: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "10", "m", "1x", "-5s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

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
        assert!(valid_host_name("web-1"));
        assert!(!valid_host_name("web_1"));
        assert!(!valid_host_name("-web"));
    }

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
