#!/usr/bin/env bash
# make demo: start the simulator with the demo inventory, install the provider from a
# filesystem mirror, apply examples/quickstart with Terraform 1.15 and the embedded store, and
# print what the provider found.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$repo/.sim/demo
rm -rf "$work" && mkdir -p "$work"

.sim/vcsim -scenario demo -info "$work/sim.json" >"$work/sim.log" 2>&1 &
sim_pid=$!
trap 'kill $sim_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  [ -s "$work/sim.json" ] && break
  kill -0 $sim_pid 2>/dev/null || { cat "$work/sim.log"; exit 1; }
  sleep 0.5
done
[ -s "$work/sim.json" ] || { echo "simulator did not start"; cat "$work/sim.log"; exit 1; }

info() { python3 -c "import json,sys; print(json.load(open('$work/sim.json'))['$1'])"; }
export VSPHERE_SERVER=$(info host) VSPHERE_USER=$(info user) VSPHERE_PASSWORD=$(info password)
export VSPHERE_ALLOW_UNVERIFIED_SSL=true
export TF_VAR_legacy_vm_uuid=$(python3 -c "import json; print(next(v['uuid'] for v in json.load(open('$work/sim.json'))['manifest']['vms'] if v['name'] == 'vm-app-legacy'))")
export VSPHEREIPAM_STORE="sqlite://$work/ipam.db"
export TF_CLI_CONFIG_FILE=$work/terraformrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# Installed as on an air-gapped site: the debug build packaged as `make release` packages it,
# in a filesystem mirror, and nothing else.
case $(uname -m) in
  x86_64) platform=linux_amd64 ;;
  aarch64) platform=linux_arm64 ;;
  *) echo "demo: no Terraform platform name for $(uname -m)"; exit 1 ;;
esac
target/debug/vsphereipam-dist "$work/dist" "$platform=target/debug/terraform-provider-vsphereipam" >/dev/null
cat >"$TF_CLI_CONFIG_FILE" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$work/dist/mirror"
    include = ["registry.terraform.io/vsphereipam/vsphereipam"]
  }
}
RC

cp -r examples/quickstart "$work/quickstart"
cd "$work/quickstart"
tf=$repo/.tools/bin/terraform-1.15
echo "== simulator at $VSPHERE_SERVER (demo inventory)"
"$tf" init -input=false -no-color >/dev/null
"$tf" apply -auto-approve -input=false -no-color >"$work/apply.log" || { cat "$work/apply.log"; exit 1; }
grep -E "^Apply complete|: Creation complete" "$work/apply.log" || true
"$tf" output -json | python3 "$repo/scripts/demo_report.py"
