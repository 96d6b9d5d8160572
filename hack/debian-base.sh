#!/usr/bin/env bash
# Makes the local Debian base image, localhost/itemq-debian-base:bookworm, from
# Debian packages, for machines that cannot pull debian:bookworm-slim (see
# images/README.md). Once: the root filesystem is made by
#   debootstrap --variant=minbase bookworm <dir> <the host's Debian mirror>
# then trimmed (docs, man pages, locales, apt lists) as debian:bookworm-slim
# is, packed into ~/.cache/itemq/debian-base-<version>/rootfs.tar, and
# imported with `podman import`. A later run re-imports the tarball if the
# image is gone, and does nothing when both are there.
#
# The rootfs keeps the build host's apt sources (and its Acquire::Check-Valid-Until
# setting, needed for a snapshot mirror), so `apt-get install` in a
# Dockerfile FROM it installs from the same mirror the host uses.
source "$(dirname "$0")/lib.sh"

BASE_VERSION=bookworm-1 # bump to rebuild the base
IMAGE=${ITEMQ_DEBIAN_BASE:-localhost/itemq-debian-base:bookworm}
ENGINE=${ENGINE:-podman}
dir="$ITEMQ_CACHE/debian-base-$BASE_VERSION"
tar="$dir/rootfs.tar"

mirror() {
  # The host's Debian mirror: the first URI of a deb822 source, or of a one-line one.
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
  [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1)
  echo "${m:-http://deb.debian.org/debian}"
}

if [ ! -s "$tar" ]; then
  apt_install debootstrap
  m=$(mirror)
  log "debootstrap --variant=minbase bookworm from $m (a few minutes, once)"
  mkdir -p "$ITEMQ_CACHE"
  tmp=$(mktemp -d "$ITEMQ_CACHE/.debian-base.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  root="$tmp/rootfs"
  debootstrap --variant=minbase bookworm "$root" "$m" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2; exit 1
  }
  # apt sources: the host's (deb822 or one-line), else the mirror debootstrap used.
  rm -f "$root/etc/apt/sources.list"
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    for f in /etc/apt/sources.list.d/*.sources; do
      grep -q 'debian' "$f" && cp "$f" "$root/etc/apt/sources.list.d/"
    done
  else
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$m" "$m" >"$root/etc/apt/sources.list"
  fi
  if grep -rqs 'Check-Valid-Until' /etc/apt/apt.conf.d/; then
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' >"$root/etc/apt/apt.conf.d/99itemq-mirror"
  fi
  # As debian:bookworm-slim: no docs, man pages or locales from later installs either.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-minimal" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/99itemq-no-recommends"
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/locale/"* \
    "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb \
    "$root/var/log/"*.log "$root/tmp/"* "$root/dev/"*
  : >"$root/etc/machine-id"
  tar --numeric-owner -C "$root" -cf "$tmp/rootfs.tar" .
  rm -rf "$dir" && mkdir -p "$dir"
  mv "$tmp/rootfs.tar" "$tar"
  cp "$tmp/debootstrap.log" "$dir/"
fi

if ! "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$ENGINE import $tar $IMAGE"
  "$ENGINE" import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tar" "$IMAGE" >/dev/null
fi
echo "$IMAGE"
