//! The inventory snapshot: what the provider knows of one vCenter at one moment.
//!
//! Plain data, filled by [`super::inventory`] from one bulk PropertyCollector fetch and shared
//! (behind an `Arc`) by every resource of a plan or apply. Morefs are the managed object ids
//! ("dvportgroup-13", "host-21", "vm-42").

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// VLAN setting of a port group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Vlan {
    /// No VLAN tagging.
    None,
    /// One VLAN id (1..4094).
    Id { id: u16 },
    /// Trunk: the listed ranges (inclusive) are carried tagged.
    Trunk { ranges: Vec<(u16, u16)> },
    /// Private VLAN: the secondary VLAN id.
    Private { id: u16 },
}

impl Vlan {
    /// The contract's `vlan_id` number: 0 none, -1 trunk, otherwise the (secondary) VLAN id.
    pub fn as_number(&self) -> i64 {
        match self {
            Vlan::None => 0,
            Vlan::Id { id } | Vlan::Private { id } => i64::from(*id),
            Vlan::Trunk { .. } => -1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortGroupKind {
    /// `Network` backed by host standard vSwitches.
    Standard,
    /// `DistributedVirtualPortgroup`.
    Distributed,
}

impl PortGroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortGroupKind::Standard => "standard",
            PortGroupKind::Distributed => "distributed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Datacenter {
    pub moref: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortGroup {
    pub moref: String,
    pub name: String,
    pub kind: PortGroupKind,
    /// Name of the datacenter the port group lives in.
    pub datacenter: String,
    /// Standard: the vSwitch name(s) carrying it on its hosts, joined with "," when they differ
    /// between hosts; distributed: the distributed switch name.
    pub switch_name: String,
    /// Distributed switch UUID; `None` for standard port groups.
    pub switch_uuid: Option<String>,
    /// Distributed port group key (equal to the moref on vCenter); `None` for standard.
    pub key: Option<String>,
    pub vlan: Vlan,
    /// Morefs of hosts that carry the port group, sorted and unique.
    pub host_ids: Vec<String>,
    /// True for the uplink port group of a distributed switch (never a VM network).
    pub uplink: bool,
}

/// A host VMkernel adapter (management, vMotion, storage ...).
#[derive(Debug, Clone, Serialize)]
pub struct VmkNic {
    pub device: String,
    /// Moref of the port group it is connected to, when it could be resolved.
    pub portgroup: Option<String>,
    pub ip: Option<Ipv4Addr>,
    /// Static IPv6 addresses, global ones only.
    pub ipv6: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub moref: String,
    pub name: String,
    pub datacenter: String,
    /// Moref of the cluster or standalone compute resource owning the host.
    pub compute_resource: Option<String>,
    /// `connected`, `disconnected` or `notResponding`.
    pub connection_state: String,
    pub in_maintenance: bool,
    pub vmknics: Vec<VmkNic>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VmNic {
    /// Virtual device key (4000, 4001 ...), in device order.
    pub key: i32,
    /// Lower-case, colon separated.
    pub mac: String,
    /// Moref of the backing port group (standard `Network` or distributed port group).
    pub portgroup: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vm {
    pub moref: String,
    pub name: String,
    /// `config.uuid` (BIOS UUID), the id users give.
    pub uuid: String,
    pub instance_uuid: Option<String>,
    pub template: bool,
    /// `poweredOn`, `poweredOff` or `suspended`.
    pub power_state: String,
    /// Moref of the host it runs on.
    pub host: Option<String>,
    pub guest_family: Option<String>,
    pub guest_hostname: Option<String>,
    /// NICs sorted by device key.
    pub nics: Vec<VmNic>,
    /// IPv4 addresses VMware Tools reports, per lower-case MAC (from `guest.net`).
    pub guest_ips: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Global IPv6 addresses VMware Tools reports, per lower-case MAC (link-local ones left
    /// out): addresses in use, never handed out.
    pub guest_ipv6: BTreeMap<String, Vec<Ipv6Addr>>,
    pub num_cpus: Option<i32>,
    pub memory_mb: Option<i64>,
}

impl Vm {
    /// Every Tools-reported IPv4 address of the VM, sorted and unique.
    pub fn all_guest_ips(&self) -> Vec<Ipv4Addr> {
        let mut ips: Vec<Ipv4Addr> = self.guest_ips.values().flatten().copied().collect();
        ips.sort();
        ips.dedup();
        ips
    }
}

/// One consistent picture of a vCenter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    /// `about.instanceUuid` of the vCenter: prefix of wire ids.
    pub instance_uuid: String,
    pub datacenters: Vec<Datacenter>,
    pub hosts: Vec<Host>,
    pub portgroups: Vec<PortGroup>,
    pub vms: Vec<Vm>,
}
