//! The PropertyCollector rows this crate reads, one per managed object type: the inventory load
//! and the VM operations read the same rows, so each property path is named once.
//!
//! Every property is optional (`?`): an object the server sends without one still decodes, and
//! whoever uses the row says what a missing value means.

use vim_rs::vim_retrievable;

vim_retrievable!(
    struct FolderRow: Folder {
        name = "name"?,
        parent = "parent"?,
        child_type = "child_type"?,
    }
);

vim_retrievable!(
    struct DatacenterRow: Datacenter {
        name = "name"?,
        parent = "parent"?,
        vm_folder = "vm_folder"?,
    }
);

vim_retrievable!(
    struct ComputeRow: ComputeResource {
        name = "name"?,
        parent = "parent"?,
        resource_pool = "resource_pool"?,
    }
);

vim_retrievable!(
    struct HostRow: HostSystem {
        name = "name"?,
        parent = "parent"?,
        connection_state = "runtime.connection_state"?,
        in_maintenance = "runtime.in_maintenance_mode"?,
        network = "network"?,
        portgroups = "config.network.portgroup"?,
        vnics = "config.network.vnic"?,
    }
);

// The `Network` property spec also matches distributed port groups, so `DvpgRow` repeats its
// paths: a row must accept every property the server sends for the object.
vim_retrievable!(
    struct NetworkRow: Network {
        name = "name"?,
        parent = "parent"?,
        host = "host"?,
    }
);

vim_retrievable!(
    struct DvpgRow: DistributedVirtualPortgroup {
        name = "name"?,
        parent = "parent"?,
        host = "host"?,
        key = "key"?,
        switch = "config.distributed_virtual_switch"?,
        port_config = "config.default_port_config"?,
        uplink = "config.uplink"?,
    }
);

vim_retrievable!(
    struct DvsRow: DistributedVirtualSwitch {
        name = "name"?,
        uuid = "uuid"?,
        uplink_portgroups = "config.uplink_portgroup"?,
    }
);

vim_retrievable!(
    struct DatastoreRow: Datastore {
        name = "name"?,
    }
);

vim_retrievable!(
    struct VmRow: VirtualMachine {
        name = "name"?,
        uuid = "config.uuid"?,
        instance_uuid = "config.instance_uuid"?,
        template = "config.template"?,
        guest_id = "config.guest_id"?,
        devices = "config.hardware.device"?,
        num_cpu = "config.hardware.num_cpu"?,
        memory_mb = "config.hardware.memory_mb"?,
        power_state = "runtime.power_state"?,
        host = "runtime.host"?,
        guest_family = "guest.guest_family"?,
        guest_hostname = "guest.host_name"?,
        guest_net = "guest.net"?,
    }
);
