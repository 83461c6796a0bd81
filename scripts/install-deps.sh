#!/usr/bin/env bash
# Installs the Debian packages needed to build, run, test and benchmark the shop backend.
# Idempotent: does nothing when every package is already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libboost-system-dev libpqxx-dev rapidjson-dev
  libgtest-dev libgmock-dev libsodium-dev libjwt-dev libssl-dev
  libspdlog-dev libfmt-dev libcli11-dev
  postgresql postgresql-contrib
  curl wrk
  # scripts/pg.sh, scripts/run.sh, scripts/test.sh: ACLs so the postgres user can reach a checkout
  # under /root, secrets for .env, a free-port helper, a compiler cache for repeated builds, jq for
  # the curl examples that run.sh prints
  acl openssl python3 ccache jq
  # infra/kafka/kafka.sh runs a real Apache Kafka broker from Maven Central jars (Java, Maven);
  # the C++ code talks to it through librdkafka; kcat reads and writes topics from the shell
  openjdk-17-jre-headless maven librdkafka-dev kcat
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
