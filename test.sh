#!/usr/bin/env bash
# Installs what the tests need, then runs every test: lints, unit and integration tests.
# Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"
# Each phase's time goes to the log, so a slow CI run says where its time went.
phase() { echo "test.sh: ${SECONDS}s: $*" >&2; }
# No machine this runs on is an EC2 instance: the AWS SDK, CLI and boto3 in the tests must not
# wait on a metadata service that may never answer where its address is dropped, not refused.
export AWS_EC2_METADATA_DISABLED=true

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v flock >/dev/null || need_apt+=(util-linux)
# The built-in algorithm's FROM-scratch image carries a stripped binary.
command -v strip >/dev/null || need_apt+=(binutils)
# The dashboard tests drive Debian's headless Chromium through its chromedriver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# The store and multi-server tests start their own Postgres servers (Debian's) on loopback.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need_apt+=(postgresql)
command -v openssl >/dev/null || need_apt+=(openssl)
# The ECR test's registry takes a login, as ECR's does, from an htpasswd file.
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
# The process runtime brings up each model server's loopback with iproute2's `ip`; the tests look
# inside a server's network namespace with util-linux's nsenter.
command -v ip >/dev/null || need_apt+=(iproute2)
command -v nsenter >/dev/null || need_apt+=(util-linux)
# The workshop's container files run without Docker too: this machine is their image (nginx here,
# gunicorn and Flask from PyPI below).
command -v nginx >/dev/null || need_apt+=(nginx-light)
if ((${#need_apt[@]})); then
  # Installed, not started: the tests start what they need themselves.
  policy=/usr/sbin/policy-rc.d
  [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && trap 'rm -f "$policy"' EXIT; }
  apt-get update -q && apt-get install -y -q "${need_apt[@]}"
fi
# The process-runtime examples are Python + scikit-learn (the workshop's container serves through
# gunicorn and Flask); the drift test checks PSI against numpy and pandas.
if ! python3 -c 'import sklearn, pandas, flask' 2>/dev/null || ! command -v gunicorn >/dev/null; then
  python3 -m pip install --quiet scikit-learn pandas flask gunicorn
fi
# The S3 tests run against moto's server on loopback, and use the AWS CLI as a user would.
if ! python3 -c 'import moto.server, flask' 2>/dev/null || ! command -v moto_server >/dev/null || ! command -v aws >/dev/null; then
  python3 -m pip install --quiet 'moto[server]' awscli
fi
# The API test fuzzes the OpenAPI document with schemathesis, kept in its own virtualenv.
venv="$HOME/.cache/sagebrush-test/venv"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$venv" || { apt-get update -q && apt-get install -y -q python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet schemathesis
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

phase "packages in place"
# The container tests need the Docker Engine (they fail without it) and an offline-built base image.
docker version --format 'Docker Engine {{.Server.Version}}' || { echo "test.sh: the Docker Engine is not running" >&2; exit 1; }
examples/scikit-byo/base/offline-base.sh
phase "base image in place"

cargo fmt --all --check
# Clippy lints our crates while they are built for the tests (clippy-driver is rustc with clippy's
# lints, as `cargo clippy` runs it), instead of in a check build of its own: every dependency, the
# AWS SDK clients the longest, is compiled once. `-D warnings` fails the build on any warning of
# ours, rustc's or clippy's; cargo caps the dependencies' lints as always.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
[[ -n $RUSTC_WORKSPACE_WRAPPER ]] || { echo "test.sh: no clippy-driver; rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER RUSTFLAGS="-D warnings"
# (The examples are not built here: building them apart resolves the SDK's features without the
# tests' dev-dependencies and compiles it twice. `cargo clippy --all-targets` covers them.)
# The `aws` build, a superset of the everyday one. Release, so the tree benchmarks' code paths and
# the serving hot path are tested as shipped.
cargo nextest run --workspace --release --locked --no-fail-fast --features sagebrush/aws
phase "tests passed"
bash tests/python-algorithm-check.sh
phase "done"
