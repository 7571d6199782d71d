# UUID (config.uuid) of a running VM whose VMware Tools report no address, with one NIC on pg-app.
variable "legacy_vm_uuid" {
  type = string
}

data "vsphereipam_wire" "app" {
  name = "pg-app"
}

# A dual-stack wire: one IPv4 and one IPv6 subnet on the same port group.
resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.20.0.0/24"
}

resource "vsphereipam_ipsubnet" "app6" {
  name    = "app6"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "2001:db8:0:20::/64"
}

# The VM's first NIC uses 10.20.0.50 and 2001:db8:0:20::50: both are recorded together, so
# neither is handed out again. A NIC with IPv6 only puts its address in ip_address.
resource "vsphereipam_vm_nic_fix" "legacy" {
  vm_id      = var.legacy_vm_uuid
  depends_on = [vsphereipam_ipsubnet.app, vsphereipam_ipsubnet.app6]

  nic {
    ip_address   = "10.20.0.50"
    ipv6_address = "2001:db8:0:20::50"
  }
}

output "legacy_nic" {
  value = vsphereipam_vm_nic_fix.legacy.nic[0]
}
