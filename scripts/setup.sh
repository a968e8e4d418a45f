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
# emulator of the tests, pinned in tests/requirements.txt. Use the python3 on
# PATH (a pyenv one if present).
requirements="$(cd "$(dirname "$0")/.." && pwd)/tests/requirements.txt"
py_differs="$(python3 - "$requirements" <<'PY'
import re, sys
from importlib import metadata
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = re.match(r"([A-Za-z0-9_.-]+)(?:\[.*\])?==(.+)", line).groups()
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if have != want:
        print(f"{name} {have or 'missing'} (want {want})")
PY
)"
if [ -n "$py_differs" ] || ! command -v aws >/dev/null || ! command -v moto_server >/dev/null; then
  echo "setup: installing Python packages: ${py_differs//$'\n'/, }"
  pip_flags=()
  # Debian's own python3 refuses system-wide pip installs without this flag.
  python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages &&
    [ -z "${VIRTUAL_ENV:-}" ] && [ ! -d "${PYENV_ROOT:-$HOME/.pyenv}" ] &&
    pip_flags+=(--break-system-packages)
  python3 -m pip install -q "${pip_flags[@]}" -r "$requirements"
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
