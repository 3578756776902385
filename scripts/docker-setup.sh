#!/usr/bin/env bash
# Make the docker evaluation sandbox usable on this machine, offline.
#
#  1. install docker.io + debootstrap (+ bubblewrap) with apt if missing;
#  2. start dockerd in the background if no engine answers, wait for `docker info`;
#  3. build the base image (debootstrap minbase + python3, `docker import`) if absent.
#
# Docker Hub is not reachable here, so the image is built from the Debian mirror apt
# already uses; nothing is ever pulled.  Idempotent: a second run only checks.
# Exits non-zero if docker cannot be made to work.
set -euo pipefail

IMAGE="${L402TUI_EVALUATION__DOCKER_IMAGE:-l402tui-base:bookworm}"
LOG="${DOCKERD_LOG:-/var/log/l402tui-dockerd.log}"
say() { echo "docker-setup: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  say "no docker engine answers; starting dockerd (log: $LOG)"
  # setsid + nohup: the engine must outlive this script and the CI step that ran it.
  $SUDO setsid nohup dockerd >"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! docker info >/dev/null 2>&1; then
    say "dockerd did not come up within 30 s; last lines of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
fi
say "engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "image $IMAGE present"
  exit 0
fi

# The same mirror apt uses (deb822 or one-line sources), so this works wherever apt does.
MIRROR=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

ROOTFS=$(mktemp -d /var/tmp/l402tui-rootfs.XXXXXX)
trap '$SUDO rm -rf "$ROOTFS"' EXIT
say "building $IMAGE: debootstrap minbase + python3 from $MIRROR (about a minute)"
# python3 (not python3-minimal): bounties need json, asyncio, sqlite3 from the full stdlib;
# python3-numpy because numpy bounties (sample_bounties/charlm) are common and pip cannot run offline.
if ! $SUDO debootstrap --variant=minbase --include=python3,python3-numpy bookworm "$ROOTFS" "$MIRROR" >/tmp/l402tui-debootstrap.log 2>&1; then
  say "debootstrap failed; last lines of /tmp/l402tui-debootstrap.log:"
  tail -n 20 /tmp/l402tui-debootstrap.log >&2
  exit 1
fi
$SUDO rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
# pipefail (set above) matters here: a failing tar would otherwise import a 0-byte image.
$SUDO tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
docker run --rm --network none --pull never "$IMAGE" python3 -c "import json, asyncio, sqlite3, numpy" \
  || { say "image $IMAGE was built but cannot run python3"; exit 1; }
say "image $IMAGE built"
