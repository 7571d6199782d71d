# A VM is imported by its UUID. The import (also an `import` block inside `terraform plan`)
# only reads: it finds the addresses VMware Tools report on its NICs, NICs in device order,
# and checks that each can be the VM's own. Inputs vCenter does not keep (template, folder,
# datastore, hostname, the guest IP wait, the linux and windows blocks) are not imported: the
# first apply records them in the state, and the addresses in the IPAM store, without
# changing the VM.
terraform import vsphereipam_vm.db 4213c1d0-5b7e-4a8f-9e21-0d6f3b2a7c55
