#!/usr/bin/env bash
# Installs everything paligemma.cpp needs to build and test on Debian 12, from Debian's
# own packages. Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config \
  libgtest-dev libgmock-dev libbenchmark-dev \
  libsentencepiece-dev \
  nlohmann-json3-dev libcli11-dev \
  libstb-dev libjpeg-dev libpng-dev libwebp-dev libgif-dev libexif-dev \
  libopenblas-dev libzip-dev \
  fonts-dejavu-core >/dev/null
echo "dependencies installed"
