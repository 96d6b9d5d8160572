#!/usr/bin/env bash
# podman for the image tests and the container runner (see images/README.md):
#   - apt-get install podman runc debootstrap (about 45 s, once);
#   - containers.conf and storage.conf that work on this kind of machine (the
#     default crun fails on setrlimit and hybrid cgroups; overlay is not
#     available): runtime runc, no default ulimits, vfs storage;
#   - the local Debian base image localhost/itemq-debian-base:bookworm, made
#     once by hack/debian-base.sh (debootstrap, about 3 min cold) and kept in
#     podman's storage and as a tarball under ~/.cache/itemq.
# Idempotent: a second run changes nothing. Prints ITEMQ_PODMAN (and
# CONTAINERS_CONF / CONTAINERS_STORAGE_CONF when the system-wide files could
# not be used).
source "$(dirname "$0")/../lib.sh"
hack=$(cd "$(dirname "$0")/.." && pwd)

apt_install podman runc conmon containernetworking-plugins catatonit debootstrap iptables

conf_dir="$ITEMQ_CACHE/podman"
mkdir -p "$conf_dir"
marker="# written by itemq hack/deps/60-podman.sh"
cat >"$conf_dir/containers.conf.new" <<EOF
$marker
[containers]
# The default ulimits cannot be set inside this machine's sandbox.
default_ulimits = []
[engine]
# crun fails here (setrlimit, hybrid cgroups); runc works.
runtime = "runc"
EOF
cat >"$conf_dir/storage.conf.new" <<EOF
$marker
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
mv "$conf_dir/containers.conf.new" "$conf_dir/containers.conf"
mv "$conf_dir/storage.conf.new" "$conf_dir/storage.conf"

# install_conf NAME: put our file at /etc/containers/NAME unless someone else's
# file is there (then podman is pointed at ours through the environment).
use_env=false
install_conf() {
  local name=$1 dst=/etc/containers/$1
  if [ -e "$dst" ] && ! grep -qF "$marker" "$dst"; then
    log "$dst exists and is not ours: using CONTAINERS_* variables instead"
    use_env=true
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    use_env=true
    return
  fi
  mkdir -p /etc/containers
  cmp -s "$conf_dir/$name" "$dst" || cp "$conf_dir/$name" "$dst"
}
install_conf containers.conf
install_conf storage.conf
if $use_env; then
  export CONTAINERS_CONF="$conf_dir/containers.conf" CONTAINERS_STORAGE_CONF="$conf_dir/storage.conf"
fi

podman=$(command -v podman)
if ! "$podman" info --format '{{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}}' >"$conf_dir/info.txt" 2>&1; then
  log "podman info failed:"; cat "$conf_dir/info.txt" >&2; exit 1
fi
read -r driver runtime <"$conf_dir/info.txt"
if [ "$driver" != vfs ] || [ "$runtime" != runc ]; then
  log "podman uses storage driver $driver and runtime $runtime; want vfs and runc"; exit 1
fi

# The local Debian base (for the thumbnail image and users' script images).
with_lock debian-base bash "$hack/debian-base.sh" >&2

echo "ITEMQ_PODMAN=$podman"
if $use_env; then
  echo "CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
fi
