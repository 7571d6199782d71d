#!/usr/bin/env bash
# `make release`'s last step: the linux_arm64 binary it packaged is an arm64 executable linked at
# a fixed address like the amd64 one (build.rs), and answers --version under Debian's qemu-user
# (scripts/install-tools.sh installs qemu-user and the cross toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/aarch64-unknown-linux-gnu/release/terraform-provider-vsphereipam}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
header=$(readelf -h "$bin")
grep -q 'Machine:.*AArch64' <<<"$header" || { echo "$bin is not an arm64 binary" >&2; exit 1; }
grep -q 'Type:.*EXEC' <<<"$header" || { echo "$bin is linked as a PIE (see build.rs)" >&2; exit 1; }
got=$(env -u TF_PLUGIN_MAGIC_COOKIE qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" --version)
want=$(printf 'terraform-provider-vsphereipam %s\nplugin protocol versions: 6.0' "$version")
if [ "$got" != "$want" ]; then
  printf '%s --version under qemu-aarch64 printed:\n%s\nexpected:\n%s\n' "$bin" "$got" "$want" >&2
  exit 1
fi
echo "check-arm64: $bin answers --version under qemu-aarch64 ($version)"
