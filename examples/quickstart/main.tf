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

# pg-app is dual stack: an IPv6 subnet on the same wire, with an IPv6 VIP taken the same way.
# IPv6 addresses are written in canonical form; the subnet-router anycast address (::) and
# link-local addresses are never handed out.
resource "vsphereipam_ipsubnet" "app6" {
  name        = "app6"
  wire_id     = data.vsphereipam_wire.wire["pg-app"].id
  cidr        = "2001:db8:0:20::/64"
  gateway     = "2001:db8:0:20::1"
  dns_servers = ["2001:db8:0:20::2"]
}

resource "vsphereipam_ip_address" "vip6" {
  subnet_id   = vsphereipam_ipsubnet.app6.id
  description = "app load balancer (IPv6)"
}

# A second subnet, on the standard port group pg-std-web.
resource "vsphereipam_ipsubnet" "web" {
  name        = "web"
  wire_id     = data.vsphereipam_wire.wire["pg-std-web"].id
  cidr        = "10.50.0.0/24"
  start_ip    = "10.50.0.100"
  end_ip      = "10.50.0.199"
  gateway     = "10.50.0.1"
  dns_servers = ["10.20.0.2"]
  domain      = "web.example.com"
}

# Two app VMs and a web VM cloned from the template: each NIC gets the next free address of
# its subnet, the VM lands on the least loaded host that carries the port group, and the apply
# waits until VMware Tools reports exactly that address. The app VMs are dual stack: their NIC
# also takes the next free address of the IPv6 subnet on the same wire, and the guest is
# customized with both (address, prefix and gateway of each family). They come after the VIPs
# only so the demo's VIP addresses stay the same.
resource "vsphereipam_vm" "app" {
  count      = 2
  name       = "app-${count.index}"
  datacenter = "DC0"
  template   = "tmpl-linux"
  num_cpus   = 2
  memory_mb  = 2048
  depends_on = [vsphereipam_ip_address.vip, vsphereipam_ip_address.vip6]

  network_interface {
    subnet_id      = vsphereipam_ipsubnet.app.id
    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id
  }
}

resource "vsphereipam_vm" "web" {
  name       = "web-0"
  datacenter = "DC0"
  template   = "tmpl-linux"

  network_interface {
    subnet_id = vsphereipam_ipsubnet.web.id
  }
}

output "vms" {
  value = [
    for vm in concat(vsphereipam_vm.app, [vsphereipam_vm.web]) : {
      name      = vm.name
      host      = vm.host_id
      guest_ips = vm.guest_ip_addresses
      nics = [for n in vm.network_interface : {
        port_group   = n.port_group
        ip_address   = n.ip_address
        ipv6_address = n.ipv6_address
        mac          = n.mac
      }]
    }
  ]
}

output "allocated" {
  value = [
    {
      name        = "vip"
      ip_address  = vsphereipam_ip_address.vip.ip_address
      description = vsphereipam_ip_address.vip.description
    },
    {
      name        = "vip6"
      ip_address  = vsphereipam_ip_address.vip6.ip_address
      description = vsphereipam_ip_address.vip6.description
    },
  ]
}

output "fixed" {
  value = [{
    vm   = "vm-app-legacy"
    nics = vsphereipam_vm_nic_fix.legacy.nic
  }]
}

output "subnets" {
  description = "The subnets the quickstart keeps in the IPAM store, both families."
  value = [
    for s in [vsphereipam_ipsubnet.app, vsphereipam_ipsubnet.app6, vsphereipam_ipsubnet.web] : {
      id                  = s.id
      name                = s.name
      cidr                = s.cidr
      range               = "${s.start_ip}-${s.end_ip}"
      additional_wire_ids = s.additional_wire_ids
    }
  ]
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
