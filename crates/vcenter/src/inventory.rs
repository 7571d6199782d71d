//! Loads the [`Inventory`] snapshot of a vCenter in bulk.
//!
//! One `ContainerView` over the root folder selects every object we need, and one
//! `RetrievePropertiesEx` (plus `ContinueRetrievePropertiesEx` pages) reads the properties of all
//! of them, so the number of round trips does not grow with the number of VMs beyond paging:
//! CreateContainerView (once per session) + RetrievePropertiesEx + (pages - 1).
//!
//! The raw rows are then joined in memory: datacenter by walking `parent` links, standard port
//! group VLANs and vSwitches from each carrying host's network config, NIC backings to port group
//! morefs. vCenter (and especially the simulator) returns odd data at times: an object that
//! cannot be decoded is skipped with a warning, never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use anyhow::anyhow;
use vim_rs::core::pc_helpers::Queriable;
use vim_rs::mo::ViewManager;
use vim_rs::types::convert::CastInto;
use vim_rs::types::enums::MoTypesEnum;
use vim_rs::types::structs::{
    HostPortGroup, HostVirtualNic, ManagedObjectReference, ObjectContent, ObjectSpec,
    PropertyFilterSpec, VMwareDvsPortSetting, VirtualEthernetCardDistributedVirtualPortBackingInfo,
    VirtualEthernetCardNetworkBackingInfo, VmwareDistributedVirtualSwitchPvlanSpec,
    VmwareDistributedVirtualSwitchTrunkVlanSpec, VmwareDistributedVirtualSwitchVlanIdSpec,
};
use vim_rs::types::traits::{DvPortSettingTrait, VirtualDeviceTrait, VirtualEthernetCardTrait};

use crate::client::{describe_vim_error, VsphereClient};
use crate::guest::{from_guest_net, ipv6_from_guest_net, usable_ipv4, usable_ipv6};
use crate::model::{
    Datacenter, Host, Inventory, PortGroup, PortGroupKind, Vlan, Vm, VmNic, VmkNic,
};
use crate::pc::{retrieve_pages, traversal};
use crate::rows::{
    ComputeRow, DatacenterRow, DvpgRow, DvsRow, FolderRow, HostRow, NetworkRow, VmRow,
};
use crate::BoxFuture;

/// Objects per RetrievePropertiesEx page. vCenter may return fewer; 1000 keeps one page
/// (a few MB of XML for VMs with several devices) well under memory and timeout limits while
/// a 2000-VM vCenter still loads in 3 pages.
pub const PAGE_SIZE: i32 = 1000;

/// Managed object types the container view selects; subtypes (ClusterComputeResource,
/// DistributedVirtualPortgroup, VmwareDistributedVirtualSwitch, StoragePod) come with them.
const VIEW_TYPES: [&str; 7] = [
    "Folder",
    "Datacenter",
    "ComputeResource",
    "HostSystem",
    "Network",
    "DistributedVirtualSwitch",
    "VirtualMachine",
];

/// Guards the parent walk against a cycle in odd data.
const MAX_PARENT_DEPTH: usize = 64;

/// Reads every object and derives the snapshot. Round trips: 3 + extra pages.
pub fn load_inventory(client: &VsphereClient) -> BoxFuture<'_, anyhow::Result<Inventory>> {
    Box::pin(load(client, &|_| {}))
}

/// How far a load has come, reported after each page of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    pub pages: u32,
    pub objects: usize,
}

/// [`load_inventory`], calling `progress` after each page read (for a progress display: the
/// total is not known before the last page).
pub fn load_inventory_with_progress<'a>(
    client: &'a VsphereClient,
    progress: &'a (dyn Fn(LoadProgress) + Send + Sync),
) -> BoxFuture<'a, anyhow::Result<Inventory>> {
    Box::pin(load(client, progress))
}

type Progress<'a> = &'a (dyn Fn(LoadProgress) + Send + Sync);

async fn load(client: &VsphereClient, progress: Progress<'_>) -> anyhow::Result<Inventory> {
    let started = Instant::now();
    let calls_before = client.calls();
    let contents = fetch_all(client, progress).await?;
    let fetched_ms = started.elapsed().as_millis() as u64;
    let object_count = contents.len();
    let rows = Rows::decode(contents);
    let inventory = build(client.instance_uuid(), rows);
    tracing::debug!(
        objects = object_count,
        datacenters = inventory.datacenters.len(),
        hosts = inventory.hosts.len(),
        portgroups = inventory.portgroups.len(),
        vms = inventory.vms.len(),
        calls = client.calls() - calls_before,
        fetch_ms = fetched_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded vCenter inventory"
    );
    Ok(inventory)
}

// ---------------------------------------------------------------------------------------------
// Fetching

async fn fetch_all(
    client: &VsphereClient,
    progress: Progress<'_>,
) -> anyhow::Result<Vec<ObjectContent>> {
    let (slot, generation) = client.inventory_view();
    // Held across the fetch: concurrent loads (rare, the cache coalesces them) take turns.
    let mut slot = slot.lock().await;
    if let Some((made_in, view)) = slot.as_ref() {
        if *made_in == generation {
            let view = ManagedObjectReference {
                r#type: MoTypesEnum::ContainerView,
                value: view.clone(),
            };
            match read_view(client, &view, progress).await {
                Ok(contents) => return Ok(contents),
                // Gone with an expired session: make a new one below.
                Err(e) => tracing::debug!(error = %e, "inventory view unusable; recreating it"),
            }
        }
    }
    let view = create_view(client).await?;
    *slot = Some((generation, view.value.clone()));
    read_view(client, &view, progress).await
}

/// A ContainerView of every inventory type. It lives (and vCenter keeps it current) until the
/// session logs out, so it is made once per session and reused by every reload.
async fn create_view(client: &VsphereClient) -> anyhow::Result<ManagedObjectReference> {
    let content = client.service_content();
    let view_manager_ref = content
        .view_manager
        .as_ref()
        .ok_or_else(|| anyhow!("vCenter offers no ViewManager"))?;
    let view_manager = ViewManager::new(client.vim(), &view_manager_ref.value);
    let types: Vec<String> = VIEW_TYPES.iter().map(|t| t.to_string()).collect();
    view_manager
        .create_container_view(&content.root_folder, Some(&types), true)
        .await
        .map_err(|e| anyhow!("creating the inventory view: {}", describe_vim_error(&e)))
}

async fn read_view(
    client: &VsphereClient,
    view: &ManagedObjectReference,
    progress: Progress<'_>,
) -> anyhow::Result<Vec<ObjectContent>> {
    let on_page = |pages, objects| progress(LoadProgress { pages, objects });
    let read = retrieve_pages(client, &filter_spec(view), Some(PAGE_SIZE), &on_page)
        .await
        .map_err(|(page, e)| match page {
            1 => anyhow!("reading the inventory: {}", describe_vim_error(&e)),
            page => anyhow!("reading inventory page {page}: {}", describe_vim_error(&e)),
        })?;
    tracing::debug!(
        pages = read.pages,
        objects = read.objects.len(),
        page_size = PAGE_SIZE,
        "inventory pages read"
    );
    Ok(read.objects)
}

/// One filter: start at the view (skipped), traverse its `view` list, one property spec per type.
fn filter_spec(view: &ManagedObjectReference) -> PropertyFilterSpec {
    PropertyFilterSpec {
        prop_set: vec![
            FolderRow::prop_spec(),
            DatacenterRow::prop_spec(),
            ComputeRow::prop_spec(),
            HostRow::prop_spec(),
            NetworkRow::prop_spec(),
            DvpgRow::prop_spec(),
            DvsRow::prop_spec(),
            VmRow::prop_spec(),
        ],
        object_set: vec![ObjectSpec {
            obj: view.clone(),
            skip: Some(true),
            select_set: Some(vec![traversal(
                "traverseView",
                "ContainerView",
                "view",
                None,
            )]),
        }],
        report_missing_objects_in_results: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// The decoded rows, by kind.
#[derive(Default)]
struct Rows {
    folders: Vec<FolderRow>,
    datacenters: Vec<DatacenterRow>,
    computes: Vec<ComputeRow>,
    hosts: Vec<HostRow>,
    networks: Vec<NetworkRow>,
    /// Opaque (NSX) networks: only kept for their parent link; not a port group we manage.
    opaque: Vec<NetworkRow>,
    dvpgs: Vec<DvpgRow>,
    switches: Vec<DvsRow>,
    vms: Vec<VmRow>,
}

impl Rows {
    fn decode(contents: Vec<ObjectContent>) -> Rows {
        let mut rows = Rows::default();
        for content in contents {
            let kind = content.obj.r#type.as_str().to_string();
            match kind.as_str() {
                "Folder" | "StoragePod" => push_row(content, &mut rows.folders),
                "Datacenter" => push_row(content, &mut rows.datacenters),
                "ComputeResource" | "ClusterComputeResource" => {
                    push_row(content, &mut rows.computes)
                }
                "HostSystem" => push_row(content, &mut rows.hosts),
                "Network" => push_row(content, &mut rows.networks),
                "OpaqueNetwork" => push_row(content, &mut rows.opaque),
                "DistributedVirtualPortgroup" => push_row(content, &mut rows.dvpgs),
                "DistributedVirtualSwitch" | "VmwareDistributedVirtualSwitch" => {
                    push_row(content, &mut rows.switches)
                }
                "VirtualMachine" => push_row(content, &mut rows.vms),
                _ => tracing::debug!(kind = %kind, moref = %content.obj.value, "ignoring object"),
            }
        }
        rows
    }
}

fn push_row<T>(content: ObjectContent, out: &mut Vec<T>)
where
    T: TryFrom<ObjectContent, Error = vim_rs::core::error::Error>,
{
    let moref = content.obj.value.clone();
    let kind = content.obj.r#type.as_str().to_string();
    if let Some(missing) = content.missing_set.as_ref().filter(|m| !m.is_empty()) {
        let paths: Vec<&str> = missing.iter().map(|m| m.path.as_str()).collect();
        tracing::debug!(moref = %moref, kind = %kind, missing = ?paths, "properties not returned");
    }
    match T::try_from(content) {
        Ok(row) => out.push(row),
        Err(e) => tracing::warn!(
            moref = %moref,
            kind = %kind,
            error = %e,
            "skipping an inventory object vCenter returned in an unexpected shape"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Joining

/// Lookups shared by the builders.
struct Index<'a> {
    /// moref → parent moref, for every entity that reported one.
    parents: HashMap<&'a str, &'a str>,
    /// Datacenter moref → name.
    datacenter_names: HashMap<&'a str, &'a str>,
    /// Distributed port group key → moref, with and without the switch UUID.
    dvpg_by_switch_key: HashMap<(String, &'a str), &'a str>,
    dvpg_by_key: HashMap<&'a str, &'a str>,
    /// (datacenter name, network name) → standard network morefs.
    standard_by_name: HashMap<(String, &'a str), Vec<&'a str>>,
    /// Standard network moref → name.
    standard_names: HashMap<&'a str, &'a str>,
    /// Host moref → the morefs in its `network` list.
    host_networks: HashMap<&'a str, Vec<&'a str>>,
    host_datacenter: HashMap<&'a str, String>,
    switches: HashMap<&'a str, &'a DvsRow>,
}

impl<'a> Index<'a> {
    fn new(rows: &'a Rows) -> Index<'a> {
        let mut index = Index {
            parents: HashMap::new(),
            datacenter_names: HashMap::new(),
            dvpg_by_switch_key: HashMap::new(),
            dvpg_by_key: HashMap::new(),
            standard_by_name: HashMap::new(),
            standard_names: HashMap::new(),
            host_networks: HashMap::new(),
            host_datacenter: HashMap::new(),
            switches: HashMap::new(),
        };
        index.add_parents(rows);
        for dc in &rows.datacenters {
            index
                .datacenter_names
                .insert(&dc.id.value, dc.name.as_deref().unwrap_or(&dc.id.value));
        }
        for dvs in &rows.switches {
            index.switches.insert(&dvs.id.value, dvs);
        }
        index.add_dvpgs(rows);
        index.add_standard_networks(rows);
        for host in &rows.hosts {
            let networks = host
                .network
                .iter()
                .flatten()
                .map(|n| n.value.as_str())
                .collect();
            index.host_networks.insert(&host.id.value, networks);
            let dc = index.datacenter_of(&host.id.value);
            index.host_datacenter.insert(&host.id.value, dc);
        }
        index
    }

    fn add_parents(&mut self, rows: &'a Rows) {
        let links = rows
            .folders
            .iter()
            .map(|r| (&r.id, &r.parent))
            .chain(rows.datacenters.iter().map(|r| (&r.id, &r.parent)))
            .chain(rows.computes.iter().map(|r| (&r.id, &r.parent)))
            .chain(rows.hosts.iter().map(|r| (&r.id, &r.parent)))
            .chain(rows.networks.iter().map(|r| (&r.id, &r.parent)))
            .chain(rows.opaque.iter().map(|r| (&r.id, &r.parent)))
            .chain(rows.dvpgs.iter().map(|r| (&r.id, &r.parent)));
        for (id, parent) in links {
            if let Some(parent) = parent {
                self.parents.insert(&id.value, &parent.value);
            }
        }
    }

    fn add_dvpgs(&mut self, rows: &'a Rows) {
        for pg in &rows.dvpgs {
            let Some(key) = pg.key.as_deref() else {
                continue;
            };
            self.dvpg_by_key.entry(key).or_insert(&pg.id.value);
            if let Some(uuid) = self.switch_of(pg).and_then(|s| s.uuid.clone()) {
                self.dvpg_by_switch_key.insert((uuid, key), &pg.id.value);
            }
        }
    }

    fn add_standard_networks(&mut self, rows: &'a Rows) {
        for net in &rows.networks {
            let Some(name) = net.name.as_deref() else {
                continue;
            };
            self.standard_names.insert(&net.id.value, name);
            let dc = self.datacenter_of(&net.id.value);
            self.standard_by_name
                .entry((dc, name))
                .or_default()
                .push(&net.id.value);
        }
    }

    fn switch_of(&self, pg: &DvpgRow) -> Option<&'a DvsRow> {
        let switch = pg.switch.as_ref()?;
        self.switches.get(switch.value.as_str()).copied()
    }

    /// Name of the datacenter above `moref`, or "" when the chain does not reach one.
    fn datacenter_of(&self, moref: &str) -> String {
        let mut current = moref;
        for _ in 0..MAX_PARENT_DEPTH {
            if let Some(name) = self.datacenter_names.get(current) {
                return (*name).to_string();
            }
            match self.parents.get(current) {
                Some(parent) => current = parent,
                None => break,
            }
        }
        String::new()
    }

    /// A distributed port group by switch UUID and key; the key alone is a fallback because
    /// on vCenter keys are globally unique ("dvportgroup-13").
    fn dvpg(&self, switch_uuid: &str, key: &str) -> Option<String> {
        self.dvpg_by_switch_key
            .get(&(switch_uuid.to_string(), key))
            .or_else(|| self.dvpg_by_key.get(key))
            .map(|m| (*m).to_string())
    }

    /// A standard network by name: first among the host's networks, then unique in the datacenter.
    fn standard_network(&self, host: Option<&str>, datacenter: &str, name: &str) -> Option<String> {
        if let Some(networks) = host.and_then(|h| self.host_networks.get(h)) {
            let on_host = networks
                .iter()
                .find(|n| self.standard_names.get(*n) == Some(&name));
            if let Some(found) = on_host {
                return Some((*found).to_string());
            }
        }
        match self.standard_by_name.get(&(datacenter.to_string(), name)) {
            Some(candidates) if candidates.len() == 1 => Some(candidates[0].to_string()),
            _ => None,
        }
    }
}

fn build(instance_uuid: &str, rows: Rows) -> Inventory {
    let index = Index::new(&rows);
    let mut inventory = Inventory {
        instance_uuid: instance_uuid.to_string(),
        datacenters: build_datacenters(&rows),
        hosts: rows.hosts.iter().map(|h| build_host(h, &index)).collect(),
        portgroups: build_standard_portgroups(&rows, &index),
        vms: rows
            .vms
            .iter()
            .filter_map(|v| build_vm(v, &index))
            .collect(),
    };
    inventory
        .portgroups
        .extend(rows.dvpgs.iter().map(|pg| build_dvpg(pg, &index)));
    inventory.hosts.sort_by(|a, b| a.moref.cmp(&b.moref));
    inventory.portgroups.sort_by(|a, b| a.moref.cmp(&b.moref));
    inventory.vms.sort_by(|a, b| a.moref.cmp(&b.moref));
    inventory
}

fn build_datacenters(rows: &Rows) -> Vec<Datacenter> {
    let mut out: Vec<Datacenter> = rows
        .datacenters
        .iter()
        .map(|dc| Datacenter {
            moref: dc.id.value.clone(),
            name: dc.name.clone().unwrap_or_else(|| dc.id.value.clone()),
        })
        .collect();
    out.sort_by(|a, b| a.moref.cmp(&b.moref));
    out
}

// ----- hosts

fn build_host(row: &HostRow, index: &Index) -> Host {
    let moref = row.id.value.clone();
    let datacenter = index
        .host_datacenter
        .get(moref.as_str())
        .cloned()
        .unwrap_or_default();
    let compute_resource = row
        .parent
        .as_ref()
        .filter(|p| {
            matches!(
                p.r#type.as_str(),
                "ComputeResource" | "ClusterComputeResource"
            )
        })
        .map(|p| p.value.clone());
    let vmknics = row
        .vnics
        .iter()
        .flatten()
        .map(|nic| build_vmknic(nic, &moref, &datacenter, index))
        .collect();
    Host {
        name: row.name.clone().unwrap_or_else(|| moref.clone()),
        datacenter,
        compute_resource,
        connection_state: row
            .connection_state
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "disconnected".to_string()),
        in_maintenance: row.in_maintenance.unwrap_or(false),
        vmknics,
        moref,
    }
}

fn build_vmknic(nic: &HostVirtualNic, host: &str, datacenter: &str, index: &Index) -> VmkNic {
    let portgroup = match nic.spec.distributed_virtual_port.as_ref() {
        Some(port) => port
            .portgroup_key
            .as_deref()
            .and_then(|key| index.dvpg(&port.switch_uuid, key)),
        None => {
            let name = nic.spec.portgroup.as_deref().unwrap_or(&nic.portgroup);
            non_empty(name).and_then(|n| index.standard_network(Some(host), datacenter, n))
        }
    };
    let ip = nic
        .spec
        .ip
        .as_ref()
        .and_then(|ip| ip.ip_address.as_deref())
        .and_then(usable_ipv4);
    let mut ipv6: Vec<_> = nic
        .spec
        .ip
        .as_ref()
        .and_then(|ip| ip.ip_v_6_config.as_ref())
        .and_then(|c| c.ip_v_6_address.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|a| usable_ipv6(&a.ip_address))
        .collect();
    ipv6.sort();
    ipv6.dedup();
    VmkNic {
        device: nic.device.clone(),
        portgroup,
        ip,
        ipv6,
    }
}

// ----- standard port groups

fn build_standard_portgroups(rows: &Rows, index: &Index) -> Vec<PortGroup> {
    // Hosts list networks the network's own `host` list may omit (the default "VM Network").
    let mut carriers: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for host in &rows.hosts {
        for net in host.network.iter().flatten() {
            carriers
                .entry(net.value.as_str())
                .or_default()
                .insert(host.id.value.clone());
        }
    }
    let hosts_by_moref: HashMap<&str, &HostRow> = rows
        .hosts
        .iter()
        .map(|h| (h.id.value.as_str(), h))
        .collect();
    rows.networks
        .iter()
        .map(|net| {
            let mut host_ids = carriers.remove(net.id.value.as_str()).unwrap_or_default();
            host_ids.extend(net.host.iter().flatten().map(|h| h.value.clone()));
            build_standard(net, host_ids, &hosts_by_moref, index)
        })
        .collect()
}

fn build_standard(
    net: &NetworkRow,
    host_ids: BTreeSet<String>,
    hosts: &HashMap<&str, &HostRow>,
    index: &Index,
) -> PortGroup {
    let name = net.name.clone().unwrap_or_else(|| net.id.value.clone());
    let configs: Vec<&HostPortGroup> = host_ids
        .iter()
        .filter_map(|h| hosts.get(h.as_str()))
        .filter_map(|h| host_portgroup(h, &name))
        .collect();
    let switches: BTreeSet<&str> = configs
        .iter()
        .map(|pg| pg.spec.vswitch_name.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let vlan = most_common_vlan(&configs, &name);
    PortGroup {
        moref: net.id.value.clone(),
        datacenter: index.datacenter_of(&net.id.value),
        switch_name: switches.into_iter().collect::<Vec<_>>().join(","),
        switch_uuid: None,
        key: None,
        vlan,
        host_ids: host_ids.into_iter().collect(),
        uplink: false,
        kind: PortGroupKind::Standard,
        name,
    }
}

fn host_portgroup<'h>(host: &'h HostRow, name: &str) -> Option<&'h HostPortGroup> {
    host.portgroups
        .iter()
        .flatten()
        .find(|pg| pg.spec.name == name)
}

/// Hosts normally agree; when they do not, the majority wins (ties: the lowest VLAN id).
fn most_common_vlan(configs: &[&HostPortGroup], name: &str) -> Vlan {
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for pg in configs {
        *counts.entry(pg.spec.vlan_id).or_default() += 1;
    }
    if counts.len() > 1 {
        tracing::warn!(portgroup = %name, vlans = ?counts, "hosts disagree on the port group VLAN");
    }
    let best = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(vlan, _)| *vlan);
    best.map(standard_vlan).unwrap_or(Vlan::None)
}

pub fn standard_vlan(id: i32) -> Vlan {
    match id {
        4095 => Vlan::Trunk {
            ranges: vec![(0, 4094)],
        },
        1..=4094 => Vlan::Id { id: id as u16 },
        _ => Vlan::None,
    }
}

// ----- distributed port groups

fn build_dvpg(pg: &DvpgRow, index: &Index) -> PortGroup {
    let switch = index.switch_of(pg);
    let moref = pg.id.value.clone();
    let listed_uplink = switch
        .and_then(|s| s.uplink_portgroups.as_ref())
        .is_some_and(|ups| ups.iter().any(|u| u.value == moref));
    let mut host_ids: Vec<String> = pg.host.iter().flatten().map(|h| h.value.clone()).collect();
    host_ids.sort();
    host_ids.dedup();
    PortGroup {
        name: pg.name.clone().unwrap_or_else(|| moref.clone()),
        kind: PortGroupKind::Distributed,
        datacenter: index.datacenter_of(&moref),
        switch_name: switch.and_then(|s| s.name.clone()).unwrap_or_default(),
        switch_uuid: switch.and_then(|s| s.uuid.clone()),
        key: Some(pg.key.clone().unwrap_or_else(|| moref.clone())),
        vlan: dvpg_vlan(pg.port_config.as_deref()),
        host_ids,
        uplink: pg.uplink.unwrap_or(false) || listed_uplink,
        moref,
    }
}

fn dvpg_vlan(setting: Option<&dyn DvPortSettingTrait>) -> Vlan {
    let Some(vmware) = setting.and_then(|s| s.as_any_ref().downcast_ref::<VMwareDvsPortSetting>())
    else {
        return Vlan::None;
    };
    let Some(spec) = vmware.vlan.as_deref() else {
        return Vlan::None;
    };
    let any = spec.as_any_ref();
    if let Some(id) = any.downcast_ref::<VmwareDistributedVirtualSwitchVlanIdSpec>() {
        return standard_vlan(id.vlan_id);
    }
    if let Some(trunk) = any.downcast_ref::<VmwareDistributedVirtualSwitchTrunkVlanSpec>() {
        let ranges = trunk
            .vlan_id
            .iter()
            .flatten()
            .filter_map(|r| Some((vlan_u16(r.start)?, vlan_u16(r.end)?)))
            .collect();
        return Vlan::Trunk { ranges };
    }
    if let Some(pvlan) = any.downcast_ref::<VmwareDistributedVirtualSwitchPvlanSpec>() {
        if let Some(id) = vlan_u16(pvlan.pvlan_id) {
            return Vlan::Private { id };
        }
    }
    Vlan::None
}

fn vlan_u16(id: i32) -> Option<u16> {
    u16::try_from(id).ok().filter(|v| *v <= 4095)
}

// ----- virtual machines

fn build_vm(row: &VmRow, index: &Index) -> Option<Vm> {
    let moref = row.id.value.clone();
    let Some(uuid) = row.uuid.clone().filter(|u| !u.is_empty()) else {
        tracing::warn!(vm = %moref, name = ?row.name, "skipping VM without config (inaccessible or being created)");
        return None;
    };
    let host = row.host.as_ref().map(|h| h.value.clone());
    let datacenter = host
        .as_deref()
        .and_then(|h| index.host_datacenter.get(h))
        .cloned()
        .unwrap_or_default();
    let mut nics: Vec<VmNic> = row
        .devices
        .iter()
        .flatten()
        .filter_map(|d| build_vm_nic(d.as_ref(), host.as_deref(), &datacenter, index))
        .collect();
    nics.sort_by_key(|n| n.key);
    Some(Vm {
        name: row.name.clone().unwrap_or_else(|| moref.clone()),
        uuid,
        instance_uuid: row.instance_uuid.clone().filter(|u| !u.is_empty()),
        template: row.template.unwrap_or(false),
        power_state: row
            .power_state
            .as_ref()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "poweredOff".to_string()),
        host,
        guest_family: guest_family(row),
        guest_hostname: row.guest_hostname.clone().filter(|h| !h.is_empty()),
        nics,
        guest_ips: from_guest_net(row.guest_net.as_deref().unwrap_or_default()),
        guest_ipv6: ipv6_from_guest_net(row.guest_net.as_deref().unwrap_or_default()),
        num_cpus: row.num_cpu,
        memory_mb: row.memory_mb.map(i64::from),
        moref,
    })
}

fn build_vm_nic(
    device: &(dyn VirtualDeviceTrait + 'static),
    host: Option<&str>,
    datacenter: &str,
    index: &Index,
) -> Option<VmNic> {
    let card: &dyn VirtualEthernetCardTrait = device.into_ref()?;
    let card = card.get_virtual_ethernet_card();
    let portgroup = card
        .virtual_device_
        .backing
        .as_deref()
        .and_then(|b| backing_portgroup(b.as_any_ref(), host, datacenter, index));
    Some(VmNic {
        key: card.virtual_device_.key,
        mac: card
            .mac_address
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        portgroup,
    })
}

fn backing_portgroup(
    backing: &dyn std::any::Any,
    host: Option<&str>,
    datacenter: &str,
    index: &Index,
) -> Option<String> {
    if let Some(net) = backing.downcast_ref::<VirtualEthernetCardNetworkBackingInfo>() {
        if let Some(network) = net.network.as_ref() {
            return Some(network.value.clone());
        }
        let name = non_empty(&net.virtual_device_device_backing_info_.device_name)?;
        return index.standard_network(host, datacenter, name);
    }
    if let Some(dv) = backing.downcast_ref::<VirtualEthernetCardDistributedVirtualPortBackingInfo>()
    {
        let key = dv.port.portgroup_key.as_deref()?;
        return index.dvpg(&dv.port.switch_uuid, key);
    }
    // Opaque (NSX) and SR-IOV style backings name no port group we manage.
    None
}

/// Tools' `guest.guestFamily` when reported, else a best guess from the configured `guestId`.
fn guest_family(row: &VmRow) -> Option<String> {
    if let Some(family) = row.guest_family.as_deref().and_then(non_empty) {
        return Some(family.to_string());
    }
    let id = row.guest_id.as_deref().and_then(non_empty)?;
    Some(family_from_guest_id(id).to_string())
}

pub fn family_from_guest_id(id: &str) -> &'static str {
    let lower = id.to_ascii_lowercase();
    if lower.starts_with("win") {
        "windowsGuest"
    } else if lower.starts_with("darwin") {
        "darwinGuestFamily"
    } else if lower.starts_with("solaris") {
        "solarisGuest"
    } else if lower.starts_with("netware") {
        "netwareGuest"
    } else if (lower.starts_with("other") && !lower.contains("linux"))
        || lower.contains("bsd")
        || lower.starts_with("os2")
        || lower.starts_with("dos")
    {
        "otherGuestFamily"
    } else {
        "linuxGuest"
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}
