# A distributed port group; "switch" tells apart port groups of the same name.
data "vsphereipam_wire" "app" {
  name       = "pg-app"
  datacenter = "DC0"
  switch     = "DSwitch0"
}

# A standard port group, looked up by name only.
data "vsphereipam_wire" "web" {
  name = "pg-std-web"
}

output "app_wire" {
  value = {
    id       = data.vsphereipam_wire.app.id
    vlan_id  = data.vsphereipam_wire.app.vlan_id
    host_ids = data.vsphereipam_wire.app.host_ids
    vm_ips   = data.vsphereipam_wire.app.vm_ips
  }
}

output "web_vmkernel_ips" {
  value = data.vsphereipam_wire.web.vmkernel_ips
}
