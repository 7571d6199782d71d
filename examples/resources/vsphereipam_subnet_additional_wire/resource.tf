data "vsphereipam_wire" "app" {
  name = "pg-app"
}

data "vsphereipam_wire" "legacy" {
  name = "pg-std-web"
}

resource "vsphereipam_ipsubnet" "app" {
  name    = "app"
  wire_id = data.vsphereipam_wire.app.id
  cidr    = "10.21.0.0/24"
}

# VMs on pg-std-web may take addresses from the app subnet too.
resource "vsphereipam_subnet_additional_wire" "legacy" {
  subnet_id = vsphereipam_ipsubnet.app.id
  wire_id   = data.vsphereipam_wire.legacy.id
}
