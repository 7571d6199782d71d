# The addresses of the subnet of the vsphereipam_ipsubnet example that VMware Tools report
# (no resource holds them), by VM name.
data "vsphereipam_ip_addresses" "db_observed" {
  subnet_id  = data.vsphereipam_ipsubnet.db.id
  owner_kind = "observed"
}

output "db_observed" {
  value = { for a in data.vsphereipam_ip_addresses.db_observed.addresses : a.ip_address => a.vm_name }
}
