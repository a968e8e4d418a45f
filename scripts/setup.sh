#!/usr/bin/env bash
# Installs what Cruncher's build, demo and tests need on Debian 12, idempotently:
# a second run only checks. Run as root (or with sudo available).
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libsqlite3-dev sqlite3 nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libssl-dev libcurl4-openssl-dev libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-tidy ccache
  iputils-ping iproute2 procps curl openssl
  python3 python3-pip python3-venv
)
PY_PACKAGES=(pytest boto3 botocore awscli "moto[server]")

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present"
fi

# Python tools: the AWS CLI, boto3 and moto are the outside clients and the SQS
# emulator of the tests. Use the python3 on PATH (a pyenv one if present).
py_missing=()
python3 -c "import pytest" 2>/dev/null || py_missing+=(pytest)
python3 -c "import boto3, botocore" 2>/dev/null || py_missing+=(boto3 botocore)
python3 -c "import moto.server" 2>/dev/null || py_missing+=("moto[server]")
command -v aws >/dev/null || py_missing+=(awscli)
command -v moto_server >/dev/null || py_missing+=("moto[server]")
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "setup: installing Python packages: ${py_missing[*]}"
  pip_flags=()
  # Debian's own python3 refuses system-wide pip installs without this flag.
  python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages &&
    [ -z "${VIRTUAL_ENV:-}" ] && [ ! -d "${PYENV_ROOT:-$HOME/.pyenv}" ] &&
    pip_flags+=(--break-system-packages)
  python3 -m pip install -q "${pip_flags[@]}" "${PY_PACKAGES[@]}"
  hash -r
else
  echo "setup: Python packages present"
fi

# The test cluster (and the kubectl the tests use) is built with Go >= 1.24
# (the machine image ships 1.26).
if ! command -v go >/dev/null; then
  echo "setup: Go is not installed; the Kubernetes test cluster needs Go >= 1.24." >&2
  echo "setup: Debian 12's golang-go is too old; install Go from the machine image." >&2
  exit 1
fi
echo "setup: done"
