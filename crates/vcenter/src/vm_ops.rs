//! Virtual machine lifecycle for the `vsphereipam_vm` resource: create a VM from a template with
//! fixed guest addresses, read it back, reconfigure it, destroy it, and wait until VMware Tools
//! reports the assigned addresses.
//!
//! Plain Rust types go in and out (morefs as strings, addresses as [`Ipv4Addr`]); vim_rs types stay
//! inside this module. Every public function returns a boxed `Send` future ([`crate::BoxFuture`]).
//!
//! [`create_vm`] runs a flow that is correct on vCenter and also works on govmomi's simulator
//! (`../shared/SIMULATOR.md`):
//!
//! 1. one PropertyCollector read checks every input and finds what the clone needs: the chosen
//!    host's resource pool (from its compute resource), the datacenter's VM folder, the source's
//!    NICs, that the datastore and port groups exist and that the host carries the port groups.
//!    A wrong moref fails here, before anything is created;
//! 2. `CloneVM_Task` into the host's pool (and datastore, folder) with CPU/memory and NIC changes:
//!    the source's NICs are *edited* in device order (new backing, generated MAC), missing ones
//!    added, surplus ones removed. Editing instead of replacing keeps a NIC count the guest
//!    customization accepts (SIMULATOR.md item 2);
//! 3. one read of the clone: its BIOS UUID, host, hardware and the new MACs;
//! 4. `ReconfigVM_Task` only when CPU/memory did not come out as asked (the simulator's clone
//!    copies the source's hardware), `RelocateVM_Task` only when the clone is not on the chosen
//!    host (the simulator ignores the clone's host);
//! 5. `CustomizeVM_Task`: the guest family's spec (`CustomizationLinuxPrep` or
//!    `CustomizationSysprep`, passwords as plain-text `CustomizationPassword`s) and one adapter
//!    mapping per NIC, matched by its new MAC;
//! 6. `PowerOnVM_Task`, which applies the customization.
//!
//! Once the clone exists, any failure powers it off if needed and destroys it before the error
//! is returned; the error says which step failed and whether the partial VM is gone.
//!
//! Lost answers: a SOAP fault is vCenter's answer, so its outcome is known; a transport error
//! (the connection broke after the request went out) is not. Reads are asked again; a call
//! that changes something is *found out*: the VM is read back on a new connection (is it on
//! the host, powered on, gone, are CPU and memory as asked; the clone is looked up by the
//! instance UUID the spec gives it), and the call runs again only when its effect is not there.
//! Both retry, pausing longer each time, until the client's find-out budget is spent; then the
//! error is [`VmOpError::Unknown`] and the caller must treat the change as possibly made.
//!
//! A task is awaited by reading its state once (every simulator task, and quick vCenter tasks,
//! are done by then), else through vim_rs's [`TaskTracker`], else by polling: over SOAP the
//! tracker stops on a failed task, whose `info.error` vim_rs 0.7 cannot decode, so a task's
//! fault is always read by its nested property paths (see [`read_task`]).
//!
//! Round trips of [`create_vm`] when tasks are done at their first read (always so on the
//! simulator): 8, plus 2 for the relocation and 2 for the CPU/memory reconfiguration when the
//! clone did not already come out right (on the simulator it never does: it ignores both).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vim_rs::core::client::Error as VimError;
use vim_rs::core::pc_helpers::Queriable;
use vim_rs::core::tasks::TaskTracker;
use vim_rs::mo::{PropertyCollector, VirtualMachine};
use vim_rs::types::boxed_types::ValueElements;
use vim_rs::types::convert::CastInto;
use vim_rs::types::enums::{
    MoTypesEnum, TaskInfoStateEnum, VirtualDeviceConfigSpecOperationEnum,
    VirtualMachinePowerStateEnum,
};
use vim_rs::types::struct_enum::StructType;
use vim_rs::types::structs::{
    CustomizationAdapterMapping, CustomizationFixedIp, CustomizationFixedName,
    CustomizationGlobalIpSettings, CustomizationGuiRunOnce, CustomizationGuiUnattended,
    CustomizationIdentification, CustomizationIpSettings, CustomizationLinuxPrep,
    CustomizationPassword, CustomizationSpec, CustomizationSysprep, CustomizationUserData,
    CustomizationWinOptions, DistributedVirtualSwitchPortConnection, GuestNicInfo,
    ManagedObjectReference, MethodFault, ObjectContent, ObjectSpec, PropertyFilterSpec,
    PropertySpec, RetrieveOptions, SelectionSpec, TraversalSpec, VirtualDevice,
    VirtualDeviceConfigSpec, VirtualDeviceConnectInfo, VirtualDeviceDeviceBackingInfo,
    VirtualE1000, VirtualE1000E, VirtualEthernetCard,
    VirtualEthernetCardDistributedVirtualPortBackingInfo, VirtualEthernetCardNetworkBackingInfo,
    VirtualMachineCloneSpec, VirtualMachineConfigSpec, VirtualMachineRelocateSpec, VirtualVmxnet,
    VirtualVmxnet3,
};
use vim_rs::types::traits::{
    CustomizationIdentitySettingsTrait, CustomizationOptionsTrait, SelectionSpecTrait,
    VirtualDeviceBackingInfoTrait, VirtualDeviceConfigSpecTrait, VirtualDeviceTrait,
    VirtualEthernetCardTrait,
};
use vim_rs::types::vim_any::VimAny;
use vim_rs::vim_retrievable;

use crate::client::{describe_vim_error, is_lost_answer, VsphereClient};
use crate::inventory::usable_ipv4;
use crate::BoxFuture;

/// Finding out what a call whose answer was lost did: the first pause before asking again,
/// doubled each time up to the second.
const FIND_OUT_PAUSE: Duration = Duration::from_millis(200);
const FIND_OUT_PAUSE_MAX: Duration = Duration::from_secs(5);

/// How often [`wait_for_guest_ips`] reads `guest.net`.
const GUEST_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Polling a task (only when the TaskTracker gave up on it) starts at this interval and doubles.
const TASK_POLL_START: Duration = Duration::from_millis(250);
const TASK_POLL_MAX: Duration = Duration::from_secs(5);

/// Windows (NetBIOS) computer names are at most 15 characters.
const MAX_WINDOWS_NAME: usize = 15;

// ---------------------------------------------------------------------------------------------
// Public types

/// How the guest operating system is customized, with the computer's name in
/// [`CreateVm::hostname`]. `Debug` leaves every secret out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFamily {
    Linux(LinuxPrep),
    Windows(Sysprep),
}

/// Linux customization (`CustomizationLinuxPrep`).
#[derive(Clone, PartialEq, Eq)]
pub struct LinuxPrep {
    /// DNS domain of the host ("example.com"); must not be empty.
    pub domain: String,
    /// tz database name ("Europe/Berlin"); `None` leaves the template's.
    pub time_zone: Option<String>,
    /// Whether the hardware clock is in UTC; `None` leaves the template's.
    pub hw_clock_utc: Option<bool>,
    /// Customization script run in the guest (before and after customization).
    pub script_text: Option<String>,
}

/// Windows customization (`CustomizationSysprep`).
#[derive(Clone, PartialEq, Eq)]
pub struct Sysprep {
    /// The new Administrator password, sent as plain text (never empty: a blank password is
    /// refused).
    pub admin_password: String,
    pub identity: WindowsIdentity,
    /// Registered owner.
    pub full_name: String,
    /// Registered organization.
    pub organization_name: String,
    /// Windows product key; `None` sends none.
    pub product_key: Option<String>,
    /// Microsoft time zone index (85 is GMT Standard Time).
    pub time_zone: i32,
    pub auto_logon: bool,
    /// Times Administrator is logged on automatically when `auto_logon` (at least 1).
    pub auto_logon_count: i32,
    /// Commands run at the first logon (`guiRunOnce`).
    pub run_once: Vec<String>,
}

/// What a Windows guest joins.
#[derive(Clone, PartialEq, Eq)]
pub enum WindowsIdentity {
    Workgroup(String),
    Domain {
        domain: String,
        user: String,
        password: String,
        /// Organizational unit for the computer account ("OU=web,DC=corp,DC=example").
        ou: Option<String>,
    },
}

/// Stands for a secret in `Debug` output.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for LinuxPrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A script may carry credentials: only its size is shown.
        f.debug_struct("LinuxPrep")
            .field("domain", &self.domain)
            .field("time_zone", &self.time_zone)
            .field("hw_clock_utc", &self.hw_clock_utc)
            .field(
                "script_text",
                &self
                    .script_text
                    .as_ref()
                    .map(|s| format!("<{} bytes>", s.len())),
            )
            .finish()
    }
}

impl fmt::Debug for Sysprep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sysprep")
            .field("admin_password", &REDACTED)
            .field("identity", &self.identity)
            .field("full_name", &self.full_name)
            .field("organization_name", &self.organization_name)
            .field("product_key", &self.product_key.as_ref().map(|_| REDACTED))
            .field("time_zone", &self.time_zone)
            .field("auto_logon", &self.auto_logon)
            .field("auto_logon_count", &self.auto_logon_count)
            .field("run_once", &format!("<{} commands>", self.run_once.len()))
            .finish()
    }
}

impl fmt::Debug for WindowsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowsIdentity::Workgroup(w) => f.debug_tuple("Workgroup").field(w).finish(),
            WindowsIdentity::Domain {
                domain, user, ou, ..
            } => f
                .debug_struct("Domain")
                .field("domain", domain)
                .field("user", user)
                .field("password", &REDACTED)
                .field("ou", ou)
                .finish(),
        }
    }
}

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

/// One NIC of a new VM and the fixed IPv4 settings the guest customization gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub backing: NicBacking,
    pub ip: Ipv4Addr,
    /// Subnet prefix length, 1..=32 (24 gives the mask 255.255.255.0).
    pub prefix_len: u8,
    pub gateways: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    /// DNS domain of this adapter ("example.com").
    pub dns_domain: Option<String>,
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

/// A VM as [`get_vm`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    pub moref: String,
    pub name: String,
    /// `config.uuid` (BIOS UUID); `None` while the VM has no config (being created, inaccessible).
    pub uuid: Option<String>,
    pub template: bool,
    /// `poweredOn`, `poweredOff` or `suspended`.
    pub power_state: String,
    pub host: Option<String>,
    pub num_cpus: Option<i32>,
    pub memory_mb: Option<i64>,
    /// Morefs of the datastores holding its files.
    pub datastores: Vec<String>,
    /// NICs sorted by device key.
    pub nics: Vec<VmNicInfo>,
}

/// One NIC as [`get_vm`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNicInfo {
    /// Virtual device key (4000, 4001 ...).
    pub key: i32,
    /// Lower-case, colon separated.
    pub mac: String,
    /// `None` for backings that are no port group (opaque/NSX networks, SR-IOV ...).
    pub backing: Option<NicBacking>,
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
        let result = create(client, spec).await;
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

/// Reads one VM (one round trip); `None` when it does not exist.
pub fn get_vm<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
) -> BoxFuture<'a, Result<Option<VmInfo>, VmOpError>> {
    Box::pin(async move {
        let row = read_vm(client, moref)
            .await
            .map_err(|fault| VmOpError::Failed {
                step: format!("reading VM {moref}"),
                reason: fault.to_string(),
            })?;
        Ok(row.map(|row| vm_info(&row)))
    })
}

/// Reads `guest.net` about once a second until every `(mac, ip)` of `expected` holds: VMware
/// Tools reports that MAC with exactly that one IPv4 address (IPv6 and link-local addresses are
/// ignored). Returns what Tools reported at that point: IPv4 addresses per lower-case MAC.
/// On timeout the error lists what Tools reported last.
pub fn wait_for_guest_ips<'a>(
    client: &'a VsphereClient,
    moref: &'a str,
    expected: &'a [(String, Ipv4Addr)],
    timeout: Duration,
) -> BoxFuture<'a, Result<BTreeMap<String, Vec<Ipv4Addr>>, VmOpError>> {
    Box::pin(async move {
        let mut want: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
        for (mac, ip) in expected {
            let mac = mac.trim().to_ascii_lowercase();
            if let Some(other) = want.insert(mac.clone(), *ip) {
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
            let reported = read_guest_ips(client, moref).await?;
            let missing: Vec<String> = want
                .iter()
                .filter(|(mac, ip)| reported.get(*mac).map(Vec::as_slice) != Some(&[**ip][..]))
                .map(|(mac, ip)| format!("{mac} {ip}"))
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
                    reported: describe_reported(&reported),
                });
            }
            tokio::time::sleep(GUEST_POLL_INTERVAL.min(deadline - now)).await;
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Errors inside this module

/// A fault from vCenter (method or task), with its type when known, or a lost answer.
#[derive(Debug, Clone)]
struct Fault {
    kind: Option<StructType>,
    text: String,
    /// The request may have reached vCenter but no answer came back: what it did is unknown.
    lost: bool,
}

impl Fault {
    fn from_vim(err: &VimError) -> Fault {
        match err {
            VimError::MethodFault(fault) => Fault::from_method_fault(fault),
            other => Fault {
                kind: None,
                text: describe_vim_error(other),
                lost: is_lost_answer(other),
            },
        }
    }

    fn from_method_fault(fault: &MethodFault) -> Fault {
        Fault {
            kind: fault.type_,
            text: describe_fault(fault),
            lost: false,
        }
    }

    fn text(text: impl Into<String>) -> Fault {
        Fault {
            kind: None,
            text: text.into(),
            lost: false,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A failed step of a multi-step operation.
#[derive(Debug)]
struct StepError {
    step: String,
    fault: Fault,
}

impl StepError {
    fn new(step: impl Into<String>, fault: Fault) -> StepError {
        StepError {
            step: step.into(),
            fault,
        }
    }

    /// The public error: [`VmOpError::Unknown`] when the answer was lost and could not be found
    /// out, else [`VmOpError::Failed`] (`NotFound` first for a VM that is gone).
    fn into_op_error(self, vm: Option<&str>) -> VmOpError {
        if self.fault.lost {
            return VmOpError::Unknown {
                step: self.step,
                reason: self.fault.text,
                moref: vm.map(str::to_string),
            };
        }
        if let (Some(StructType::ManagedObjectNotFound), Some(vm)) = (self.fault.kind, vm) {
            return VmOpError::NotFound(vm.to_string());
        }
        VmOpError::Failed {
            step: self.step,
            reason: self.fault.text,
        }
    }
}

/// Fault type, messages, the fault's own fields (e.g. NicSettingMismatch's NIC counts) and cause.
fn describe_fault(fault: &MethodFault) -> String {
    let mut text = fault
        .type_
        .map(|t| t.as_str())
        .unwrap_or("MethodFault")
        .to_string();
    let messages: Vec<&str> = fault
        .fault_message
        .iter()
        .flatten()
        .map(|m| m.message.as_deref().unwrap_or(&m.key))
        .filter(|m| !m.is_empty())
        .collect();
    if !messages.is_empty() {
        text.push_str(": ");
        text.push_str(&messages.join("; "));
    }
    let mut fields: Vec<String> = fault
        .extra_fields_
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| format!("{k}={}", miniserde::json::to_string(v)))
        .collect();
    if !fields.is_empty() {
        fields.sort();
        text.push_str(&format!(" ({})", fields.join(", ")));
    }
    if let Some(cause) = fault.fault_cause.as_deref() {
        text.push_str(", caused by ");
        text.push_str(&describe_fault(cause));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Reading

vim_retrievable!(
    struct HostRow: HostSystem {
        name = "name"?,
        parent = "parent"?,
        network = "network"?,
    }
);

vim_retrievable!(
    struct PoolRow: ComputeResource {
        resource_pool = "resource_pool"?,
    }
);

vim_retrievable!(
    struct DatacenterRow: Datacenter {
        vm_folder = "vm_folder"?,
    }
);

vim_retrievable!(
    struct SourceRow: VirtualMachine {
        name = "name"?,
        devices = "config.hardware.device"?,
    }
);

vim_retrievable!(
    struct DatastoreRow: Datastore {
        name = "name"?,
    }
);

vim_retrievable!(
    struct FolderRow: Folder {
        child_type = "child_type"?,
    }
);

// The `Network` property spec also matches distributed port groups, so `DvpgRow` repeats its
// paths: a row must accept every property the server sends for the object.
vim_retrievable!(
    struct NetworkRow: Network {
        name = "name"?,
        host = "host"?,
    }
);

vim_retrievable!(
    struct DvpgRow: DistributedVirtualPortgroup {
        name = "name"?,
        host = "host"?,
        key = "key"?,
    }
);

vim_retrievable!(
    struct VmRow: VirtualMachine {
        name = "name"?,
        uuid = "config.uuid"?,
        template = "config.template"?,
        devices = "config.hardware.device"?,
        num_cpu = "config.hardware.num_cpu"?,
        memory_mb = "config.hardware.memory_mb"?,
        host = "runtime.host"?,
        power_state = "runtime.power_state"?,
        datastores = "datastore"?,
    }
);

vim_retrievable!(
    struct GuestNetRow: VirtualMachine {
        net = "guest.net"?,
    }
);

fn moref(kind: MoTypesEnum, value: &str) -> ManagedObjectReference {
    ManagedObjectReference {
        r#type: kind,
        value: value.to_string(),
    }
}

fn object_spec(obj: ManagedObjectReference) -> ObjectSpec {
    ObjectSpec {
        obj,
        skip: Some(false),
        select_set: None,
    }
}

fn traversal(
    name: &str,
    kind: &str,
    path: &str,
    next: Option<&str>,
) -> Box<dyn SelectionSpecTrait> {
    Box::new(TraversalSpec {
        selection_spec_: SelectionSpec {
            name: Some(name.to_string()),
        },
        r#type: kind.to_string(),
        path: path.to_string(),
        skip: Some(false),
        select_set: next.map(|n| {
            vec![Box::new(SelectionSpec {
                name: Some(n.to_string()),
            }) as Box<dyn SelectionSpecTrait>]
        }),
    })
}

/// One RetrievePropertiesEx (plus pages). An object that does not exist fails the whole call
/// with ManagedObjectNotFound (vCenter's default; asking for missing objects in the results
/// instead makes the simulator answer an empty `returnval` that vim_rs cannot decode). A read
/// changes nothing, so a lost answer is asked again, on a new connection, until the client's
/// find-out budget is spent.
async fn retrieve(
    client: &VsphereClient,
    prop_set: Vec<PropertySpec>,
    object_set: Vec<ObjectSpec>,
) -> Result<Vec<ObjectContent>, Fault> {
    let spec = PropertyFilterSpec {
        prop_set,
        object_set,
        report_missing_objects_in_results: None,
    };
    let spec = &spec;
    retry_lost(client, "reading from vCenter", move || {
        retrieve_once(client, spec)
    })
    .await
}

async fn retrieve_once(
    client: &VsphereClient,
    spec: &PropertyFilterSpec,
) -> Result<Vec<ObjectContent>, Fault> {
    let pc = PropertyCollector::new(
        client.vim(),
        &client.service_content().property_collector.value,
    );
    let options = RetrieveOptions { max_objects: None };
    let first = pc
        .retrieve_properties_ex(std::slice::from_ref(spec), &options)
        .await
        .map_err(|e| Fault::from_vim(&e))?;
    let Some(mut page) = first else {
        return Ok(Vec::new());
    };
    let mut objects = Vec::new();
    loop {
        objects.append(&mut page.objects);
        let Some(token) = page.token.take() else {
            break;
        };
        page = pc
            .continue_retrieve_properties_ex(&token)
            .await
            .map_err(|e| Fault::from_vim(&e))?;
    }
    Ok(objects)
}

/// Runs `attempt` (a call that changes nothing) again while its answer is lost, pausing
/// longer each time, until the client's find-out budget is spent; the last fault then.
async fn retry_lost<T, F, Fut>(client: &VsphereClient, what: &str, attempt: F) -> Result<T, Fault>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Fault>>,
{
    let deadline = Instant::now() + client.find_out_budget();
    let mut pause = FIND_OUT_PAUSE;
    loop {
        match attempt().await {
            Err(fault) if fault.lost && Instant::now() + pause < deadline => {
                tracing::info!(error = %fault, "{what}: no answer; asking again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(FIND_OUT_PAUSE_MAX);
            }
            other => return other,
        }
    }
}

/// Starts a task that changes something (`start`) and waits for it. When the answer to the
/// start or to a task read is lost, `done` finds out whether the change is there (its reads
/// retried like any read); if it is not, the task is started again, until the client's
/// find-out budget is spent. A lost outcome that stays unknown is a [`Fault`] with `lost`.
async fn run_checked<S, SF, D, DF>(
    client: &VsphereClient,
    step: &str,
    start: S,
    done: D,
) -> Result<Option<VimAny>, StepError>
where
    S: Fn() -> SF,
    SF: std::future::Future<Output = Result<ManagedObjectReference, VimError>>,
    D: Fn() -> DF,
    DF: std::future::Future<Output = Result<bool, Fault>>,
{
    let deadline = Instant::now() + client.find_out_budget();
    let mut rerun = false;
    loop {
        let fault = match start().await {
            Ok(task) => match wait_task(client, task).await {
                Ok(result) => return Ok(result),
                Err(fault) => fault,
            },
            Err(e) => Fault::from_vim(&e),
        };
        // Run again after a lost answer, a customization is refused because the first one
        // is waiting for the power-on: it took effect.
        if rerun && fault.kind == Some(StructType::CustomizationPending) {
            tracing::info!(step, "found out: the call took effect");
            return Ok(None);
        }
        if !fault.lost {
            return Err(StepError::new(step, fault));
        }
        tracing::warn!(step, error = %fault, "the answer was lost; finding out what the call did");
        match done().await {
            Ok(true) => {
                tracing::info!(step, "found out: the call took effect");
                return Ok(None);
            }
            Ok(false) if Instant::now() < deadline => {
                tracing::info!(
                    step,
                    "found out: the call did not take effect; running it again"
                );
                rerun = true;
            }
            Ok(false) => return Err(StepError::new(step, fault)),
            Err(probe) => return Err(StepError::new(step, probe)),
        }
    }
}

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

/// Decodes a row whose properties are all optional: content without properties is a row of `None`s.
fn decode<T>(mut content: ObjectContent) -> Result<T, Fault>
where
    T: TryFrom<ObjectContent, Error = vim_rs::core::error::Error>,
{
    if content.prop_set.is_none() {
        content.prop_set = Some(Vec::new());
    }
    let what = format!("{} {}", content.obj.r#type.as_str(), content.obj.value);
    T::try_from(content).map_err(|e| Fault::text(format!("unexpected answer for {what}: {e}")))
}

/// Reads the properties of one object; `None` when it does not exist.
async fn read_one<T>(
    client: &VsphereClient,
    obj: ManagedObjectReference,
) -> Result<Option<T>, Fault>
where
    T: Queriable + TryFrom<ObjectContent, Error = vim_rs::core::error::Error>,
{
    let wanted = obj.value.clone();
    let contents = match retrieve(client, vec![T::prop_spec()], vec![object_spec(obj)]).await {
        Ok(contents) => contents,
        Err(fault) if fault.kind == Some(StructType::ManagedObjectNotFound) => return Ok(None),
        Err(fault) => return Err(fault),
    };
    match contents.into_iter().find(|c| c.obj.value == wanted) {
        Some(content) => decode(content).map(Some),
        None => Ok(None),
    }
}

async fn read_vm(client: &VsphereClient, vm: &str) -> Result<Option<VmRow>, Fault> {
    read_one(client, moref(MoTypesEnum::VirtualMachine, vm)).await
}

fn vm_info(row: &VmRow) -> VmInfo {
    let mut nics: Vec<VmNicInfo> = ethernet_cards(row.devices.as_deref())
        .map(|card| VmNicInfo {
            key: card.virtual_device_.key,
            mac: card
                .mac_address
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            backing: card
                .virtual_device_
                .backing
                .as_deref()
                .and_then(read_backing),
        })
        .collect();
    nics.sort_by_key(|n| n.key);
    VmInfo {
        moref: row.id.value.clone(),
        name: row.name.clone().unwrap_or_else(|| row.id.value.clone()),
        uuid: row.uuid.clone().filter(|u| !u.is_empty()),
        template: row.template.unwrap_or(false),
        power_state: row
            .power_state
            .as_ref()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "poweredOff".to_string()),
        host: row.host.as_ref().map(|h| h.value.clone()),
        num_cpus: row.num_cpu,
        memory_mb: row.memory_mb.map(i64::from),
        datastores: row
            .datastores
            .iter()
            .flatten()
            .map(|d| d.value.clone())
            .collect(),
        nics,
    }
}

fn ethernet_cards(
    devices: Option<&[Box<dyn VirtualDeviceTrait>]>,
) -> impl Iterator<Item = &VirtualEthernetCard> {
    devices.into_iter().flatten().filter_map(|d| {
        let card: &dyn VirtualEthernetCardTrait = d.as_ref().into_ref()?;
        Some(card.get_virtual_ethernet_card())
    })
}

fn read_backing(backing: &dyn VirtualDeviceBackingInfoTrait) -> Option<NicBacking> {
    let any = backing.as_any_ref();
    if let Some(net) = any.downcast_ref::<VirtualEthernetCardNetworkBackingInfo>() {
        return net.network.as_ref().map(|n| NicBacking::Standard {
            network: n.value.clone(),
        });
    }
    if let Some(dv) = any.downcast_ref::<VirtualEthernetCardDistributedVirtualPortBackingInfo>() {
        return Some(NicBacking::Distributed {
            switch_uuid: dv.port.switch_uuid.clone(),
            portgroup_key: dv.port.portgroup_key.clone().unwrap_or_default(),
        });
    }
    None
}

/// IPv4 addresses VMware Tools reports per lower-case MAC. A VM that does not exist is an error.
async fn read_guest_ips(
    client: &VsphereClient,
    vm: &str,
) -> Result<BTreeMap<String, Vec<Ipv4Addr>>, VmOpError> {
    let row: Option<GuestNetRow> = read_one(client, moref(MoTypesEnum::VirtualMachine, vm))
        .await
        .map_err(|fault| VmOpError::Failed {
            step: format!("reading the guest networking of VM {vm}"),
            reason: fault.to_string(),
        })?;
    let row = row.ok_or_else(|| VmOpError::NotFound(vm.to_string()))?;
    Ok(guest_ips(row.net.as_deref().unwrap_or_default()))
}

fn guest_ips(net: &[GuestNicInfo]) -> BTreeMap<String, Vec<Ipv4Addr>> {
    let mut out: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
    for nic in net {
        let Some(mac) = nic
            .mac_address
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        else {
            continue;
        };
        let from_config = nic
            .ip_config
            .as_ref()
            .and_then(|c| c.ip_address.as_ref())
            .into_iter()
            .flatten()
            .map(|a| a.ip_address.as_str());
        let flat = nic.ip_address.iter().flatten().map(String::as_str);
        let entry = out.entry(mac.to_ascii_lowercase()).or_default();
        entry.extend(from_config.chain(flat).filter_map(usable_ipv4));
        entry.sort();
        entry.dedup();
    }
    out
}

fn describe_reported(reported: &BTreeMap<String, Vec<Ipv4Addr>>) -> String {
    if reported.is_empty() {
        return "no NICs".to_string();
    }
    reported
        .iter()
        .map(|(mac, ips)| {
            let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
            if ips.is_empty() {
                format!("{mac} without IPv4 address")
            } else {
                format!("{mac} {}", ips.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Tasks

/// Where a task is.
enum TaskOutcome {
    Running,
    Succeeded(Option<VimAny>),
    Failed(Fault),
}

/// Reads a task's state (and result or fault). Not through `Task.info`: over SOAP, vim_rs 0.7
/// cannot decode a failed task's `info.error` (it expects the VI/JSON shape, a bare fault, and
/// gets the LocalizedMethodFault wrapper), so the fault is read by its nested paths instead.
async fn read_task(
    client: &VsphereClient,
    task: &ManagedObjectReference,
) -> Result<TaskOutcome, Fault> {
    let props = |paths: &[&str]| PropertySpec {
        r#type: "Task".to_string(),
        all: Some(false),
        path_set: Some(paths.iter().map(|p| p.to_string()).collect()),
    };
    let contents = retrieve(
        client,
        vec![props(&["info.state", "info.result"])],
        vec![object_spec(task.clone())],
    )
    .await?;
    let mut state = None;
    let mut result = None;
    for prop in contents
        .into_iter()
        .flat_map(|c| c.prop_set.unwrap_or_default())
    {
        match (prop.name.as_str(), prop.val) {
            ("info.state", VimAny::Value(ValueElements::TaskInfoState(s))) => state = Some(s),
            ("info.result", val) => result = Some(val),
            _ => {}
        }
    }
    match state {
        Some(TaskInfoStateEnum::Success) => return Ok(TaskOutcome::Succeeded(result)),
        Some(TaskInfoStateEnum::Error) => {}
        Some(_) => return Ok(TaskOutcome::Running),
        None => return Err(Fault::text(format!("task {} reports no state", task.value))),
    }
    let contents = retrieve(
        client,
        vec![props(&["info.error.fault", "info.error.localizedMessage"])],
        vec![object_spec(task.clone())],
    )
    .await?;
    let mut fault = None;
    let mut message = None;
    for prop in contents
        .into_iter()
        .flat_map(|c| c.prop_set.unwrap_or_default())
    {
        match (prop.name.as_str(), prop.val) {
            ("info.error.fault", VimAny::Object(obj)) => {
                fault = obj
                    .as_any_box()
                    .downcast::<MethodFault>()
                    .ok()
                    .map(|f| Fault::from_method_fault(&f));
            }
            ("info.error.localizedMessage", VimAny::Value(ValueElements::PrimitiveString(m))) => {
                message = Some(m)
            }
            _ => {}
        }
    }
    let mut fault = fault.unwrap_or_else(|| Fault::text("the task failed without saying why"));
    // The simulator's "localized message" is only the Go type name of the fault.
    if let Some(m) =
        message.filter(|m| !m.is_empty() && !m.starts_with('*') && !fault.text.contains(m.as_str()))
    {
        fault.text = format!("{m} ({})", fault.text);
    }
    Ok(TaskOutcome::Failed(fault))
}

/// Waits for a task: one read (tasks that are quick, and every simulator task, are done by
/// then), else vim_rs's TaskTracker, else (the tracker stops on a TaskInfo it cannot decode)
/// polling.
async fn wait_task(
    client: &VsphereClient,
    task: ManagedObjectReference,
) -> Result<Option<VimAny>, Fault> {
    match read_task(client, &task).await? {
        TaskOutcome::Succeeded(result) => return Ok(result),
        TaskOutcome::Failed(fault) => return Err(fault),
        TaskOutcome::Running => {}
    }
    match TaskTracker::new(client.vim()).wait_any(task.clone()).await {
        Ok(result) => return Ok(result),
        Err(e) => {
            if let Some(fault) = e.task_fault() {
                return Err(Fault::from_method_fault(fault));
            }
            tracing::debug!(
                task = %task.value,
                error = %e,
                "task tracking stopped; polling the task"
            );
        }
    }
    let mut delay = TASK_POLL_START;
    loop {
        match read_task(client, &task).await? {
            TaskOutcome::Succeeded(result) => return Ok(result),
            TaskOutcome::Failed(fault) => return Err(fault),
            TaskOutcome::Running => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(TASK_POLL_MAX);
    }
}

fn result_moref(result: Option<VimAny>) -> Option<ManagedObjectReference> {
    match result? {
        VimAny::Object(obj) => obj
            .as_any_box()
            .downcast::<ManagedObjectReference>()
            .ok()
            .map(|m| *m),
        VimAny::Value(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Create

/// What the pre-flight read found.
struct Placement {
    pool: ManagedObjectReference,
    folder: ManagedObjectReference,
    /// The source's NICs, sorted by device key.
    source_nics: Vec<Box<dyn VirtualEthernetCardTrait>>,
    /// Standard network moref → name.
    network_names: HashMap<String, String>,
}

async fn create(client: &VsphereClient, spec: &CreateVm) -> Result<CreatedVm, VmOpError> {
    validate(spec)?;
    let placement = preflight(client, spec).await?;
    let source_keys: Vec<i32> = placement
        .source_nics
        .iter()
        .map(|n| n.virtual_device_.key)
        .collect();
    let source_macs: BTreeSet<String> = placement
        .source_nics
        .iter()
        .filter_map(|n| n.mac_address.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    let edited = spec.nics.len().min(source_keys.len());
    let clone_spec = clone_spec(
        spec,
        placement.pool.clone(),
        placement.source_nics,
        &placement.network_names,
    );

    let vm = clone_vm(client, spec, &placement.folder, &clone_spec).await?;
    tracing::debug!(vm = %vm.value, name = %spec.name, "cloned");

    let finished = finish(
        client,
        spec,
        &vm.value,
        &placement.pool,
        &source_keys[..edited],
        &source_macs,
    )
    .await;
    let failure = match finished {
        Ok(created) => return Ok(created),
        Err(failure) => failure,
    };
    tracing::warn!(
        vm = %vm.value,
        name = %spec.name,
        step = %failure.step,
        error = %failure.fault,
        "creating the VM failed; removing the partial VM"
    );
    match destroy(client, &vm.value).await {
        Ok(()) => Err(VmOpError::CreateRolledBack {
            name: spec.name.clone(),
            moref: vm.value,
            step: failure.step,
            reason: failure.fault.to_string(),
        }),
        Err(cleanup) => Err(VmOpError::CreateLeftover {
            name: spec.name.clone(),
            moref: vm.value,
            step: failure.step,
            reason: failure.fault.to_string(),
            cleanup_error: format!("{}: {}", cleanup.step, cleanup.fault),
        }),
    }
}

/// `CloneVM_Task`. When its answer is lost, the VM is looked up by the instance UUID the spec
/// gives it: found, the create goes on with it; not found, the clone is not run again (on
/// vCenter it may still be under way), and the outcome is [`VmOpError::Unknown`].
async fn clone_vm(
    client: &VsphereClient,
    spec: &CreateVm,
    folder: &ManagedObjectReference,
    clone_spec: &VirtualMachineCloneSpec,
) -> Result<ManagedObjectReference, VmOpError> {
    let step = format!("cloning {} into \"{}\"", spec.source, spec.name);
    let source = VirtualMachine::new(client.vim(), &spec.source);
    let started = source.clone_vm_task(folder, &spec.name, clone_spec).await;
    let fault = match started {
        Ok(task) => match wait_task(client, task).await {
            Ok(result) => {
                return result_moref(result).ok_or_else(|| VmOpError::Failed {
                    step,
                    reason: "the clone task returned no VM reference".to_string(),
                })
            }
            Err(fault) => fault,
        },
        Err(e) => Fault::from_vim(&e),
    };
    if !fault.lost {
        return Err(StepError::new(step, fault).into_op_error(None));
    }
    let Some(instance_uuid) = spec.instance_uuid.as_deref() else {
        return Err(StepError::new(step, fault).into_op_error(None));
    };
    tracing::warn!(name = %spec.name, error = %fault,
        "the answer to the clone was lost; looking for the VM by its instance UUID");
    match search_uuid(client, instance_uuid, true).await {
        Ok(Some(vm)) => {
            tracing::info!(vm = %vm, "found out: the clone happened");
            Ok(moref(MoTypesEnum::VirtualMachine, &vm))
        }
        Ok(None) => Err(VmOpError::Unknown {
            step,
            reason: format!(
                "{fault}; no VM with instance UUID {instance_uuid} exists yet, but the clone may \
                 still be under way"
            ),
            moref: None,
        }),
        Err(probe) => Err(StepError::new(step, probe).into_op_error(None)),
    }
}

/// The steps after the clone exists: any error here makes the caller remove the VM.
async fn finish(
    client: &VsphereClient,
    spec: &CreateVm,
    vm: &str,
    pool: &ManagedObjectReference,
    edited_keys: &[i32],
    source_macs: &BTreeSet<String>,
) -> Result<CreatedVm, StepError> {
    let read_step = "reading the new VM";
    let row = read_vm(client, vm)
        .await
        .map_err(|fault| StepError::new(read_step, fault))?
        .ok_or_else(|| StepError::new(read_step, Fault::text(format!("VM {vm} is gone"))))?;
    let uuid = row
        .uuid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| StepError::new(read_step, Fault::text("the VM has no config.uuid")))?;
    let macs = new_macs(&row, spec.nics.len(), edited_keys, source_macs)
        .map_err(|reason| StepError::new("reading the new VM's NICs", Fault::text(reason)))?;
    let cpus_off = spec.num_cpus.is_some_and(|n| row.num_cpu != Some(n));
    let memory_off = spec
        .memory_mb
        .is_some_and(|m| row.memory_mb.map(i64::from) != Some(m));
    // Each step below is found out when its answer is lost (see `run_checked`).
    if cpus_off || memory_off {
        let mut config = empty_config_spec();
        config.num_cp_us = spec.num_cpus;
        config.memory_mb = spec.memory_mb;
        let config = &config;
        run_checked(
            client,
            "setting CPU and memory",
            move || async move {
                VirtualMachine::new(client.vim(), vm)
                    .reconfig_vm_task(config)
                    .await
            },
            move || {
                vm_probe(client, vm, move |row| {
                    spec.num_cpus.is_none_or(|n| row.num_cpu == Some(n))
                        && spec
                            .memory_mb
                            .is_none_or(|m| row.memory_mb.map(i64::from) == Some(m))
                })
            },
        )
        .await?;
    }

    if !on_host(&row, &spec.host) {
        let mut relocate = empty_relocate_spec();
        relocate.host = Some(moref(MoTypesEnum::HostSystem, &spec.host));
        relocate.pool = Some(pool.clone());
        let step = format!("moving the VM to host {}", spec.host);
        let relocate = &relocate;
        run_checked(
            client,
            &step,
            move || async move {
                VirtualMachine::new(client.vim(), vm)
                    .relocate_vm_task(relocate, None)
                    .await
            },
            move || vm_probe(client, vm, move |row| on_host(row, &spec.host)),
        )
        .await?;
    }

    // A customization waiting for the power-on cannot be read: it is run again, and vCenter's
    // CustomizationPending refusal says the first one took effect (see `run_checked`).
    let customization = customization_spec(spec, &macs);
    let customization = &customization;
    run_checked(
        client,
        "customizing the guest",
        move || async move {
            VirtualMachine::new(client.vim(), vm)
                .customize_vm_task(customization)
                .await
        },
        move || async move { vm_probe(client, vm, |_| false).await },
    )
    .await?;

    run_checked(
        client,
        "powering on",
        move || async move {
            VirtualMachine::new(client.vim(), vm)
                .power_on_vm_task(None)
                .await
        },
        move || vm_probe(client, vm, powered_on),
    )
    .await?;

    Ok(CreatedVm {
        moref: vm.to_string(),
        uuid,
        host: spec.host.clone(),
        macs,
    })
}

/// The MACs of the requested NICs in request order: the edited source NICs by their keys, then
/// the added ones by device key. They must be set, distinct and none of the source's.
fn new_macs(
    row: &VmRow,
    wanted: usize,
    edited_keys: &[i32],
    source_macs: &BTreeSet<String>,
) -> Result<Vec<String>, String> {
    let mut cards: Vec<(i32, String)> = ethernet_cards(row.devices.as_deref())
        .map(|c| {
            (
                c.virtual_device_.key,
                c.mac_address
                    .as_deref()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase(),
            )
        })
        .collect();
    cards.sort();
    let mut macs = Vec::with_capacity(wanted);
    for key in edited_keys {
        let (_, mac) = cards
            .iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| format!("the NIC with device key {key} is missing"))?;
        macs.push(mac.clone());
    }
    macs.extend(
        cards
            .iter()
            .filter(|(k, _)| !edited_keys.contains(k))
            .map(|(_, mac)| mac.clone()),
    );
    if macs.len() != wanted {
        return Err(format!(
            "the VM has {} NICs, {wanted} were asked for",
            macs.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for mac in &macs {
        if mac.is_empty() {
            return Err("a NIC has no MAC address".to_string());
        }
        if source_macs.contains(mac) {
            return Err(format!("a NIC kept the source's MAC address {mac}"));
        }
        if !seen.insert(mac) {
            return Err(format!("two NICs got the same MAC address {mac}"));
        }
    }
    Ok(macs)
}

/// Checks what can be checked without vCenter.
fn validate(spec: &CreateVm) -> Result<(), VmOpError> {
    let invalid = |msg: String| Err(VmOpError::Invalid(msg));
    if spec.name.trim().is_empty() {
        return invalid("the VM name is empty".to_string());
    }
    if spec.source.trim().is_empty() || spec.host.trim().is_empty() {
        return invalid("the source VM/template and the host must be given (morefs)".to_string());
    }
    if spec.nics.is_empty() {
        return invalid("a VM needs at least one NIC".to_string());
    }
    if let Some(n) = spec.num_cpus.filter(|n| *n < 1) {
        return invalid(format!("num_cpus must be at least 1, got {n}"));
    }
    if let Some(m) = spec.memory_mb.filter(|m| *m < 1) {
        return invalid(format!("memory_mb must be at least 1, got {m}"));
    }
    let host = &spec.hostname;
    let label_ok = !host.is_empty()
        && host.len() <= 63
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !host.starts_with('-')
        && !host.ends_with('-');
    if !label_ok {
        return invalid(format!(
            "host name \"{host}\" is not a valid DNS label (letters, digits and '-', 1 to 63 \
             characters, not starting or ending with '-')"
        ));
    }
    match &spec.guest {
        GuestFamily::Linux(linux) => {
            if linux.domain.trim().is_empty() {
                return invalid("the Linux guest customization needs a domain".to_string());
            }
        }
        GuestFamily::Windows(win) => {
            if host.len() > MAX_WINDOWS_NAME || host.chars().all(|c| c.is_ascii_digit()) {
                return invalid(format!(
                    "Windows computer name \"{host}\" must be at most {MAX_WINDOWS_NAME} \
                     characters and not only digits"
                ));
            }
            // vCenter takes a missing password as "blank"; never send that.
            if win.admin_password.is_empty() {
                return invalid("the Windows Administrator password is empty".to_string());
            }
            match &win.identity {
                WindowsIdentity::Workgroup(w) if w.trim().is_empty() => {
                    return invalid("the Windows workgroup is empty".to_string());
                }
                WindowsIdentity::Domain {
                    domain,
                    user,
                    password,
                    ..
                } if domain.trim().is_empty() || user.trim().is_empty() || password.is_empty() => {
                    return invalid(
                        "joining a Windows domain needs the domain, a domain user and its \
                         password"
                            .to_string(),
                    );
                }
                _ => {}
            }
            if win.auto_logon && win.auto_logon_count < 1 {
                return invalid(format!(
                    "auto_logon_count must be at least 1, got {}",
                    win.auto_logon_count
                ));
            }
        }
    }
    for (i, nic) in spec.nics.iter().enumerate() {
        if !(1..=32).contains(&nic.prefix_len) {
            return invalid(format!(
                "NIC {i}: prefix length {} is not within 1..=32",
                nic.prefix_len
            ));
        }
        if nic.ip.is_unspecified() || nic.ip.is_broadcast() || nic.ip.is_multicast() {
            return invalid(format!("NIC {i}: {} cannot be a host address", nic.ip));
        }
        let empty = match &nic.backing {
            NicBacking::Standard { network } => network.trim().is_empty(),
            NicBacking::Distributed {
                switch_uuid,
                portgroup_key,
            } => switch_uuid.trim().is_empty() || portgroup_key.trim().is_empty(),
        };
        if empty {
            return invalid(format!("NIC {i}: the port group is not given"));
        }
    }
    Ok(())
}

/// One PropertyCollector call: the host with its compute resource's pool (and, without a given
/// folder, the datacenter above it), the source's NICs, the datastore, the folder and the port
/// groups. Every missing object is an [`VmOpError::Invalid`].
async fn preflight(client: &VsphereClient, spec: &CreateVm) -> Result<Placement, VmOpError> {
    let mut props = vec![
        HostRow::prop_spec(),
        PoolRow::prop_spec(),
        SourceRow::prop_spec(),
    ];
    // host → compute resource (its pool) → folders → datacenter (its VM folder).
    let mut host_select = vec![traversal(
        "hostToCompute",
        "HostSystem",
        "parent",
        spec.folder.is_none().then_some("computeToParent"),
    )];
    if spec.folder.is_none() {
        props.push(DatacenterRow::prop_spec());
        host_select.push(traversal(
            "computeToParent",
            "ComputeResource",
            "parent",
            Some("folderToParent"),
        ));
        host_select.push(traversal(
            "folderToParent",
            "Folder",
            "parent",
            Some("folderToParent"),
        ));
    }
    let mut objects = vec![
        ObjectSpec {
            obj: moref(MoTypesEnum::HostSystem, &spec.host),
            skip: Some(false),
            select_set: Some(host_select),
        },
        object_spec(moref(MoTypesEnum::VirtualMachine, &spec.source)),
    ];
    if let Some(ds) = &spec.datastore {
        props.push(DatastoreRow::prop_spec());
        objects.push(object_spec(moref(MoTypesEnum::Datastore, ds)));
    }
    if let Some(folder) = &spec.folder {
        props.push(FolderRow::prop_spec());
        objects.push(object_spec(moref(MoTypesEnum::Folder, folder)));
    }
    let mut networks: BTreeSet<&NicBacking> = BTreeSet::new();
    for nic in &spec.nics {
        networks.insert(&nic.backing);
    }
    if networks
        .iter()
        .any(|b| matches!(b, NicBacking::Standard { .. }))
    {
        props.push(NetworkRow::prop_spec());
    }
    if networks
        .iter()
        .any(|b| matches!(b, NicBacking::Distributed { .. }))
    {
        props.push(DvpgRow::prop_spec());
    }
    for backing in &networks {
        objects.push(object_spec(match backing {
            NicBacking::Standard { network } => moref(MoTypesEnum::Network, network),
            NicBacking::Distributed { portgroup_key, .. } => {
                moref(MoTypesEnum::DistributedVirtualPortgroup, portgroup_key)
            }
        }));
    }

    let step = "reading the host, source VM, datastore and port groups";
    let contents = match retrieve(client, props, objects).await {
        Ok(contents) => contents,
        Err(fault) if fault.kind == Some(StructType::ManagedObjectNotFound) => {
            return Err(VmOpError::Invalid(missing_input(spec, &fault)));
        }
        Err(fault) => {
            return Err(VmOpError::Failed {
                step: step.to_string(),
                reason: fault.to_string(),
            })
        }
    };
    let found = Found::decode(contents).map_err(|fault| VmOpError::Failed {
        step: step.to_string(),
        reason: fault.to_string(),
    })?;
    found.placement(spec)
}

/// Names the input a ManagedObjectNotFound is about (its `obj` is among the fault's fields).
fn missing_input(spec: &CreateVm, fault: &Fault) -> String {
    let mut inputs: Vec<(String, &str)> = vec![
        ("host".to_string(), spec.host.as_str()),
        ("source VM or template".to_string(), spec.source.as_str()),
    ];
    if let Some(ds) = &spec.datastore {
        inputs.push(("datastore".to_string(), ds));
    }
    if let Some(folder) = &spec.folder {
        inputs.push(("folder".to_string(), folder));
    }
    for (i, nic) in spec.nics.iter().enumerate() {
        inputs.push(match &nic.backing {
            NicBacking::Standard { network } => {
                (format!("NIC {i}: standard port group (network)"), network)
            }
            NicBacking::Distributed { portgroup_key, .. } => (
                format!("NIC {i}: distributed port group with key"),
                portgroup_key,
            ),
        });
    }
    match inputs
        .iter()
        .find(|(_, value)| fault.text.contains(&format!("\"{value}\"")))
    {
        Some((what, value)) => format!("{what} {value} does not exist"),
        None => format!("an object of the request does not exist: {fault}"),
    }
}

/// The rows of the pre-flight read, by moref.
#[derive(Default)]
struct Found {
    hosts: HashMap<String, HostRow>,
    pools: HashMap<String, PoolRow>,
    datacenters: Vec<DatacenterRow>,
    sources: HashMap<String, SourceRow>,
    datastores: HashMap<String, DatastoreRow>,
    folders: HashMap<String, FolderRow>,
    networks: HashMap<String, NetworkRow>,
    dvpgs: HashMap<String, DvpgRow>,
}

impl Found {
    fn decode(contents: Vec<ObjectContent>) -> Result<Found, Fault> {
        let mut found = Found::default();
        for content in contents {
            let id = content.obj.value.clone();
            match content.obj.r#type.as_str() {
                "HostSystem" => {
                    found.hosts.insert(id, decode(content)?);
                }
                "ComputeResource" | "ClusterComputeResource" => {
                    found.pools.insert(id, decode(content)?);
                }
                "Datacenter" => found.datacenters.push(decode(content)?),
                "VirtualMachine" => {
                    found.sources.insert(id, decode(content)?);
                }
                "Datastore" => {
                    found.datastores.insert(id, decode(content)?);
                }
                "Folder" => {
                    found.folders.insert(id, decode(content)?);
                }
                "Network" => {
                    found.networks.insert(id, decode(content)?);
                }
                "DistributedVirtualPortgroup" => {
                    found.dvpgs.insert(id, decode(content)?);
                }
                _ => {}
            }
        }
        Ok(found)
    }

    fn placement(mut self, spec: &CreateVm) -> Result<Placement, VmOpError> {
        let invalid = |msg: String| VmOpError::Invalid(msg);
        let host = self
            .hosts
            .remove(&spec.host)
            .ok_or_else(|| invalid(format!("host {} does not exist", spec.host)))?;
        let host_name = host.name.clone().unwrap_or_else(|| spec.host.clone());
        let compute = host
            .parent
            .as_ref()
            .ok_or_else(|| invalid(format!("host {host_name} has no compute resource")))?;
        let pool = self
            .pools
            .get(&compute.value)
            .and_then(|c| c.resource_pool.clone())
            .ok_or_else(|| {
                invalid(format!(
                    "compute resource {} of host {host_name} has no resource pool",
                    compute.value
                ))
            })?;
        let source = self.sources.remove(&spec.source).ok_or_else(|| {
            invalid(format!(
                "source VM or template {} does not exist",
                spec.source
            ))
        })?;
        if let Some(ds) = &spec.datastore {
            if !self.datastores.contains_key(ds) {
                return Err(invalid(format!("datastore {ds} does not exist")));
            }
        }
        let folder = match &spec.folder {
            Some(folder) => {
                let row = self
                    .folders
                    .get(folder)
                    .ok_or_else(|| invalid(format!("folder {folder} does not exist")))?;
                let holds_vms = row
                    .child_type
                    .iter()
                    .flatten()
                    .any(|t| t == "VirtualMachine");
                if !holds_vms {
                    return Err(invalid(format!("folder {folder} is not a VM folder")));
                }
                moref(MoTypesEnum::Folder, folder)
            }
            None => self
                .datacenters
                .iter()
                .find_map(|dc| dc.vm_folder.clone())
                .ok_or_else(|| {
                    invalid(format!(
                        "cannot find the datacenter (VM folder) of host {host_name}"
                    ))
                })?,
        };
        let host_networks: BTreeSet<&str> = host
            .network
            .iter()
            .flatten()
            .map(|n| n.value.as_str())
            .collect();
        let mut network_names = HashMap::new();
        for (i, nic) in spec.nics.iter().enumerate() {
            let (moref_value, name, carriers) = match &nic.backing {
                NicBacking::Standard { network } => {
                    if self.dvpgs.contains_key(network) {
                        return Err(invalid(format!(
                            "NIC {i}: {network} is a distributed port group, not a standard one"
                        )));
                    }
                    let row = self.networks.get(network).ok_or_else(|| {
                        invalid(format!(
                            "NIC {i}: standard port group (network) {network} does not exist"
                        ))
                    })?;
                    let name = row.name.clone().unwrap_or_default();
                    if name.is_empty() {
                        return Err(invalid(format!("NIC {i}: network {network} has no name")));
                    }
                    network_names.insert(network.clone(), name.clone());
                    (network, name, row.host.as_deref())
                }
                NicBacking::Distributed { portgroup_key, .. } => {
                    let row = self.dvpgs.get(portgroup_key).ok_or_else(|| {
                        invalid(format!(
                            "NIC {i}: distributed port group with key {portgroup_key} does not \
                             exist"
                        ))
                    })?;
                    let name = row.name.clone().unwrap_or_else(|| portgroup_key.clone());
                    (portgroup_key, name, row.host.as_deref())
                }
            };
            let carried = host_networks.contains(moref_value.as_str())
                || carriers.into_iter().flatten().any(|h| h.value == spec.host);
            if !carried {
                return Err(invalid(format!(
                    "NIC {i}: host {host_name} does not carry port group {name} ({moref_value})"
                )));
            }
        }
        let mut source_nics: Vec<Box<dyn VirtualEthernetCardTrait>> = source
            .devices
            .into_iter()
            .flatten()
            .filter_map(|d| CastInto::<dyn VirtualEthernetCardTrait>::into_box(d).ok())
            .collect();
        source_nics.sort_by_key(|n| n.virtual_device_.key);
        Ok(Placement {
            pool,
            folder,
            source_nics,
            network_names,
        })
    }
}

fn clone_spec(
    spec: &CreateVm,
    pool: ManagedObjectReference,
    source_nics: Vec<Box<dyn VirtualEthernetCardTrait>>,
    network_names: &HashMap<String, String>,
) -> VirtualMachineCloneSpec {
    let new_kind = source_nics.first().map(|n| n.data_type());
    let mut changes: Vec<Box<dyn VirtualDeviceConfigSpecTrait>> = Vec::new();
    let mut source_nics = source_nics.into_iter();
    for (i, nic) in spec.nics.iter().enumerate() {
        let backing = backing(&nic.backing, network_names);
        match source_nics.next() {
            Some(mut card) => {
                let eth = card.get_virtual_ethernet_card_mut();
                eth.virtual_device_.backing = Some(backing);
                // A generated address type without an address makes vCenter assign a new MAC.
                eth.address_type = Some("generated".to_string());
                eth.mac_address = None;
                changes.push(device_change(
                    VirtualDeviceConfigSpecOperationEnum::Edit,
                    card,
                ));
            }
            None => {
                let key = -100 - i as i32;
                changes.push(device_change(
                    VirtualDeviceConfigSpecOperationEnum::Add,
                    new_nic(new_kind, key, backing),
                ));
            }
        }
    }
    for surplus in source_nics {
        changes.push(device_change(
            VirtualDeviceConfigSpecOperationEnum::Remove,
            surplus,
        ));
    }
    let mut config = empty_config_spec();
    config.num_cp_us = spec.num_cpus;
    config.memory_mb = spec.memory_mb;
    config.device_change = Some(changes);
    config.instance_uuid = spec.instance_uuid.clone();
    let mut location = empty_relocate_spec();
    location.pool = Some(pool);
    location.host = Some(moref(MoTypesEnum::HostSystem, &spec.host));
    location.datastore = spec
        .datastore
        .as_deref()
        .map(|ds| moref(MoTypesEnum::Datastore, ds));
    VirtualMachineCloneSpec {
        location,
        template: false,
        config: Some(config),
        customization: None,
        power_on: false,
        snapshot: None,
        memory: None,
        tpm_provision_policy: None,
    }
}

fn device_change(
    operation: VirtualDeviceConfigSpecOperationEnum,
    device: Box<dyn VirtualDeviceTrait>,
) -> Box<dyn VirtualDeviceConfigSpecTrait> {
    Box::new(VirtualDeviceConfigSpec {
        operation: Some(operation),
        file_operation: None,
        device,
        profile: None,
        backing: None,
        filter_spec: None,
        change_mode: None,
    })
}

fn backing(
    nic: &NicBacking,
    network_names: &HashMap<String, String>,
) -> Box<dyn VirtualDeviceBackingInfoTrait> {
    match nic {
        NicBacking::Standard { network } => Box::new(VirtualEthernetCardNetworkBackingInfo {
            virtual_device_device_backing_info_: VirtualDeviceDeviceBackingInfo {
                device_name: network_names.get(network).cloned().unwrap_or_default(),
                use_auto_detect: Some(false),
            },
            network: Some(moref(MoTypesEnum::Network, network)),
            in_passthrough_mode: None,
        }),
        NicBacking::Distributed {
            switch_uuid,
            portgroup_key,
        } => Box::new(VirtualEthernetCardDistributedVirtualPortBackingInfo {
            port: DistributedVirtualSwitchPortConnection {
                switch_uuid: switch_uuid.clone(),
                portgroup_key: Some(portgroup_key.clone()),
                port_key: None,
                connection_cookie: None,
            },
        }),
    }
}

/// A new NIC of the source's first NIC type (vmxnet3 when it has none or another type).
fn new_nic(
    kind: Option<StructType>,
    key: i32,
    backing: Box<dyn VirtualDeviceBackingInfoTrait>,
) -> Box<dyn VirtualDeviceTrait> {
    let card = VirtualEthernetCard {
        virtual_device_: VirtualDevice {
            key,
            device_info: None,
            backing: Some(backing),
            connectable: Some(VirtualDeviceConnectInfo {
                migrate_connect: None,
                start_connected: true,
                allow_guest_control: true,
                connected: true,
                status: None,
            }),
            slot_info: None,
            controller_key: None,
            unit_number: None,
            numa_node: None,
            device_group_info: None,
        },
        dynamic_property: None,
        address_type: Some("generated".to_string()),
        mac_address: None,
        wake_on_lan_enabled: Some(true),
        resource_allocation: None,
        external_id: None,
        upt_compatibility_enabled: None,
        subnet_id: None,
    };
    match kind {
        Some(StructType::VirtualE1000) => Box::new(VirtualE1000 {
            virtual_ethernet_card_: card,
        }),
        Some(StructType::VirtualE1000E) => Box::new(VirtualE1000E {
            virtual_ethernet_card_: card,
        }),
        _ => Box::new(VirtualVmxnet3 {
            virtual_vmxnet_: VirtualVmxnet {
                virtual_ethernet_card_: card,
            },
            uptv_2_enabled: None,
            strict_latency_config: None,
        }),
    }
}

fn customization_spec(spec: &CreateVm, macs: &[String]) -> CustomizationSpec {
    let name = || -> Box<dyn vim_rs::types::traits::CustomizationNameTrait> {
        Box::new(CustomizationFixedName {
            name: spec.hostname.clone(),
        })
    };
    let password = |value: &str| CustomizationPassword {
        value: value.to_string(),
        // Not encrypted by vCenter's wizard: the API must not try to decrypt it.
        plain_text: true,
    };
    let (identity, options): (
        Box<dyn CustomizationIdentitySettingsTrait>,
        Option<Box<dyn CustomizationOptionsTrait>>,
    ) = match &spec.guest {
        GuestFamily::Linux(linux) => (
            Box::new(CustomizationLinuxPrep {
                host_name: name(),
                domain: linux.domain.clone(),
                time_zone: linux.time_zone.clone(),
                hw_clock_utc: linux.hw_clock_utc,
                script_text: linux.script_text.clone(),
                compatible_customization_method: None,
                reset_password: None,
                password: None,
                extra_config: None,
            }),
            None,
        ),
        GuestFamily::Windows(win) => {
            let identification = match &win.identity {
                WindowsIdentity::Workgroup(workgroup) => CustomizationIdentification {
                    join_workgroup: Some(workgroup.clone()),
                    join_domain: None,
                    domain_admin: None,
                    domain_admin_password: None,
                    domain_ou: None,
                },
                WindowsIdentity::Domain {
                    domain,
                    user,
                    password: domain_password,
                    ou,
                } => CustomizationIdentification {
                    join_workgroup: None,
                    join_domain: Some(domain.clone()),
                    domain_admin: Some(user.clone()),
                    domain_admin_password: Some(password(domain_password)),
                    domain_ou: ou.clone(),
                },
            };
            (
                Box::new(CustomizationSysprep {
                    gui_unattended: CustomizationGuiUnattended {
                        password: Some(password(&win.admin_password)),
                        time_zone: win.time_zone,
                        auto_logon: win.auto_logon,
                        auto_logon_count: win.auto_logon_count,
                    },
                    user_data: CustomizationUserData {
                        full_name: win.full_name.clone(),
                        org_name: win.organization_name.clone(),
                        computer_name: name(),
                        // The API takes an empty product id as "none".
                        product_id: win.product_key.clone().unwrap_or_default(),
                    },
                    gui_run_once: (!win.run_once.is_empty()).then(|| CustomizationGuiRunOnce {
                        command_list: win.run_once.clone(),
                    }),
                    identification,
                    license_file_print_data: None,
                    script_text: None,
                    reset_password: None,
                    extra_config: None,
                }),
                Some(Box::new(CustomizationWinOptions {
                    change_sid: true,
                    delete_accounts: false,
                    reboot: None,
                })),
            )
        }
    };
    let mut dns_servers: Vec<String> = Vec::new();
    let mut suffixes: Vec<String> = Vec::new();
    if let GuestFamily::Linux(linux) = &spec.guest {
        suffixes.push(linux.domain.clone());
    }
    let nic_setting_map = spec
        .nics
        .iter()
        .zip(macs)
        .map(|(nic, mac)| {
            let servers: Vec<String> = nic.dns_servers.iter().map(Ipv4Addr::to_string).collect();
            for s in &servers {
                if !dns_servers.contains(s) {
                    dns_servers.push(s.clone());
                }
            }
            if let Some(d) = nic.dns_domain.as_ref().filter(|d| !d.is_empty()) {
                if !suffixes.contains(d) {
                    suffixes.push(d.clone());
                }
            }
            CustomizationAdapterMapping {
                mac_address: Some(mac.clone()),
                adapter: CustomizationIpSettings {
                    ip: Box::new(CustomizationFixedIp {
                        ip_address: nic.ip.to_string(),
                    }),
                    subnet_mask: Some(netmask(nic.prefix_len).to_string()),
                    gateway: non_empty(nic.gateways.iter().map(Ipv4Addr::to_string).collect()),
                    ip_v_6_spec: None,
                    dns_server_list: non_empty(servers),
                    dns_domain: nic.dns_domain.clone().filter(|d| !d.is_empty()),
                    primary_wins: None,
                    secondary_wins: None,
                    net_bios: None,
                },
            }
        })
        .collect();
    CustomizationSpec {
        options,
        identity,
        // Resolvers: Linux takes the global list, Windows each adapter's (set above). Search
        // suffixes: global for both.
        global_ip_settings: CustomizationGlobalIpSettings {
            dns_suffix_list: non_empty(suffixes),
            dns_server_list: non_empty(dns_servers),
        },
        nic_setting_map: Some(nic_setting_map),
        encryption_key: None,
    }
}

fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::from(prefix_len.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0))
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
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

// ---------------------------------------------------------------------------------------------
// Spec constructors (vim_rs's `defaults` feature is off: every field is spelled out)

fn empty_relocate_spec() -> VirtualMachineRelocateSpec {
    VirtualMachineRelocateSpec {
        service: None,
        folder: None,
        datastore: None,
        disk_move_type: None,
        pool: None,
        host: None,
        disk: None,
        transform: None,
        device_change: None,
        profile: None,
        crypto_spec: None,
        tag_specs: None,
        vm_placement_policies: None,
    }
}

fn empty_config_spec() -> VirtualMachineConfigSpec {
    VirtualMachineConfigSpec {
        change_version: None,
        name: None,
        version: None,
        create_date: None,
        uuid: None,
        instance_uuid: None,
        npiv_node_world_wide_name: None,
        npiv_port_world_wide_name: None,
        npiv_world_wide_name_type: None,
        npiv_desired_node_wwns: None,
        npiv_desired_port_wwns: None,
        npiv_temporary_disabled: None,
        npiv_on_non_rdm_disks: None,
        npiv_world_wide_name_op: None,
        location_id: None,
        guest_id: None,
        alternate_guest_name: None,
        annotation: None,
        files: None,
        tools: None,
        flags: None,
        console_preferences: None,
        power_op_info: None,
        reboot_power_off: None,
        num_cp_us: None,
        vcpu_config: None,
        num_cores_per_socket: None,
        memory_mb: None,
        memory_hot_add_enabled: None,
        cpu_hot_add_enabled: None,
        cpu_hot_remove_enabled: None,
        virtual_ich_7_m_present: None,
        virtual_smc_present: None,
        device_change: None,
        cpu_allocation: None,
        memory_allocation: None,
        latency_sensitivity: None,
        cpu_affinity: None,
        memory_affinity: None,
        network_shaper: None,
        cpu_feature_mask: None,
        extra_config: None,
        swap_placement: None,
        boot_options: None,
        v_app_config: None,
        ft_info: None,
        rep_config: None,
        v_app_config_removed: None,
        v_asserts_enabled: None,
        change_tracking_enabled: None,
        firmware: None,
        max_mks_connections: None,
        guest_auto_lock_enabled: None,
        managed_by: None,
        memory_reservation_locked_to_max: None,
        nested_hv_enabled: None,
        v_pmc_enabled: None,
        scheduled_hardware_upgrade_info: None,
        vm_profile: None,
        message_bus_tunnel_enabled: None,
        crypto: None,
        migrate_encryption: None,
        sgx_info: None,
        ft_encryption_mode: None,
        guest_monitoring_mode_info: None,
        sev_enabled: None,
        virtual_numa: None,
        motherboard_layout: None,
        pmem_failover_enabled: None,
        vmx_stats_collection_enabled: None,
        vm_op_notification_to_app_enabled: None,
        vm_op_notification_timeout: None,
        device_swap: None,
        simultaneous_threads: None,
        pmem: None,
        device_groups: None,
        fixed_passthru_hot_plug_enabled: None,
        metro_ft_enabled: None,
        metro_ft_host_group: None,
        tdx_enabled: None,
        sev_snp_enabled: None,
        tag_specs: None,
        vm_placement_policies: None,
    }
}
