data "vsphereipam_wire" "app" {
  name = "pg-app"
}

resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.20.0.0/24"
  gateway = "10.20.0.1"
}

# The next free address of the subnet, for a load balancer in front of the app VMs.
resource "vsphereipam_ip_address" "vip" {
  subnet_id   = vsphereipam_ipsubnet.app.id
  description = "app load balancer VIP"
}

# A fixed address, taken only if it is free.
resource "vsphereipam_ip_address" "dns" {
  subnet_id   = vsphereipam_ipsubnet.app.id
  ip_address  = "10.20.0.53"
  description = "resolver"
}

output "vip" {
  value = vsphereipam_ip_address.vip.ip_address
}
