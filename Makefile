# The two commands the README opens with: `make demo` and `make check` (what CI runs, .ci/run).
CARGO ?= cargo

.PHONY: demo check test tools build release docs lint bench

demo: tools
	$(CARGO) build --workspace --quiet
	scripts/demo.sh

# Lint first (it fails in a minute or two, the tests take many), then every test. Lint needs the
# tools too: build.rs runs protoc.
check: tools
	$(MAKE) lint
	$(MAKE) test

# The tests start throwaway PostgreSQL clusters (scripts/postgres.sh); they are stopped after.
test: tools
	status=0; $(CARGO) test --workspace --no-fail-fast || status=$$?; \
	scripts/postgres.sh stop; VSPHEREIPAM_TEST_PG_PORT=55433 scripts/postgres.sh stop; \
	VSPHEREIPAM_TEST_PG_PORT=55434 scripts/postgres.sh stop; \
	exit $$status

# Debian packages, both Terraform versions, the simulator (idempotent).
tools:
	scripts/install-tools.sh

build:
	$(CARGO) build --release

# The provider for linux_amd64 and linux_arm64 (cross-linked by Debian's gcc-aarch64-linux-gnu,
# .cargo/config.toml), packaged under dist/ as a registry and Terraform's mirrors serve it:
# zips, SHA256SUMS, manifest, and dist/mirror/ (a filesystem mirror, or a network mirror when
# served over HTTPS). With VSPHEREIPAM_GPG_KEY (a gpg key; GNUPGHOME for another keyring) it
# also signs the SHA256SUMS and writes dist/registry/, a provider registry as static files.
# See crates/dist. Last, the arm64 binary answers --version under qemu-user
# (scripts/check-arm64.sh; not in `make test`: it would cross-build the whole provider there).
ARM64 := aarch64-unknown-linux-gnu
release: tools
	$(CARGO) build --release --locked --bin terraform-provider-vsphereipam
	$(CARGO) build --release --locked --target $(ARM64) --bin terraform-provider-vsphereipam
	rm -rf dist
	$(CARGO) run --release --locked --quiet -p vsphereipam-dist -- dist \
	  linux_amd64=target/release/terraform-provider-vsphereipam \
	  linux_arm64=target/$(ARM64)/release/terraform-provider-vsphereipam
	scripts/check-arm64.sh target/$(ARM64)/release/terraform-provider-vsphereipam

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

# Regenerates docs/ from the schema descriptions and examples/.
docs:
	UPDATE_DOCS=1 $(CARGO) test --test docs

# One `name value unit` line per figure: allocation cost and rates (benches/alloc.rs), handshake,
# inventory of 10,000 VMs and plan overhead (benches/provider.rs).
bench: tools
	$(CARGO) bench --bench alloc --bench provider 2>&1 | grep -E '^[a-z0-9_]+ [0-9.]+ '
