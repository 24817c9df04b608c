#!/bin/sh
# Builds the root filesystems of the stand-in base images from Debian packages.
#
# Nothing can be pulled from a registry on the test machines, so the images the
# project's Dockerfile and compose file name (python:3.11-slim, postgres:16) are
# made here: a debootstrap minbase of bookworm, then the Debian packages that give
# the same commands. The result is one tarball per image, ready for `docker import`.
#
# usage: build-rootfs.sh OUTPUT_DIR [MIRROR]
set -eu

output_dir=$1
mirror=${2:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${output_dir}.work.XXXXXX")

cleanup() {
    for root in "$work"/*/; do
        umount "${root}proc" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "debootstrap bookworm minbase from $mirror"
debootstrap --variant=minbase bookworm "$work/minbase" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
tar -C "$work/minbase" -cf "$work/minbase.tar" .

# Installs Debian packages into a copy of the minbase root, without starting services.
install_into() {
    root=$1
    shift
    mkdir -p "$root"
    tar -C "$root" -xf "$work/minbase.tar"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$root" \
        apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" >/dev/null
    chroot "$root" apt-get clean
    umount "$root/proc"
    rm -rf "$root/var/lib/apt/lists"/* "$root/usr/sbin/policy-rc.d" \
        "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" \
        "$root/usr/share/locale" "$root/var/cache/debconf"/*-old
    : >"$root/etc/resolv.conf"
}

echo "python stand-in"
install_into "$work/python" python3 python3-pip python3-venv ca-certificates
# The official image has no PEP 668 marker and calls its interpreter `python`.
rm -f "$work/python"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$work/python/usr/local/bin/python"
tar -C "$work/python" -cf "$work/python.tar" .

echo "postgres stand-in"
mkdir -p "$work/postgres/etc/postgresql-common"
# The official image makes its cluster at first start, from POSTGRES_* variables.
echo "create_main_cluster = false" >"$work/postgres/etc/postgresql-common/createcluster.conf"
install_into "$work/postgres" postgresql
install -m 755 "$here/postgres-entrypoint.sh" "$work/postgres/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$work/postgres/var/lib/postgresql/data"
ls -d "$work/postgres"/usr/lib/postgresql/*/bin >"$work/postgres-bindir"
tar -C "$work/postgres" -cf "$work/postgres.tar" .

mkdir -p "$output_dir"
mv "$work/python.tar" "$work/postgres.tar" "$output_dir/"
sed "s|^$work/postgres||" "$work/postgres-bindir" >"$output_dir/postgres-bindir"
echo "base images written to $output_dir"
