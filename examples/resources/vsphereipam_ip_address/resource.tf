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

# The wire is dual stack: an IPv6 subnet beside the IPv4 one, and an IPv6 address from it.
resource "vsphereipam_ipsubnet" "app6" {
  name    = "app6"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "2001:db8:0:20::/64"
  gateway = "2001:db8:0:20::1"
}

resource "vsphereipam_ip_address" "vip6" {
  subnet_id   = vsphereipam_ipsubnet.app6.id
  description = "app load balancer VIP (IPv6)"
}

output "vip" {
  value = vsphereipam_ip_address.vip.ip_address
}

output "vip6" {
  value = vsphereipam_ip_address.vip6.ip_address
}
