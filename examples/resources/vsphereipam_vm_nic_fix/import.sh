# The addresses recorded for a VM are imported by the VM's UUID.
terraform import vsphereipam_vm_nic_fix.legacy 4213a6f2-0c4e-5b1d-8f3a-6c2d9e0b7a41
