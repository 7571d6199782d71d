//! Resource `vsphereipam_vm`: a VM cloned from a template whose NICs take their addresses from
//! subnets, placed on a host that carries a port group of every NIC's subnet.
//!
//! This is the Terraform edge only: schema, values in and out, plan decisions, diagnostics. The
//! create sequence, the destroy and the sweep of abandoned creates are in [`crate::vmlife`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tfplugin::schema::{AttributeType, Block, Description, IdentitySchema, NestedBlock, Schema};
use tfplugin::value::{Value, ValueBool, ValueEmpty, ValueList, ValueNumber, ValueString};
use tfplugin::{map, AttributePath, Diagnostics, MoveSource, Resource};

use super::customization::{self, GuestInput, LinuxState, WindowsState};

use super::schema::{
    computed, defaults_to, identity, optional, optional_computed, replaces, replaces_once_set,
    required, string_list,
};
use super::values::{self, known, opt_string, string, strings};
use super::vm_adopt;
use super::{Session, Shared};
use crate::ipam::ranges::parse_ip;
use crate::nics::{self, NicRequest};
use crate::placement::{self, PlacementError};
use crate::store::ops::{ClaimError, NicClaim};
use crate::store::{AddressRecord, OwnerKind, StoreError};
use crate::vmlife::{self, CreateError, DestroyError, Held, NicInput, VmRequest};
use crate::vsphere::model::{Inventory, Vm};
use crate::vsphere::vm_ops::{self, GuestFamily, VmOpError};
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
    pub ipv6_subnet_id: ValueString<'a>,
    pub ipv6_address: ValueString<'a>,
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
                 domain of its subnet (IPv4 or IPv6; a dual-stack NIC takes an IPv6 subnet in \
                 `ipv6_subnet_id` beside its IPv4 one and gets both addresses, prefixes and \
                 gateways), and with the `linux` or `windows` block (after the \
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
                 assigned ones are reported as a warning. A VM deleted outside Terraform is \
                 replaced by the next apply (or removed from the state when its configuration \
                 is gone); its addresses stay held until that apply, never released by a plan. \
                 If the provider is killed in the middle of a create, or vCenter becomes \
                 unreachable so that the outcome of a call cannot be found out, the next run on \
                 that machine (or any run after an hour) removes the half-made VM and releases \
                 its addresses.\n\n\
                 Import by the VM UUID (or by identity) only reads, so an `import` block's \
                 plan changes nothing: it finds the addresses VMware Tools report on the NICs \
                 and checks that each is in a subnet and held by no other record. The first \
                 apply records them as the resource's own, and the inputs vCenter does not keep \
                 (`template`, `folder`, `datastore`, `hostname`, the guest IP wait, the \
                 `linux`/`windows` blocks) in the state, without changing the VM. Until then \
                 no allocation hands the addresses out.\n\n\
                 A `moved` block from HashiCorp's `vsphere_virtual_machine` (vSphere provider \
                 2.x state, Terraform 1.8+) adopts the VM the same way: the plan finds each \
                 NIC's address and subnet and writes nothing (an address in no subnet, or held \
                 by another record, fails it), and its apply records the addresses and \
                 `template` without a vCenter call. See the guide \"Moving from the vSphere \
                 provider\".",
            ),
            attributes: map! {
                "id" => computed(AttributeType::String, "The VM's UUID (`config.uuid`)."),
                "moref" => computed(AttributeType::String,
                    "Managed object id of the VM (`vm-123`)."),
                "name" => required(AttributeType::String, "VM name in vCenter. Changes in place."),
                "datacenter" => replaces(required(AttributeType::String,
                    "Datacenter to create the VM in, by name. Changing it replaces the VM.")),
                "template" => replaces_once_set(required(AttributeType::String,
                    "Template or VM to clone, by name or UUID, in the datacenter. Linux or \
                     Windows customization follows its guest family. Changing it replaces the VM.")),
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
                "folder" => replaces_once_set(optional(AttributeType::String,
                    "VM folder, relative to the datacenter's VM folder (`prod/web`) or as an \
                     absolute inventory path (`/DC0/vm/prod/web`); the datacenter's VM folder when \
                     unset. Changing it replaces the VM.")),
                "datastore" => replaces_once_set(optional(AttributeType::String,
                    "Datastore name for the VM's files; the template's when unset. Changing it \
                     replaces the VM.")),
                "hostname" => replaces_once_set(optional_computed(AttributeType::String,
                    "Guest host name (Windows: computer name, at most 15 characters). Default: \
                     `linux.host_name` or `windows.computer_name` when set, else `name` reduced \
                     to a valid host name. Changing it replaces the VM.")),
                "wait_for_guest_ip" => defaults_to(json!(true), optional_computed(AttributeType::Bool,
                    "Wait until VMware Tools reports the assigned addresses on every NIC \
                     (default `true`): the IPv4 one exactly, each IPv6 one among the NIC's \
                     global IPv6 addresses (guests may add SLAAC or privacy addresses). When it does not within `guest_ip_timeout`, the VM is \
                     removed and its addresses are released.")),
                "guest_ip_timeout" => defaults_to(json!(DEFAULT_TIMEOUT), optional_computed(AttributeType::String,
                    "How long to wait for VMware Tools, as a duration such as `10m`, `90s` or \
                     `1h30m` (default `10m`).")),
                "power_state" => computed(AttributeType::String,
                    "`poweredOn`, `poweredOff` or `suspended`, as vCenter reports it."),
                "guest_ip_addresses" => computed(string_list(),
                    "IPv4 addresses VMware Tools reports for the VM, sorted (a NIC's IPv6 \
                     address is in its `ipv6_address`, or its `ip_address` on an IPv6 \
                     subnet).")
            },
            blocks: map! {
                "network_interface" => NestedBlock::List(Block {
                    version: 1,
                    description: Description::markdown(
                        "One block per NIC, in device order; at least one. The template's NICs \
                         are reused in order, extra ones added, surplus ones removed."),
                    attributes: map! {
                        "subnet_id" => replaces(required(AttributeType::String,
                            "Subnet the NIC takes its address from (`vsphereipam_ipsubnet.x.id`), \
                             IPv4 or IPv6; a NIC whose subnet is IPv6 is IPv6-only (its IPv4 \
                             side is left to DHCP, since vCenter's customization always sets \
                             one). Changing it replaces the VM.")),
                        "ip_address" => replaces(optional_computed(AttributeType::String,
                            "Ask for this address (of `subnet_id`'s family); unset: the next \
                             free one. Changing it replaces the VM.")),
                        "ipv6_subnet_id" => replaces(optional_computed(AttributeType::String,
                            "For a dual-stack NIC: the IPv6 subnet of its second address, \
                             beside the IPv4 `subnet_id`. The NIC's port group must be a wire \
                             of both subnets. The guest gets the fixed IPv6 address, prefix \
                             and gateway too. Changing it replaces the VM (setting it too). An \
                             adopted VM (import, `moved`) whose NIC reports a global IPv6 \
                             address in an IPv6 subnet of its port group records that address \
                             and subnet even where the configuration leaves this unset, \
                             without replacing the VM.")),
                        "ipv6_address" => replaces(optional_computed(AttributeType::String,
                            "Ask for this IPv6 address of `ipv6_subnet_id` (canonical form, \
                             e.g. `2001:db8:0:20::50`); unset: the next free one. Null on a \
                             NIC without `ipv6_subnet_id`. Changing it replaces the VM.")),
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

/// Durations as Terraform users write them: `90s`, `10m`, `1h30m`, `500ms`, `1.5h` (humantime's
/// syntax, which also takes `2 hours` or `1d`; no sign).
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
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
    let mut asked: Vec<(IpAddr, usize)> = Vec::new();
    for (i, nic) in nic_list(config).into_iter().enumerate() {
        let mut ips: Vec<(IpAddr, &'static str)> = Vec::new();
        if let Value::Value(ip) = &nic.ip_address {
            match parse_ip(ip) {
                Ok(ip) => ips.push((ip, "ip_address")),
                Err(why) => diags.error(
                    "Invalid IP address",
                    format!(
                        "{why}. Write an address of the subnet's family, such as 10.20.0.50 \
                         or 2001:db8:0:20::50."
                    ),
                    nic_path(i, "ip_address"),
                ),
            }
        }
        if let Value::Value(ip) = &nic.ipv6_address {
            if nic.ipv6_subnet_id.is_null() {
                diags.error(
                    "ipv6_address without ipv6_subnet_id",
                    "An IPv6 address is taken from the NIC's IPv6 subnet: set ipv6_subnet_id to \
                     it, or remove ipv6_address (on an IPv6 subnet in subnet_id, ask with \
                     ip_address).",
                    nic_path(i, "ipv6_address"),
                );
            }
            match parse_ip(ip) {
                Ok(IpAddr::V6(v6)) => ips.push((IpAddr::V6(v6), "ipv6_address")),
                Ok(IpAddr::V4(v4)) => diags.error(
                    "IPv4 address in ipv6_address",
                    format!(
                        "{v4} is an IPv4 address; ipv6_address takes an IPv6 address of \
                         ipv6_subnet_id, such as 2001:db8:0:20::50. Ask for an IPv4 address \
                         with ip_address."
                    ),
                    nic_path(i, "ipv6_address"),
                ),
                Err(why) => diags.error(
                    "Invalid IPv6 address",
                    format!("{why}. Write an IPv6 address such as 2001:db8:0:20::50."),
                    nic_path(i, "ipv6_address"),
                ),
            }
        }
        for (ip, attribute) in ips {
            match asked.iter().find(|(other, _)| *other == ip) {
                Some((_, first)) => diags.error(
                    "Two NICs ask for one address",
                    format!(
                        "network_interface[{first}] and network_interface[{i}] both ask for {ip}; \
                         an address belongs to one NIC. Give each NIC its own {attribute}, or \
                         leave it unset on one of them to get the next free address."
                    ),
                    nic_path(i, attribute),
                ),
                None => asked.push((ip, i)),
            }
        }
    }
}

/// The request, and the customization blocks as parsed (for their diagnostics); `None` while
/// some input is unknown (or invalid: `validate` reports it).
fn input_of(config: &VmState<'_>) -> Option<(VmRequest, GuestInput)> {
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
                Some(ip) => Some(parse_ip(&ip).ok()?),
                None => None,
            },
            ipv6_subnet_id: text(&nic.ipv6_subnet_id)?,
            ipv6: match text(&nic.ipv6_address)? {
                Some(ip) => match parse_ip(&ip).ok()? {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => return None,
                },
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
    // The guest's name as configured: the customization block's, else `hostname`.
    let hostname = match guest.name() {
        Some(name) => Some(name.to_string()),
        None => text(&config.hostname)?,
    };
    let request = VmRequest {
        name: known(&config.name)?,
        datacenter: known(&config.datacenter)?,
        template: known(&config.template)?,
        num_cpus: number(&config.num_cpus)?.map(|n| n as i32),
        memory_mb: number(&config.memory_mb)?,
        host: text(&config.host)?,
        folder: text(&config.folder)?,
        datastore: text(&config.datastore)?,
        hostname,
        guest: Arc::new(guest.clone()),
        wait,
        timeout: parse_duration(&timeout)?,
        nics,
    };
    Some((request, guest))
}

impl vmlife::Guest for GuestInput {
    fn family(&self, windows_template: bool, first_domain: Option<&str>) -> Option<GuestFamily> {
        customization::guest_family(windows_template, self, first_domain)
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
    let asked: Vec<(bool, bool, bool)> = nic_list(config)
        .iter()
        .map(|n| {
            (
                n.ip_address.is_value(),
                n.ipv6_address.is_value(),
                n.ipv6_subnet_id.is_null(),
            )
        })
        .collect();
    for (i, nic) in nic_list_mut(planned).into_iter().enumerate() {
        let (ip, ipv6, no_ipv6_subnet) = asked.get(i).copied().unwrap_or_default();
        if !ip {
            nic.ip_address = Value::Unknown;
        }
        if no_ipv6_subnet {
            // A new VM's NIC has the IPv6 subnet the configuration gives, or none.
            nic.ipv6_subnet_id = Value::Null;
        }
        if !ipv6 {
            // A NIC without an IPv6 subnet has no IPv6 address to take.
            nic.ipv6_address = if no_ipv6_subnet {
                Value::Null
            } else {
                Value::Unknown
            };
        }
        nic.mac = Value::Unknown;
        nic.wire_id = Value::Unknown;
        nic.port_group = Value::Unknown;
    }
}

// ---------------------------------------------------------------------------------------------
// Errors to diagnostics

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

fn allocation_error(diags: &mut Diagnostics, e: &ClaimError, ipv6: bool) {
    let (address, subnet) = if ipv6 {
        ("ipv6_address", "ipv6_subnet_id")
    } else {
        ("ip_address", "subnet_id")
    };
    let path = e.index.map(|i| match e.error {
        StoreError::AddressTaken { .. } | StoreError::Refused(_) => nic_path(i, address),
        _ => nic_path(i, subnet),
    });
    values::store_error_at(diags, &e.error, path);
}

/// The sentence a diagnostic gives about a failed create's addresses.
fn held_sentence(held: Held) -> &'static str {
    match held {
        Held::Nothing => "",
        Held::Released => " Its addresses were released.",
        Held::Pending => {
            " Its addresses stay held as pending under the create's ticket: the next run of the \
             provider on this machine (or any run after an hour) finds out whether vCenter made \
             the VM, removes it if so, and then releases them."
        }
    }
}

fn vm_op_error(diags: &mut Diagnostics, e: &VmOpError, held: Held) {
    let held = held_sentence(held);
    match e {
        VmOpError::Unknown { .. } => diags.root_error(
            "The outcome of creating the VM is unknown",
            format!("{e}.{held} Check that vCenter is reachable, then apply again."),
        ),
        VmOpError::Invalid(_) => diags.root_error(
            "vCenter refused the VM",
            format!("{e}. Nothing was created.{held}"),
        ),
        _ => diags.root_error("Creating the VM failed", format!("{e}.{held}")),
    }
}

fn create_error(diags: &mut Diagnostics, e: &CreateError, input: &VmRequest, guest: &GuestInput) {
    match e {
        CreateError::Guest { windows } => {
            customization::check_family(diags, *windows, &input.template, guest);
        }
        CreateError::Inventory(reason) => diags.root_error(
            "Cannot load the vCenter inventory",
            format!("{reason}. Retry; if it persists, check the vCenter service health."),
        ),
        CreateError::Store(e) => values::store_error(diags, e, None),
        CreateError::Template(detail) => diags.error(
            "Template not found",
            detail.clone(),
            AttributePath::new("template"),
        ),
        CreateError::SubnetMissing { index, ipv6, .. } => diags.error(
            "Subnet not found",
            e.to_string(),
            nic_path(*index, if *ipv6 { "ipv6_subnet_id" } else { "subnet_id" }),
        ),
        CreateError::Ipv6SubnetIsIpv4 { index, .. } => diags.error(
            "IPv4 subnet in ipv6_subnet_id",
            e.to_string(),
            nic_path(*index, "ipv6_subnet_id"),
        ),
        CreateError::TwoIpv6Subnets { index, .. } => diags.error(
            "Two subnets of one family on one NIC",
            e.to_string(),
            nic_path(*index, "ipv6_subnet_id"),
        ),
        CreateError::Placement(p) => placement_error(diags, p),
        CreateError::PathNotFound {
            attribute, what, ..
        } => diags.error(
            format!("The {what} was not found"),
            e.to_string(),
            AttributePath::new(*attribute),
        ),
        CreateError::PathLookup {
            attribute,
            what,
            reason,
        } => diags.error(
            format!("Cannot look up the {what}"),
            format!("{reason}."),
            AttributePath::new(*attribute),
        ),
        CreateError::Allocation { claim, ipv6 } => allocation_error(diags, claim, *ipv6),
        CreateError::PortGroup(detail) => diags.root_error("Port group not usable", detail.clone()),
        CreateError::VCenter { error, held } => vm_op_error(diags, error, *held),
        CreateError::GuestIps { error, held } => {
            let removed = if *held == Held::Released {
                " The VM was removed."
            } else {
                ""
            };
            diags.error(
                "VMware Tools did not report the assigned addresses",
                format!(
                    "{error}.{removed}{} Check the template's VMware Tools and guest \
                     customization, raise guest_ip_timeout, or set wait_for_guest_ip = false.",
                    held_sentence(*held)
                ),
                AttributePath::new("guest_ip_timeout"),
            )
        }
        CreateError::Record { error, held } => {
            values::store_error(diags, error, None);
            diags.root_error(
                "The VM was removed again",
                format!(
                    "Its addresses could not be recorded, so the VM was to be destroyed.{}",
                    held_sentence(*held)
                ),
            );
        }
    }
}

/// Marks a state whose VM is gone from vCenter: no moref, no host, NICs without MAC or port
/// group. `plan_update` replaces such a VM; its records stay until that apply.
fn mark_gone(state: &mut VmState<'_>) {
    state.moref = Value::Null;
    state.host_id = Value::Null;
    state.power_state = Value::Null;
    state.guest_ip_addresses = Value::Null;
    for nic in nic_list_mut(state) {
        nic.mac = Value::Null;
        nic.wire_id = Value::Null;
        nic.port_group = Value::Null;
    }
}

/// The `vmlife` context of a configured provider.
fn ctx(session: &Session) -> vmlife::Ctx<'_> {
    vmlife::Ctx {
        cache: &session.inventory,
        store: &session.store,
        creates: &session.creates,
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
        let mine: Vec<&AddressRecord> = records
            .iter()
            .filter(|r| same_mac(r.mac.as_deref().unwrap_or_default(), &mac))
            .collect();
        let (first, second) = nic_records(&mine, known(&nic.subnet_id).as_deref());
        if let Some(r) = first {
            nic.subnet_id = string(r.subnet_id.clone());
            nic.ip_address = string(r.ip.to_string());
        }
        match second {
            Some(r) => {
                nic.ipv6_subnet_id = string(r.subnet_id.clone());
                nic.ipv6_address = string(r.ip.to_string());
            }
            // An IPv4-only or IPv6-only NIC: no second address.
            None if first.is_some() => nic.ipv6_address = Value::Null,
            None => {}
        }
    }
}

use nics::same_mac;

/// A NIC's records split into its `subnet_id` address and its dual-stack IPv6 one: the record
/// in `subnet_id` (else the IPv4 one, else the only one) first, an IPv6 record beside an IPv4
/// one second.
fn nic_records<'r>(
    mine: &[&'r AddressRecord],
    subnet_id: Option<&str>,
) -> (Option<&'r AddressRecord>, Option<&'r AddressRecord>) {
    let first = mine
        .iter()
        .find(|r| Some(r.subnet_id.as_str()) == subnet_id)
        .or_else(|| mine.iter().find(|r| r.ip.is_ipv4()))
        .or_else(|| mine.first())
        .copied();
    let second = first
        .filter(|f| f.ip.is_ipv4())
        .and_then(|f| mine.iter().find(|r| r.ip.is_ipv6() && r.ip != f.ip))
        .copied();
    (first, second)
}

/// The state of a VM adopted by import or by a move, before `refresh`: what vCenter knows, each
/// NIC's claim, and the guest IP wait's defaults. Inputs only a create uses (`template`,
/// `datastore`, `hostname`, the `linux`/`windows` blocks) stay unset: the first apply records
/// them from the configuration without changing the VM.
fn adopted_state<'a>(inventory: &Inventory, vm: &Vm, adoption: &vm_adopt::Adoption) -> VmState<'a> {
    let datacenter = vmlife::vm_datacenter(inventory, vm).map(str::to_string);
    VmState {
        id: string(vm.uuid.to_ascii_lowercase()),
        name: string(vm.name.clone()),
        datacenter: opt_string(datacenter),
        // What the guest calls itself is not necessarily what customization set: like
        // the template, the first apply records the configured value.
        hostname: Value::Null,
        wait_for_guest_ip: Value::Value(true),
        guest_ip_timeout: string(DEFAULT_TIMEOUT),
        network_interface: Value::Value(adopted_nics(&adoption.claims, &adoption.second)),
        ..Default::default()
    }
}

/// One NIC state per first claim, with the second claim that follows it (a dual-stack NIC's
/// IPv6 address) as its `ipv6_*`.
fn adopted_nics<'a>(claims: &[NicClaim], second: &[bool]) -> Vec<Value<NicState<'a>>> {
    let mut out: Vec<NicState<'a>> = Vec::new();
    for (c, is_second) in claims.iter().zip(second) {
        match (is_second, out.last_mut()) {
            (true, Some(nic)) => {
                nic.ipv6_subnet_id = string(c.subnet_id.clone());
                nic.ipv6_address = string(c.ip.to_string());
            }
            _ => out.push(NicState {
                subnet_id: string(c.subnet_id.clone()),
                ip_address: string(c.ip.to_string()),
                ipv6_subnet_id: Value::Null,
                ipv6_address: Value::Null,
                mac: string(c.mac.clone()),
                wire_id: string(c.wire_id.clone()),
                port_group: Value::Null,
            }),
        }
    }
    out.into_iter().map(Value::Value).collect()
}

/// The first apply after an import or a move (no `template` in the state yet): records the
/// NICs' addresses as planned, unless they are recorded already (a re-import of a VM whose
/// records stayed), in one store transaction and without a vCenter call. See [`vm_adopt`] for
/// why neither the import nor the move records.
async fn record_adopted(
    diags: &mut Diagnostics,
    session: &Session,
    planned: &VmState<'_>,
) -> Option<()> {
    let vm_uuid = known(&planned.id)?;
    if values::or_diag(diags, adopted_recorded(session, planned).await)? {
        return Some(());
    }
    let wanted = (nic_requests(planned), ipv6_requests(planned));
    let inventory = session.inventory_or_diag(diags).await?;
    let Some(vm) = nics::find_vm(&inventory, &vm_uuid) else {
        diags.root_error(
            "VM not found",
            format!("No VM with UUID {vm_uuid} in vCenter: its addresses cannot be recorded."),
        );
        return None;
    };
    let adoption = vm_adopt::claims(
        diags,
        session,
        &inventory,
        vm,
        Some(wanted),
        "Cannot record the VM's addresses",
    )
    .await?;
    vm_adopt::record(diags, session, vm, &adoption, true).await?;
    tracing::info!(%vm_uuid, nics = adoption.claims.len(), "recorded the adopted VM's addresses");
    Some(())
}

/// Each NIC's MAC and address as the state has them.
fn nic_requests(state: &VmState<'_>) -> Vec<NicRequest> {
    nic_list(state)
        .iter()
        .filter_map(|n| {
            Some(NicRequest {
                mac: known(&n.mac),
                ip: parse_ip(&known(&n.ip_address)?).ok()?,
            })
        })
        .collect()
}

/// Each dual-stack NIC's MAC and IPv6 address as the state has them.
fn ipv6_requests(state: &VmState<'_>) -> Vec<NicRequest> {
    nic_list(state)
        .iter()
        .filter_map(|n| {
            Some(NicRequest {
                mac: known(&n.mac),
                ip: parse_ip(&known(&n.ipv6_address)?).ok()?,
            })
        })
        .collect()
}

/// Whether every NIC of an adopted VM is recorded as the VM's own already.
async fn adopted_recorded(session: &Session, state: &VmState<'_>) -> Result<bool, StoreError> {
    let Some(vm_uuid) = known(&state.id) else {
        return Ok(false);
    };
    let wanted = nic_requests(state);
    let records = vm_adopt::records_of(session, &vm_uuid).await?;
    Ok(wanted.len() == nic_list(state).len()
        && vm_adopt::all_recorded(&records, &wanted)
        && vm_adopt::all_recorded(&records, &ipv6_requests(state)))
}

/// A `vsphere_virtual_machine`'s state as ours, before the refresh: what the source knows
/// (UUID, moref, name, folder, CPUs, memory, host, each NIC's MAC). Each NIC's subnet and
/// address, and the datacenter, are left for the refresh (`resolve_moved`); the inputs only a
/// create uses stay unset as after an import.
fn moved_state<'a>(from: &vm_adopt::SourceVm) -> VmState<'a> {
    let opt = |v: &Option<String>| opt_string(v.clone().filter(|s| !s.is_empty()));
    VmState {
        id: opt_string(from.vm_uuid().map(str::to_ascii_lowercase)),
        moref: opt(&from.moid),
        name: opt(&from.name),
        folder: opt_string(from.folder()),
        num_cpus: from.num_cpus.into(),
        memory_mb: from.memory.into(),
        host_id: opt(&from.host_system_id),
        wait_for_guest_ip: Value::Value(true),
        guest_ip_timeout: string(DEFAULT_TIMEOUT),
        network_interface: Value::Value(
            from.network_interface
                .iter()
                .flatten()
                .map(|n| {
                    Value::Value(NicState {
                        mac: opt(&n.mac_address),
                        ..Default::default()
                    })
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// A moved VM not refreshed yet: the `vsphere_virtual_machine` state says no subnet or address
/// per NIC (an import always records both).
fn unresolved_move(state: &VmState<'_>) -> bool {
    state.template.is_null()
        && nic_list(state)
            .iter()
            .any(|n| !n.subnet_id.is_value() || !n.ip_address.is_value())
}

/// The refresh of a moved VM: each NIC's address (VMware Tools') and the subnet it falls in,
/// checked against the store without writing (see [`adopt`]), so the plan of the move fails
/// on an address that cannot be recorded.
async fn resolve_moved(
    diags: &mut Diagnostics,
    session: &Session,
    inventory: &Inventory,
    vm: &Vm,
    state: &mut VmState<'_>,
) -> Option<()> {
    let adopted = adopt(diags, session, inventory, vm, "move").await?;
    state.datacenter = adopted.datacenter;
    state.network_interface = adopted.network_interface;
    Some(())
}

/// The state of a VM adopted by import or by a move, with no write: each NIC's address (the
/// VM's own record on a re-import, else the one VMware Tools report) and the subnet it falls
/// in, checked against the store in a transaction that is rolled back. An address in no subnet,
/// or held by another record, is an error naming the VM, NIC, address and subnet or holder.
/// The first apply records them (`record_adopted`); until then the Tools-reported addresses
/// are observed ones, which no allocation hands out (`Store::sync_observed`, and the snapshot's
/// observations in every allocation).
async fn adopt<'a>(
    diags: &mut Diagnostics,
    session: &Session,
    inventory: &Inventory,
    vm: &Vm,
    verb: &str,
) -> Option<VmState<'a>> {
    if vm.template {
        diags.root_error(
            format!("Cannot {verb} a template"),
            format!("{:?} ({}) is a template, not a VM.", vm.name, vm.uuid),
        );
        return None;
    }
    if vm.nics.is_empty() {
        diags.root_error(
            format!("Cannot {verb} a VM without NICs"),
            format!(
                "VM {:?} ({}) has no network adapter; vsphereipam_vm manages VMs with at least \
                 one.",
                vm.name, vm.uuid
            ),
        );
        return None;
    }
    let adoption = vm_adopt::claims(
        diags,
        session,
        inventory,
        vm,
        None,
        &format!("Cannot {verb} the VM's addresses"),
    )
    .await?;
    vm_adopt::record(diags, session, vm, &adoption, false).await?;
    Some(adopted_state(inventory, vm, &adoption))
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
        if let IpAddr::V6(v6) = r.ip {
            // Guests may add SLAAC or privacy addresses: only a missing one is drift. Tools
            // reporting the NIC's IPv4 address but no global IPv6 one is drift too (the guest
            // dropped its IPv6 configuration), and the other way round below; Tools reporting
            // nothing on the NIC say nothing.
            let mac = mac.to_ascii_lowercase();
            let reported = vm
                .guest_ipv6
                .get(&mac)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if reported.contains(&v6) {
                continue;
            }
            if !reported.is_empty() {
                odd.push(format!(
                    "NIC {mac} has {v6} assigned but VMware Tools report {}",
                    reported
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            } else if vm.guest_ips.get(&mac).is_some_and(|ips| !ips.is_empty()) {
                odd.push(format!(
                    "NIC {mac} has {v6} assigned but VMware Tools report no global IPv6 \
                     address on it"
                ));
            }
            continue;
        }
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
        } else if vm
            .guest_ipv6
            .get(&mac.to_ascii_lowercase())
            .is_some_and(|ips| !ips.is_empty())
        {
            // Tools report the NIC (its IPv6 addresses) without its IPv4 one.
            odd.push(format!(
                "NIC {mac} has {} assigned but VMware Tools report no IPv4 address on it",
                r.ip
            ));
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
            if unresolved_move(&state) {
                diags.root_error(
                    "VM not found",
                    format!(
                        "The {} being moved names VM UUID {vm_uuid}, and vCenter (instance {}) \
                         has no VM with that UUID. Remove it from the state (`terraform state \
                         rm`) instead of moving it.",
                        vm_adopt::SOURCE_TYPE,
                        inventory.instance_uuid
                    ),
                );
                return None;
            }
            // A read never writes: the records stay until the apply that replaces or removes
            // the VM releases them (a plan that is never applied loses nothing).
            tracing::info!(%vm_uuid, "VM gone from vCenter: planning its replacement");
            diags.root_warning(
                format!(
                    "VM {} no longer exists in vCenter",
                    known(&state.name).unwrap_or(vm_uuid.clone())
                ),
                format!(
                    "No VM with UUID {vm_uuid} was found: it was deleted outside Terraform. The \
                     plan replaces it (or removes it when its configuration is gone); its \
                     addresses stay held until that apply releases them."
                ),
            );
            let mut gone = state.clone();
            mark_gone(&mut gone);
            return Some((gone, private_state));
        };
        let records = match vm_adopt::records_of(&session, &vm_uuid).await {
            Ok(r) => r,
            Err(e) => {
                values::store_error(diags, &e, None);
                return Some((state, private_state));
            }
        };
        let mut fresh = state.clone();
        if unresolved_move(&fresh) {
            resolve_moved(diags, &session, &inventory, vm, &mut fresh).await?;
        }
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
        let Some((input, guest)) = input_of(&config) else {
            return Some((planned, ValueEmpty));
        };
        let session = self.shared.session(diags)?;
        let inventory = session.inventory_or_diag(diags).await?;
        let view = match vmlife::check_new(ctx(&session), &inventory, &input).await {
            Ok(view) => view,
            Err(e) => {
                create_error(diags, &e, &input, &guest);
                return None;
            }
        };
        if !customization::check_family(diags, view.windows, &input.template, &guest) {
            return None;
        }
        if let (true, Some(name)) = (view.windows, &input.hostname) {
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
        if planned.hostname.is_unknown() {
            planned.hostname = string(view.hostname);
        }
        if planned.num_cpus.is_unknown() {
            planned.num_cpus = view.template_cpus.map(i64::from).into();
        }
        if planned.memory_mb.is_unknown() {
            planned.memory_mb = view.template_memory_mb.into();
        }
        if let Some(host) = view.host {
            planned.host_id = string(host);
        }
        Some((planned, ValueEmpty))
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
        if unresolved_move(&prior) {
            diags.root_error(
                "A moved VM needs a refresh",
                "The VM was moved from vsphere_virtual_machine, whose state does not say which \
                 subnet and address each NIC has; the refresh finds them. Plan without \
                 `-refresh=false`.",
            );
            return None;
        }
        let mut planned = proposed;
        let mut replace = Vec::new();
        // The read found the VM gone from vCenter (see `mark_gone`).
        if prior.moref.is_null() && prior.id.is_value() {
            replace.push(AttributePath::new("moref"));
        }
        // `datacenter`, `template`, `folder`, `datastore`, `hostname` and a NIC's `subnet_id` and
        // `ip_address` replace the VM by their schema (`replaces`); what follows depends on
        // more than one attribute's change.
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
        let before = nic_list(&prior);
        let after = nic_list(&planned);
        if before.len() != after.len() {
            replace.push(AttributePath::new("network_interface"));
        }
        let subnet_ids: Vec<(Option<String>, Option<String>)> = after
            .iter()
            .map(|n| (known(&n.subnet_id), known(&n.ipv6_subnet_id)))
            .collect();
        let mut drifted = Vec::new();
        for (i, b) in before.iter().take(after.len()).enumerate() {
            // A NIC gone or moved off its subnet's wires outside Terraform.
            match (known(&b.mac), known(&b.wire_id), known(&b.subnet_id)) {
                (Some(_), Some(wire), Some(subnet)) => {
                    // A dual-stack NIC's port group must stay a wire of both subnets.
                    if let Some(v6) = known(&b.ipv6_subnet_id) {
                        drifted.push((i, wire.clone(), v6));
                    }
                    drifted.push((i, wire, subnet));
                }
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
        // An adopted VM whose addresses are not recorded yet: its apply records them, so the
        // plan must not be a no-op (Terraform would skip the apply). Recording `template` makes
        // it an update, unless the configuration leaves `template` null too (the one
        // `-generate-config-out` writes for an `import {}` block).
        if prior.template.is_null() && planned.template.is_null() {
            match adopted_recorded(&session, &prior).await {
                Ok(true) => {}
                Ok(false) => planned.guest_ip_addresses = Value::Unknown,
                Err(e) => {
                    values::store_error(diags, &e, None);
                    return None;
                }
            }
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
                .filter_map(|(subnet_id, ipv6_subnet_id)| {
                    Some(NicInput {
                        subnet_id: subnet_id?,
                        ipv6_subnet_id,
                        ..Default::default()
                    })
                })
                .collect();
            let subnets = match vmlife::subnets_of(&views, &nics, &session.store.describe()) {
                Ok(s) => s,
                Err(CreateError::SubnetMissing { index, ipv6, .. }) => {
                    diags.error(
                        "Subnet not found",
                        "The subnet is not in the IPAM store any more.",
                        nic_path(index, if ipv6 { "ipv6_subnet_id" } else { "subnet_id" }),
                    );
                    return None;
                }
                Err(e) => {
                    diags.root_error("Cannot check the VM's placement", e.to_string());
                    return None;
                }
            };
            let datacenter = known(&planned.datacenter).unwrap_or_default();
            let per_nic: Vec<_> = subnets.iter().map(vmlife::NicSubnets::all).collect();
            match placement::place_nics(
                &inventory,
                &datacenter,
                &per_nic,
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
        let Some((input, guest)) = input_of(&config) else {
            diags.root_error(
                "Unknown values at apply time",
                "Every input of the VM must be known when it is created.",
            );
            return None;
        };
        let session = self.shared.session(diags)?;
        // Loads the snapshot (and mirrors its observed addresses) like every other reader.
        session.inventory_or_diag(diags).await?;
        let created = match vmlife::create(ctx(&session), &input).await {
            Ok(c) => c,
            Err(e) => {
                create_error(diags, &e, &input, &guest);
                return None;
            }
        };
        let mut state = planned;
        state.id = string(created.uuid);
        state.moref = string(created.moref);
        state.host_id = string(created.host);
        state.power_state = string("poweredOn");
        state.guest_ip_addresses = strings(created.guest_ips);
        state.hostname = string(created.hostname);
        if state.num_cpus.is_unknown() {
            state.num_cpus = created.template_cpus.map(i64::from).into();
        }
        if state.memory_mb.is_unknown() {
            state.memory_mb = created.template_memory_mb.into();
        }
        if state.wait_for_guest_ip.is_unknown() {
            state.wait_for_guest_ip = Value::Value(input.wait);
        }
        for (nic, made) in nic_list_mut(&mut state).into_iter().zip(created.nics) {
            nic.ip_address = string(made.ip.to_string());
            nic.ipv6_address = opt_string(made.ipv6.map(|ip| ip.to_string()));
            nic.mac = string(made.mac);
            nic.wire_id = string(made.wire_id);
            nic.port_group = opt_string(made.port_group);
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
        // An imported or moved VM: its first apply records its addresses before anything else.
        if prior.template.is_null() {
            record_adopted(diags, &session, &planned).await?;
        }
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
        let vm_uuid = known(&state.id)?;
        match vmlife::destroy(ctx(&session), &vm_uuid).await {
            Ok(_) => Some(()),
            Err(DestroyError::Store(e)) => {
                values::store_error(diags, &e, None);
                None
            }
            Err(e) => {
                diags.root_error(
                    "Destroying the VM failed",
                    format!("{e}. Its addresses stay held; retry the destroy."),
                );
                None
            }
        }
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity(&[(
            "vm_uuid",
            "id",
            "The VM's BIOS UUID (`config.uuid`), lower case.",
        )]))
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
        // `import {}` blocks import inside `terraform plan`, so import only reads and checks;
        // the first apply records the addresses, as after a move.
        let mut state = adopt(diags, &session, &inventory, vm, "import").await?;
        refresh(&mut state, &inventory, vm, &[]);
        Some((state, ValueEmpty))
    }

    /// `moved { from = vsphere_virtual_machine.x  to = vsphereipam_vm.x }`. Terraform asks
    /// before it configures the provider, so this only translates the source's state
    /// (`vm_adopt::moved_state`); the refresh that follows finds each NIC's address and subnet,
    /// and the first apply records them.
    async fn move_state<'a>(
        &self,
        diags: &mut Diagnostics,
        source: MoveSource,
        target_type: &str,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        if !source.is(vm_adopt::SOURCE_PROVIDER, vm_adopt::SOURCE_TYPE) {
            source.refuse(diags, target_type, &[vm_adopt::ACCEPTED]);
            return None;
        }
        let from = vm_adopt::read_source(diags, &source)?;
        Some((moved_state(&from), ValueEmpty))
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
        assert_eq!(parse_duration(" 1h 30m "), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        for bad in ["", "10", "m", "1x", "-5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_moved_state_is_what_the_source_knows_until_the_refresh() {
        let from: vm_adopt::SourceVm = serde_json::from_value(json!({
            "id": "4216AA4E-0000-0000-0000-000000000001",
            "uuid": "4216AA4E-0000-0000-0000-000000000001",
            "moid": "vm-42", "name": "web", "folder": "/prod/web/", "num_cpus": 2,
            "memory": 2048, "host_system_id": "host-7",
            "network_interface": [{"mac_address": "00:50:56:aa:bb:cc", "network_id": "dvportgroup-9"}],
            "clone": [{"template_uuid": "4216aa4e-0000-0000-0000-00000000000f"}]
        }))
        .unwrap();
        let state = moved_state(&from);
        assert_eq!(
            state.id,
            string("4216aa4e-0000-0000-0000-000000000001".to_string())
        );
        assert_eq!(state.moref, string("vm-42".to_string()));
        assert_eq!(state.folder, string("prod/web".to_string()));
        assert_eq!(state.num_cpus, Value::Value(2));
        assert_eq!(state.memory_mb, Value::Value(2048));
        // Recorded from the configuration by the first apply, which this makes a change.
        assert!(state.template.is_null() && state.datastore.is_null());
        let nics = nic_list(&state);
        assert_eq!(nics.len(), 1);
        assert_eq!(nics[0].mac, string("00:50:56:aa:bb:cc".to_string()));
        assert!(unresolved_move(&state));
        // An imported VM's NICs have both.
        let mut imported = state.clone();
        for nic in nic_list_mut(&mut imported) {
            nic.subnet_id = string("s".to_string());
            nic.ip_address = string("10.0.0.5".to_string());
        }
        assert!(!unresolved_move(&imported));
    }

    #[test]
    fn a_nics_records_split_into_its_subnet_id_address_and_its_ipv6_one() {
        let record = |subnet: &str, ip: &str| AddressRecord {
            subnet_id: subnet.into(),
            ip: ip.parse().unwrap(),
            owner_kind: OwnerKind::Vm,
            owner_id: "u".into(),
            vm_uuid: Some("u".into()),
            mac: Some("00:50:56:aa:bb:cc".into()),
            wire_id: None,
            pending: false,
            description: None,
            created_at: 0,
        };
        let (v4, v6) = (record("s4", "10.0.0.5"), record("s6", "2001:db8::5"));
        // Dual stack, whatever the order of the records.
        for mine in [vec![&v4, &v6], vec![&v6, &v4]] {
            let (first, second) = nic_records(&mine, Some("s4"));
            assert_eq!(first.map(|r| r.ip), Some(v4.ip));
            assert_eq!(second.map(|r| r.ip), Some(v6.ip));
            // Not known yet (an import): the IPv4 one is subnet_id's.
            let (first, second) = nic_records(&mine, None);
            assert_eq!((first.unwrap().ip, second.unwrap().ip), (v4.ip, v6.ip));
        }
        // IPv6-only: one address, no second.
        let (first, second) = nic_records(&[&v6], Some("s6"));
        assert_eq!((first.map(|r| r.ip), second), (Some(v6.ip), None));
        let (first, second) = nic_records(&[], Some("s4"));
        assert!(first.is_none() && second.is_none());
    }

    #[test]
    fn host_names() {
        assert!(valid_host_name("web-1"));
        assert!(!valid_host_name("web_1"));
        assert!(!valid_host_name("-web"));
    }
}
