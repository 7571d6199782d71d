# UUID (config.uuid) of a running VM whose VMware Tools report no address, with one NIC on pg-app.
variable "legacy_vm_uuid" {
  type = string
}

data "vsphereipam_wire" "app" {
  name = "pg-app"
}

resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.20.0.0/24"
}

# The VM's first NIC uses 10.20.0.50: recorded, so it is never handed out again.
resource "vsphereipam_vm_nic_fix" "legacy" {
  vm_id      = var.legacy_vm_uuid
  depends_on = [vsphereipam_ipsubnet.app]

  nic {
    ip_address = "10.20.0.50"
  }
}

output "legacy_nic" {
  value = vsphereipam_vm_nic_fix.legacy.nic[0]
}
