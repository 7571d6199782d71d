# VMs of DC0 named vm-app-... whose Tools-reported addresses sit in a subnet of the store without a
# record. `terraform query -generate-config-out=onboard.tf` writes the import blocks and
# resources that record them; `terraform apply` then imports and records.
list "vsphereipam_vm_nic_fix" "unrecorded" {
  provider = vsphereipam
  config {
    datacenter = "DC0"
    name_regex = "^vm-app-"
    # subnet_id = vsphereipam_ipsubnet.app.id's value, to onboard one subnet at a time
  }
}
