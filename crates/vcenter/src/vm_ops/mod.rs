//! Virtual machine lifecycle for the `vsphereipam_vm` resource: create a VM from a template with
//! fixed guest addresses, read it back, reconfigure it, destroy it, and wait until VMware Tools
//! reports the assigned addresses.
//!
//! Plain Rust types go in and out (morefs as strings, addresses as `std::net` types); vim_rs types stay
//! inside this crate. Every public function returns a boxed `Send` future ([`crate::BoxFuture`]).
//!
//! Lost answers: a SOAP fault is vCenter's answer, so its outcome is known; a transport error
//! (the connection broke after the request went out) is not. Reads are asked again; a call
//! that changes something is *found out*: the VM is read back on a new connection (is it on
//! the host, powered on, gone, are CPU and memory as asked; the clone is looked up by the
//! instance UUID the spec gives it), and the call runs again only when its effect is not there.
//! Both retry, pausing longer each time, until the client's find-out budget is spent; then the
//! error is [`VmOpError::Unknown`] and the caller must treat the change as possibly made.
//!
//! The create flow is in `create`, the guest customization spec in `customize`; the crate's
//! `pc` (PropertyCollector reads), `task` (waiting for tasks, finding out lost answers), `fault`
//! and `spec` (empty vim25 spec literals) modules serve every operation here.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use vim_rs::mo::VirtualMachine;
use vim_rs::types::enums::{MoTypesEnum, VirtualMachinePowerStateEnum};
use vim_rs::types::struct_enum::StructType;

use crate::client::VsphereClient;
use crate::fault::{retry_lost, Fault, StepError};
use crate::guest::{duplicates_from_guest_net, from_guest_net, ipv6_from_guest_net};
use crate::pc::{moref, read_one};
use crate::rows::VmRow;
use crate::spec::{empty_config_spec, empty_relocate_spec};
use crate::task::run_checked;
use crate::BoxFuture;

mod create;
mod customize;

pub use customize::{GuestFamily, LinuxPrep, Sysprep, WindowsIdentity};

/// How often [`wait_for_guest_ips`] reads `guest.net`.
const GUEST_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The port group a NIC is connected to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NicBacking {
    /// A standard port group: its `Network` moref ("network-12"). Its name, which the backing
    /// must carry as device name, is read from vCenter.
    Standard { network: String },
    /// A distributed port group: the switch UUID and the port group key ("dvportgroup-13",
    /// which is also its moref).
    Distributed {
        switch_uuid: String,
        portgroup_key: String,
    },
}

/// One NIC of a new VM and the fixed addresses the guest customization gives it: IPv4, IPv6
/// or both (dual stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub backing: NicBacking,
    /// The fixed IPv4 settings. `None` (an IPv6-only NIC) leaves IPv4 to DHCP, as HashiCorp's
    /// vSphere provider does for a NIC without an IPv4 address: vCenter's adapter settings
    /// always need an IPv4 generator.
    pub ipv4: Option<Ipv4Settings>,
    /// The fixed IPv6 settings (`ipV6Spec`); `None` leaves IPv6 as the template has it.
    pub ipv6: Option<Ipv6Settings>,
    /// Resolvers of this adapter, either family.
    pub dns_servers: Vec<IpAddr>,
    /// DNS domain of this adapter ("example.com").
    pub dns_domain: Option<String>,
}

/// A NIC's fixed IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Settings {
    pub ip: Ipv4Addr,
    /// Subnet prefix length, 1..=32 (24 gives the mask 255.255.255.0).
    pub prefix_len: u8,
    pub gateways: Vec<Ipv4Addr>,
}

/// A NIC's fixed IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Settings {
    pub ip: Ipv6Addr,
    /// Subnet prefix length, 1..=128.
    pub prefix_len: u8,
    pub gateways: Vec<Ipv6Addr>,
}

impl NicSpec {
    /// The NIC's fixed addresses: IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let v4 = self.ipv4.as_ref().map(|s| IpAddr::V4(s.ip));
        let v6 = self.ipv6.as_ref().map(|s| IpAddr::V6(s.ip));
        v4.into_iter().chain(v6).collect()
    }
}

/// What [`create_vm`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVm {
    /// VM name in vCenter.
    pub name: String,
    /// Moref of the template or VM to clone ("vm-42").
    pub source: String,
    /// Moref of the host to run on ("host-21"); the VM goes into its compute resource's root
    /// resource pool.
    pub host: String,
    /// Datastore moref; `None` keeps the source's datastore.
    pub datastore: Option<String>,
    /// VM folder moref; `None` is the VM folder of the host's datacenter.
    pub folder: Option<String>,
    /// `None` keeps the source's value.
    pub num_cpus: Option<i32>,
    /// `None` keeps the source's value.
    pub memory_mb: Option<i64>,
    /// Guest host name (Windows: computer name).
    pub hostname: String,
    pub guest: GuestFamily,
    /// The NICs in device order: the source's NICs are reused in their order, extra ones added,
    /// surplus ones removed. At least one.
    pub nics: Vec<NicSpec>,
    /// `config.instanceUuid` to give the clone, so a caller that loses track of the create (its
    /// process killed) can find the VM again by an id it chose; `None` lets vCenter pick one.
    pub instance_uuid: Option<String>,
}

/// A VM [`create_vm`] made, powered on with its customization applied at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedVm {
    pub moref: String,
    /// `config.uuid` (BIOS UUID).
    pub uuid: String,
    /// Moref of the host it runs on.
    pub host: String,
    /// Lower-case MAC of each NIC, in the order of [`CreateVm::nics`].
    pub macs: Vec<String>,
}

/// Why a VM operation failed. Each message says what was attempted and what vCenter answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmOpError {
    /// The request cannot work as given (bad value, object not found); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The VM does not exist (any more).
    #[error("VM {0} does not exist")]
    NotFound(String),
    /// A vCenter call failed; `step` says what was being done.
    #[error("{step} failed: {reason}")]
    Failed { step: String, reason: String },
    /// The answer to a call that changes something was lost (the connection broke after the
    /// request went out), and what the call did could not be found out within the client's
    /// find-out budget (vCenter stayed unreachable): it may or may not have happened. `moref`
    /// is the VM concerned when it is known.
    #[error(
        "{step}: the answer from vCenter was lost and what the call did could not be found out \
         ({reason})"
    )]
    Unknown {
        step: String,
        reason: String,
        moref: Option<String>,
    },
    /// [`create_vm`] failed after the clone existed, and the partial VM was destroyed.
    #[error(
        "creating VM \"{name}\" failed while {step}: {reason}. The partially created VM {moref} \
         was removed"
    )]
    CreateRolledBack {
        name: String,
        moref: String,
        step: String,
        reason: String,
    },
    /// [`create_vm`] failed after the clone existed, and destroying the partial VM failed too.
    #[error(
        "creating VM \"{name}\" failed while {step}: {reason}. Removing the partially created VM \
         {moref} failed too ({cleanup_error})"
    )]
    CreateLeftover {
        name: String,
        moref: String,
        step: String,
        reason: String,
        cleanup_error: String,
    },
    /// VMware Tools did not report the expected addresses in time.
    #[error(
        "VM {moref}: VMware Tools did not report the expected addresses within {waited_secs}s \
         (expected {missing}); Tools reported {reported}"
    )]
    GuestIpTimeout {
        moref: String,
        waited_secs: u64,
        /// "mac ip" pairs not (exactly) reported yet.
        missing: String,
        /// What Tools reported per MAC at the last read.
        reported: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Public operations

/// Clones `spec.source` into a new VM on `spec.host`, gives each NIC its port group and fixed
/// address through guest customization, and powers it on. See the module documentation for the
/// steps and their cost. Bad input and missing objects fail before anything is created; a later
/// failure removes the partial VM ([`VmOpError::CreateRolledBack`], or
/// [`VmOpError::CreateLeftover`] with its moref when that fails too).
pub fn create_vm<'a>(
    client: &'a VsphereClient,
    spec: &'a CreateVm,
) -> BoxFuture<'a, Result<CreatedVm, VmOpError>> {
    Box::pin(async move {
        let started = Instant::now();
        let calls_before = client.calls();
        let result = create::create(client, spec).await;
        tracing::debug!(
            name = %spec.name,
            ok = result.is_ok(),
            calls = client.calls() - calls_before,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "create_vm finished"
        );
        result
    })
}

/// Powers the VM off when it is on, then destroys it. A VM that does not exist is success.
/// A lost answer is found out (is the VM still there?) and the step run again when needed;
/// [`VmOpError::Unknown`] when vCenter cannot be asked.
pub fn destroy_vm<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
) -> BoxFuture<'a, Result<(), VmOpError>> {
    Box::pin(async move {
        destroy(client, moref).await.map_err(|e| {
            StepError {
                step: format!("destroying VM {moref} ({})", e.step),
                fault: e.fault,
            }
            .into_op_error(None)
        })
    })
}

/// Changes CPU count, memory and/or name in one `ReconfigVM_Task` (`None` leaves a value as it
/// is; all `None` makes no call). vCenter refuses CPU/memory changes of a powered-on VM unless
/// hot add is enabled; that refusal is returned as is. A lost answer is found out by reading
/// the VM back.
pub fn reconfigure_vm<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
    num_cpus: Option<i32>,
    memory_mb: Option<i64>,
    name: Option<String>,
) -> BoxFuture<'a, Result<(), VmOpError>> {
    Box::pin(async move {
        if num_cpus.is_some_and(|n| n < 1) {
            return Err(VmOpError::Invalid(format!(
                "num_cpus must be at least 1, got {num_cpus:?}"
            )));
        }
        if memory_mb.is_some_and(|m| m < 1) {
            return Err(VmOpError::Invalid(format!(
                "memory_mb must be at least 1, got {memory_mb:?}"
            )));
        }
        if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(VmOpError::Invalid("the new VM name is empty".to_string()));
        }
        if num_cpus.is_none() && memory_mb.is_none() && name.is_none() {
            return Ok(());
        }
        let mut config = empty_config_spec();
        config.num_cp_us = num_cpus;
        config.memory_mb = memory_mb;
        config.name = name.clone();
        let step = format!("reconfiguring VM {moref}");
        let (config, name) = (&config, name.as_deref());
        run_checked(
            client,
            &step,
            move || async move {
                VirtualMachine::new(client.vim(), moref)
                    .reconfig_vm_task(config)
                    .await
            },
            move || {
                vm_probe(client, moref, move |row| {
                    num_cpus.is_none_or(|n| row.num_cpu == Some(n))
                        && memory_mb.is_none_or(|m| row.memory_mb.map(i64::from) == Some(m))
                        && name.is_none_or(|n| row.name.as_deref() == Some(n))
                })
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.into_op_error(Some(moref)))
    })
}

/// Powers the VM on (`on`) or off; a VM already in that state is left alone. A lost answer is
/// found out by reading the power state.
pub fn set_power<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
    on: bool,
) -> BoxFuture<'a, Result<(), VmOpError>> {
    Box::pin(async move {
        let step = if on { "powering on" } else { "powering off" };
        let result = run_checked(
            client,
            step,
            move || async move {
                let handle = VirtualMachine::new(client.vim(), moref);
                if on {
                    handle.power_on_vm_task(None).await
                } else {
                    handle.power_off_vm_task().await
                }
            },
            move || vm_probe(client, moref, move |row| powered_on(row) == on),
        )
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.fault.kind == Some(StructType::InvalidPowerState) => Ok(()),
            Err(e) => {
                Err(StepError::new(format!("{step} VM {moref}"), e.fault)
                    .into_op_error(Some(moref)))
            }
        }
    })
}

/// Moves a VM to another host of its cluster (vMotion when it is powered on); the resource pool
/// and datastore stay. A lost answer is found out by reading the VM's host.
pub fn relocate_vm<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
    host: &'a str,
) -> BoxFuture<'a, Result<(), VmOpError>> {
    Box::pin(async move {
        let mut spec = empty_relocate_spec();
        spec.host = Some(self::moref(MoTypesEnum::HostSystem, host));
        let step = format!("moving VM {moref} to host {host}");
        let spec = &spec;
        run_checked(
            client,
            &step,
            move || async move {
                VirtualMachine::new(client.vim(), moref)
                    .relocate_vm_task(spec, None)
                    .await
            },
            move || vm_probe(client, moref, move |row| on_host(row, host)),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.into_op_error(Some(moref)))
    })
}

/// The moref of the VM whose `config.instanceUuid` is `instance_uuid` (SearchIndex), `None`
/// when there is none. A lost answer is asked again until the client's find-out budget is
/// spent, then [`VmOpError::Unknown`].
pub fn find_by_instance_uuid<'a>(
    client: &'a VsphereClient,
    instance_uuid: &'a str,
) -> BoxFuture<'a, Result<Option<String>, VmOpError>> {
    Box::pin(find_vm_by(client, instance_uuid, true))
}

/// The moref of the VM whose BIOS UUID (`config.uuid`) is `uuid`, like
/// [`find_by_instance_uuid`].
pub fn find_by_uuid<'a>(
    client: &'a VsphereClient,
    uuid: &'a str,
) -> BoxFuture<'a, Result<Option<String>, VmOpError>> {
    Box::pin(find_vm_by(client, uuid, false))
}

async fn find_vm_by(
    client: &VsphereClient,
    uuid: &str,
    instance: bool,
) -> Result<Option<String>, VmOpError> {
    search_uuid(client, uuid, instance).await.map_err(|fault| {
        let kind = if instance { "instance UUID" } else { "UUID" };
        StepError::new(format!("looking up the VM with {kind} {uuid}"), fault).into_op_error(None)
    })
}

/// The moref of the object at an inventory path ("DC0/vm/web" for a folder, "DC0/datastore/ds1"
/// for a datastore) through the SearchIndex; `None` when there is none.
pub fn find_by_path<'a>(
    client: &'a VsphereClient,
    path: &'a str,
) -> BoxFuture<'a, Result<Option<String>, VmOpError>> {
    Box::pin(async move {
        let Some(index) = client.service_content().search_index.as_ref() else {
            return Err(VmOpError::Failed {
                step: format!("looking up {path:?}"),
                reason: "vCenter has no SearchIndex".to_string(),
            });
        };
        let search = vim_rs::mo::SearchIndex::new(client.vim(), &index.value);
        match search.find_by_inventory_path(path).await {
            Ok(found) => Ok(found.map(|m| m.value)),
            Err(e) => Err(VmOpError::Failed {
                step: format!("looking up {path:?}"),
                reason: Fault::from_vim(&e).to_string(),
            }),
        }
    })
}

/// Reads `guest.net` about once a second until every `(mac, ip)` of `expected` holds. An IPv4
/// address: VMware Tools reports that MAC with exactly that one IPv4 address (link-local ones
/// ignored). An IPv6 address: it is among the MAC's global IPv6 addresses (a guest may add
/// SLAAC or privacy addresses beside it; link-local ones are ignored). An address the guest
/// reports in state `duplicate` (another host holds it) does not count. A MAC has at most one
/// expected address per family. Returns what Tools reported at that point: per lower-case MAC
/// its IPv4 addresses, then its global IPv6 addresses. On timeout the error names each
/// address not reported and lists what Tools reported last.
pub fn wait_for_guest_ips<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
    expected: &'a [(String, IpAddr)],
    timeout: Duration,
) -> BoxFuture<'a, Result<BTreeMap<String, Vec<IpAddr>>, VmOpError>> {
    Box::pin(async move {
        // (mac, is IPv6) → address
        let mut want: BTreeMap<(String, bool), IpAddr> = BTreeMap::new();
        for (mac, ip) in expected {
            let mac = mac.trim().to_ascii_lowercase();
            if let Some(other) = want.insert((mac.clone(), ip.is_ipv6()), *ip) {
                if other != *ip {
                    return Err(VmOpError::Invalid(format!(
                        "MAC {mac} is expected with two addresses, {other} and {ip}"
                    )));
                }
            }
        }
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let (reported, duplicates) = read_guest_ips(client, moref).await?;
            let missing: Vec<String> = want
                .iter()
                .filter(|((mac, _), ip)| !reported_as_expected(&reported, mac, **ip))
                .map(|((mac, _), ip)| format!("{mac} {ip}"))
                .collect();
            if missing.is_empty() {
                tracing::debug!(
                    vm = %moref,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "guest addresses reported"
                );
                return Ok(reported);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(VmOpError::GuestIpTimeout {
                    moref: moref.to_string(),
                    waited_secs: started.elapsed().as_secs(),
                    missing: missing.join(", "),
                    reported: if duplicates.is_empty() {
                        describe_reported(&reported)
                    } else {
                        format!(
                            "{}; and as duplicates (another host on the network holds them): {}",
                            describe_reported(&reported),
                            describe_reported(&duplicates)
                        )
                    },
                });
            }
            tokio::time::sleep(GUEST_POLL_INTERVAL.min(deadline - now)).await;
        }
    })
}

/// Whether Tools report `ip` on `mac` as [`wait_for_guest_ips`] expects it: the one IPv4
/// address of the MAC, or one of its IPv6 addresses.
fn reported_as_expected(reported: &BTreeMap<String, Vec<IpAddr>>, mac: &str, ip: IpAddr) -> bool {
    let on_mac = reported.get(mac).map(Vec::as_slice).unwrap_or_default();
    match ip {
        IpAddr::V4(_) => {
            let v4: Vec<&IpAddr> = on_mac.iter().filter(|a| a.is_ipv4()).collect();
            v4 == [&ip]
        }
        IpAddr::V6(_) => on_mac.contains(&ip),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the VM back

/// Whether the VM's properties satisfy `check`; a VM that is gone is ManagedObjectNotFound.
async fn vm_probe(
    client: &VsphereClient,
    vm: &str,
    check: impl Fn(&VmRow) -> bool,
) -> Result<bool, Fault> {
    match read_vm(client, vm).await? {
        Some(row) => Ok(check(&row)),
        None => Err(Fault {
            kind: Some(StructType::ManagedObjectNotFound),
            text: format!("VM {vm} does not exist"),
            lost: false,
        }),
    }
}

fn powered_on(row: &VmRow) -> bool {
    matches!(
        row.power_state,
        Some(VirtualMachinePowerStateEnum::PoweredOn)
    )
}

fn on_host(row: &VmRow, host: &str) -> bool {
    row.host.as_ref().is_some_and(|h| h.value == host)
}

/// SearchIndex.FindByUuid over VMs' instance (or BIOS) UUIDs, asked again while the answer is
/// lost.
async fn search_uuid(
    client: &VsphereClient,
    uuid: &str,
    instance: bool,
) -> Result<Option<String>, Fault> {
    let Some(index) = client.service_content().search_index.as_ref() else {
        return Err(Fault::text("vCenter has no SearchIndex"));
    };
    retry_lost(client, "looking up a VM by UUID", move || async move {
        vim_rs::mo::SearchIndex::new(client.vim(), &index.value)
            .find_by_uuid(None, uuid, true, Some(instance))
            .await
            .map(|found| found.map(|m| m.value))
            .map_err(|e| Fault::from_vim(&e))
    })
    .await
}

async fn read_vm(client: &VsphereClient, vm: &str) -> Result<Option<VmRow>, Fault> {
    read_one(client, moref(MoTypesEnum::VirtualMachine, vm)).await
}

/// Addresses VMware Tools reports per lower-case MAC ([`crate::guest`]): usable IPv4 ones, then
/// global IPv6 ones; MACs without either left out. A VM that does not exist is an error.
async fn read_guest_ips(
    client: &VsphereClient,
    vm: &str,
) -> Result<(Reported, Reported), VmOpError> {
    let row: Option<VmRow> = read_one(client, moref(MoTypesEnum::VirtualMachine, vm))
        .await
        .map_err(|fault| VmOpError::Failed {
            step: format!("reading the guest networking of VM {vm}"),
            reason: fault.to_string(),
        })?;
    let row = row.ok_or_else(|| VmOpError::NotFound(vm.to_string()))?;
    let net = row.guest_net.as_deref().unwrap_or_default();
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let duplicates = duplicates_from_guest_net(net);
    for (mac, ips) in from_guest_net(net) {
        out.entry(mac)
            .or_default()
            .extend(ips.into_iter().map(IpAddr::V4));
    }
    for (mac, ips) in ipv6_from_guest_net(net) {
        out.entry(mac)
            .or_default()
            .extend(ips.into_iter().map(IpAddr::V6));
    }
    // An address the guest found in use elsewhere (duplicate address detection) is not the
    // guest's: waiting on it would hand a taken address to the VM's records.
    for (mac, dups) in &duplicates {
        if let Some(ips) = out.get_mut(mac) {
            ips.retain(|ip| !dups.contains(ip));
            if ips.is_empty() {
                out.remove(mac);
            }
        }
    }
    Ok((out, duplicates))
}

/// Addresses per lower-case MAC.
type Reported = BTreeMap<String, Vec<IpAddr>>;

fn describe_reported(reported: &BTreeMap<String, Vec<IpAddr>>) -> String {
    if reported.is_empty() {
        return "no usable address on any NIC".to_string();
    }
    reported
        .iter()
        .map(|(mac, ips)| {
            let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            format!("{mac} {}", ips.join(" "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Destroy

/// Powers off when on, destroys; a VM that is gone at any point is success. Lost answers are
/// found out by reading the VM (gone, or powered off) and the step run again when needed.
async fn destroy(client: &VsphereClient, vm: &str) -> Result<(), StepError> {
    let row = read_vm(client, vm)
        .await
        .map_err(|fault| StepError::new("reading the power state", fault))?;
    let Some(row) = row else {
        return Ok(());
    };
    if powered_on(&row) {
        let off = run_checked(
            client,
            "powering off",
            move || async move {
                VirtualMachine::new(client.vim(), vm)
                    .power_off_vm_task()
                    .await
            },
            move || vm_probe(client, vm, |row| !powered_on(row)),
        )
        .await;
        match off {
            Ok(_) => {}
            Err(e) => match e.fault.kind {
                Some(StructType::ManagedObjectNotFound) => return Ok(()),
                // Powered off meanwhile.
                Some(StructType::InvalidPowerState) => {}
                _ => return Err(e),
            },
        }
    }
    let gone = run_checked(
        client,
        "destroying",
        move || async move { VirtualMachine::new(client.vim(), vm).destroy_task().await },
        move || async move { Ok::<bool, Fault>(read_vm(client, vm).await?.is_none()) },
    )
    .await;
    match gone {
        Ok(_) => Ok(()),
        Err(e) if e.fault.kind == Some(StructType::ManagedObjectNotFound) => Ok(()),
        Err(e) => Err(e),
    }
}
