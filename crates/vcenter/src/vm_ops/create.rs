//! Creating a VM from a template: check the inputs, read what the clone needs, clone, fix up
//! what the clone did not do, customize, power on; remove the partial VM when a step fails.
//!
//! [`create_vm`](super::create_vm) runs a flow that is correct on vCenter and also works on govmomi's simulator
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
//! Round trips of a create when tasks are done at their first read (always so on the
//! simulator): 8, plus 2 for the relocation and 2 for the CPU/memory reconfiguration when the
//! clone did not already come out right (on the simulator it never does: it ignores both).

use std::collections::{BTreeSet, HashMap};

use vim_rs::core::pc_helpers::Queriable;
use vim_rs::mo::VirtualMachine;
use vim_rs::types::convert::CastInto;
use vim_rs::types::enums::{MoTypesEnum, VirtualDeviceConfigSpecOperationEnum};
use vim_rs::types::struct_enum::StructType;
use vim_rs::types::structs::{
    DistributedVirtualSwitchPortConnection, ManagedObjectReference, ObjectContent, ObjectSpec,
    VirtualDevice, VirtualDeviceConfigSpec, VirtualDeviceConnectInfo,
    VirtualDeviceDeviceBackingInfo, VirtualE1000, VirtualE1000E, VirtualEthernetCard,
    VirtualEthernetCardDistributedVirtualPortBackingInfo, VirtualEthernetCardNetworkBackingInfo,
    VirtualMachineCloneSpec, VirtualVmxnet, VirtualVmxnet3,
};
use vim_rs::types::traits::{
    VirtualDeviceBackingInfoTrait, VirtualDeviceConfigSpecTrait, VirtualDeviceTrait,
    VirtualEthernetCardTrait,
};

use super::customize::customization_spec;
use super::{
    destroy, on_host, powered_on, read_vm, search_uuid, vm_probe, CreateVm, CreatedVm, GuestFamily,
    NicBacking, VmOpError, WindowsIdentity,
};
use crate::client::VsphereClient;
use crate::fault::{Fault, StepError};
use crate::pc::{decode, moref, object_spec, retrieve, traversal};
use crate::rows::{
    ComputeRow, DatacenterRow, DatastoreRow, DvpgRow, FolderRow, HostRow, NetworkRow, VmRow,
};
use crate::spec::{empty_config_spec, empty_relocate_spec};
use crate::task::{result_moref, run_checked, wait_task};

/// Windows (NetBIOS) computer names are at most 15 characters.
const MAX_WINDOWS_NAME: usize = 15;

/// What the pre-flight read found.
struct Preflight {
    pool: ManagedObjectReference,
    folder: ManagedObjectReference,
    /// The source's NICs, sorted by device key.
    source_nics: Vec<Box<dyn VirtualEthernetCardTrait>>,
    /// Standard network moref → name.
    network_names: HashMap<String, String>,
}

pub(super) async fn create(
    client: &VsphereClient,
    spec: &CreateVm,
) -> Result<CreatedVm, VmOpError> {
    validate(spec)?;
    let pre = preflight(client, spec).await?;
    let source_keys: Vec<i32> = pre
        .source_nics
        .iter()
        .map(|n| n.virtual_device_.key)
        .collect();
    let source_macs: BTreeSet<String> = pre
        .source_nics
        .iter()
        .filter_map(|n| n.mac_address.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    let edited = spec.nics.len().min(source_keys.len());
    let clone_spec = clone_spec(spec, pre.pool.clone(), pre.source_nics, &pre.network_names);

    let vm = clone_vm(client, spec, &pre.folder, &clone_spec).await?;
    tracing::debug!(vm = %vm.value, name = %spec.name, "cloned");

    let finished = finish(
        client,
        spec,
        &vm.value,
        &pre.pool,
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
        if nic.ipv4.is_none() && nic.ipv6.is_none() {
            return invalid(format!(
                "NIC {i}: neither an IPv4 nor an IPv6 address is given"
            ));
        }
        if let Some(v4) = &nic.ipv4 {
            if !(1..=32).contains(&v4.prefix_len) {
                return invalid(format!(
                    "NIC {i}: prefix length {} is not within 1..=32",
                    v4.prefix_len
                ));
            }
            if v4.ip.is_unspecified() || v4.ip.is_broadcast() || v4.ip.is_multicast() {
                return invalid(format!("NIC {i}: {} cannot be a host address", v4.ip));
            }
        }
        if let Some(v6) = &nic.ipv6 {
            if !(1..=128).contains(&v6.prefix_len) {
                return invalid(format!(
                    "NIC {i}: IPv6 prefix length {} is not within 1..=128",
                    v6.prefix_len
                ));
            }
            if v6.ip.is_unspecified() || v6.ip.is_multicast() || v6.ip.is_loopback() {
                return invalid(format!("NIC {i}: {} cannot be a host address", v6.ip));
            }
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
async fn preflight(client: &VsphereClient, spec: &CreateVm) -> Result<Preflight, VmOpError> {
    let mut props = vec![
        HostRow::prop_spec(),
        ComputeRow::prop_spec(),
        VmRow::prop_spec(),
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
    found.check(spec)
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
    pools: HashMap<String, ComputeRow>,
    datacenters: Vec<DatacenterRow>,
    sources: HashMap<String, VmRow>,
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

    fn check(mut self, spec: &CreateVm) -> Result<Preflight, VmOpError> {
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
        Ok(Preflight {
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

fn ethernet_cards(
    devices: Option<&[Box<dyn VirtualDeviceTrait>]>,
) -> impl Iterator<Item = &VirtualEthernetCard> {
    devices.into_iter().flatten().filter_map(|d| {
        let card: &dyn VirtualEthernetCardTrait = d.as_ref().into_ref()?;
        Some(card.get_virtual_ethernet_card())
    })
}
