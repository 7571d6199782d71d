# Quickstart: the provider reads its vCenter settings from VSPHERE_SERVER, VSPHERE_USER,
# VSPHERE_PASSWORD and VSPHERE_ALLOW_UNVERIFIED_SSL, like the vSphere provider.
terraform {
  required_providers {
    vsphereipam = { source = "vsphereipam/vsphereipam" }
  }
}

provider "vsphereipam" {}

locals {
  port_groups = ["pg-app", "pg-db", "pg-std-web"]
}

data "vsphereipam_wire" "wire" {
  for_each = toset(local.port_groups)
  name     = each.key
}

# An IPv4 subnet on the pg-app wire. Addresses VMware Tools reports on the port group, and
# those of VMs on other port groups inside the range, are found automatically.
resource "vsphereipam_ipsubnet" "app" {
  name        = "app"
  wire_id     = data.vsphereipam_wire.wire["pg-app"].id
  cidr        = "10.20.0.0/24"
  start_ip    = "10.20.0.10"
  end_ip      = "10.20.0.250"
  gateway     = "10.20.0.1"
  dns_servers = ["10.20.0.2"]
}

# A running VM whose VMware Tools report nothing: its address is recorded so the IPAM never
# hands it out. `make demo` passes the UUID of the demo's "vm-app-legacy".
variable "legacy_vm_uuid" {
  type = string
}

resource "vsphereipam_vm_nic_fix" "legacy" {
  vm_id      = var.legacy_vm_uuid
  depends_on = [vsphereipam_ipsubnet.app]

  nic {
    ip_address = "10.20.0.50"
  }
}

# The next free address of the subnet for a load balancer VIP: addresses that VMware Tools
# report on pg-app, the fixed one above and the gateway are skipped.
resource "vsphereipam_ip_address" "vip" {
  subnet_id   = vsphereipam_ipsubnet.app.id
  description = "app load balancer"
  depends_on  = [vsphereipam_vm_nic_fix.legacy]
}

output "allocated" {
  value = [{
    name        = "vip"
    ip_address  = vsphereipam_ip_address.vip.ip_address
    description = vsphereipam_ip_address.vip.description
  }]
}

output "fixed" {
  value = [{
    vm   = "vm-app-legacy"
    nics = vsphereipam_vm_nic_fix.legacy.nic
  }]
}

output "subnet" {
  value = {
    id                  = vsphereipam_ipsubnet.app.id
    cidr                = vsphereipam_ipsubnet.app.cidr
    range               = "${vsphereipam_ipsubnet.app.start_ip}-${vsphereipam_ipsubnet.app.end_ip}"
    additional_wire_ids = vsphereipam_ipsubnet.app.additional_wire_ids
  }
}

output "wires" {
  description = "Every wire the quickstart looked up, with what vCenter reports on it."
  value = {
    for name, w in data.vsphereipam_wire.wire : name => {
      id           = w.id
      type         = w.type
      vlan_id      = w.vlan_id
      switch       = w.switch_name
      hosts        = length(w.host_ids)
      vm_ips       = w.vm_ips
      vmkernel_ips = w.vmkernel_ips
    }
  }
}
