#!/usr/bin/env bash
# The base image that the container tests build the Dockerfile on (its BASE_IMAGE), made
# on this machine without a container registry: Debian bookworm with Debian's python3
# (3.11), bootstrapped from a Debian mirror and imported into podman as
# localhost/python:3.11-slim-local, a stand-in for Docker Hub's python:3.11-slim. It also
# installs podman and, on a machine without a podman configuration, writes one that works
# without systemd and within a sandbox's limits. .ci/setup-machine runs it (as root).
#
#   bash .ci/make-base-image.sh
#
# Idempotent: an image built from the same recipe (this file) and the same extra CA
# certificates is kept (a few seconds); otherwise it is built again (about a minute).
#
# Environment:
#   CORS_PROXY_TEST_BASE_IMAGE  the image the container tests build on (default
#       localhost/python:3.11-slim-local). Any other name (python:3.11-slim where Docker
#       Hub answers, or an image on your registry mirror) is pulled instead of built.
#   DEBIAN_MIRROR  where to bootstrap from (default: this machine's apt source for
#       Debian, else http://deb.debian.org/debian)
#   REBUILD=1      build even when an up-to-date image exists
set -euo pipefail

LOCAL_IMAGE=localhost/python:3.11-slim-local
IMAGE=${CORS_PROXY_TEST_BASE_IMAGE:-$LOCAL_IMAGE}
SUITE=bookworm            # Debian 12: python3 is 3.11, as in python:3.11-slim
CONF=/etc/containers/containers.conf
MARK="# cors-proxy .ci/make-base-image.sh"
EXTRA_CAS=/usr/local/share/ca-certificates

started=$SECONDS
say() { printf '[make-base-image %3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf 'make-base-image: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages, bootstraps Debian in a chroot and \
imports into root's podman); or set CORS_PROXY_TEST_BASE_IMAGE to an image you can pull"

# -- 1. podman and the tools to make the image --------------------------------------------
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

# -- 2. podman's configuration -------------------------------------------------------------
# Only where there is none, or where it is the one this script wrote: a machine whose podman
# is set up already keeps its settings. These work without systemd (cgroupfs, events to a
# file) and with runc (crun 1.8 rejects a hybrid cgroup v1/v2 host). Podman's default
# per-container limits are above the hard limits of a sandbox, and root without
# CAP_SYS_RESOURCE cannot raise its own: ask for no more than this shell may have.
hard() {  # a hard limit as a number ("unlimited" -> $2)
  local v; v=$(ulimit "-H$1"); [ "$v" = unlimited ] && v=$2; echo "$v"
}
if [ ! -e "$CONF" ] || grep -qF "$MARK" "$CONF"; then
  nofile=$(hard n 1048576)
  nproc=$(hard u 4194304)
  pid_max=$(cat /proc/sys/kernel/pid_max)
  [ "$nproc" -gt "$pid_max" ] && nproc=$pid_max  # podman caps its own at pid_max
  mkdir -p "$(dirname "$CONF")"
  cat >"$CONF.new" <<EOF
$MARK: podman settings for a machine without
# systemd (a container, a CI sandbox). Delete this file to use podman's defaults.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  mv "$CONF.new" "$CONF"
  say "podman settings in $CONF"
else
  say "$CONF is not ours; keeping it"
fi

# -- 3. an image from a registry: pull it, build nothing -----------------------------------
if [ "$IMAGE" != "$LOCAL_IMAGE" ]; then
  podman image exists "$IMAGE" || podman pull "$IMAGE"
  say "base image $IMAGE (pulled; nothing built)"
  exit 0
fi

# -- 4. up to date? ------------------------------------------------------------------------
# The fingerprint covers this recipe and the machine's extra CA certificates (a TLS-
# intercepting proxy's CA must be inside, or pip cannot reach PyPI in a build).
fingerprint=$( { cat "${BASH_SOURCE[0]}"; cat "$EXTRA_CAS"/*.crt 2>/dev/null || true; } | sha256sum | cut -c1-16)
label=org.cors-proxy.base-image.fingerprint
if [ "${REBUILD:-0}" != 1 ] && podman image exists "$IMAGE"; then
  have=$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$IMAGE" || true)
  if [ "$have" = "$fingerprint" ]; then
    say "$IMAGE is up to date ($fingerprint)"
    exit 0
  fi
  say "$IMAGE is from another recipe or CA set ('$have'); building it again"
fi

# -- 5. Debian bookworm with python3 -------------------------------------------------------
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The host's own Debian source (the one apt already reaches), not its security archive.
  mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' \
    | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian/?$' | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/cors-proxy-base.XXXXXX)
root=$work/rootfs
cleanup() {
  # debootstrap mounts /proc and /sys inside while it works: never delete through a mount.
  for m in $(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

say "debootstrap $SUITE from $mirror (about a minute)"
if ! debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 25 "$work/debootstrap.log" >&2
  die "debootstrap failed (set DEBIAN_MIRROR to a Debian mirror this machine reaches)"
fi

# What makes it behave like python:3.11-slim for a Dockerfile: `python` and `pip` on PATH,
# `pip install` into the system allowed, the machine's extra CAs trusted.
if compgen -G "$EXTRA_CAS/*.crt" >/dev/null; then
  cp "$EXTRA_CAS"/*.crt "$root/usr/local/share/ca-certificates/"
fi
chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the new root"
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE" \
  >"$root/etc/apt/sources.list"
# Caches, package lists, documentation and bytecode: not needed to run anything.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/tmp/* "$root"/root/.cache
find "$root/usr" -name __pycache__ -type d -prune -exec rm -rf {} +
py_version=$(chroot "$root" python3 -c 'import platform; print(platform.python_version())')
say "root file system ready: $(du -sh --one-file-system "$root" | cut -f1), Python $py_version"

# -- 6. into podman -------------------------------------------------------------------------
tar --numeric-owner --one-file-system -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PYTHON_VERSION=$py_version" \
  --change "LABEL $label=$fingerprint" \
  --change "LABEL org.cors-proxy.base-image.source=debootstrap-$SUITE-minbase" \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
say "imported as $IMAGE"

# -- 7. does it run? ------------------------------------------------------------------------
podman run --rm "$IMAGE" python -c \
  'import ssl, sys, venv; ssl.create_default_context(); print("python", sys.version.split()[0])'
podman run --rm "$IMAGE" pip --version
say "done: the container tests build on $IMAGE (python -m pytest -m container)"
