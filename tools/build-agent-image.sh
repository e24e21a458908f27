#!/bin/bash
# Build the agent container image (container/Containerfile): ironic-python-
# agent with this package's [agent] extra, pinned by upper-constraints.txt.
#
# Usage (as root): tools/build-agent-image.sh [--base debian|centos-stream|ubi]
#                      [--base-image IMAGE] [--mirror URL] [--rebuild]
#
#   --base debian         (default) a Debian bookworm minbase made here with
#                         mmdebstrap and imported into podman: no registry
#   --base centos-stream  FROM quay.io/centos/centos:stream9
#   --base ubi            FROM registry.access.redhat.com/ubi9/ubi
#   --base-image IMAGE    another image of the chosen family to start FROM
#   --mirror URL          Debian mirror for mmdebstrap
#                         (default: $DEBIAN_MIRROR or deb.debian.org)
#   --rebuild             build again even if the cache has this key
#
# The result is cached by a hash of its inputs (the Containerfile and
# container/, the constraints, the package sources, the base, this script
# and tools/containers.conf) under /var/cache/ironic-coreos/agent-image/KEY/
# (IRONIC_COREOS_CACHE_DIR overrides /var/cache/ironic-coreos). It is left
# in podman's storage as localhost/ironic-coreos-agent:KEY and written as an
# OCI archive to .../KEY/agent.oci.tar (for `skopeo copy oci-archive:...
# docker://REGISTRY/...`). The last line on standard output is that path;
# progress goes to standard error. Installs nothing: tools/install-deps.sh
# does.

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=localhost/ironic-coreos-agent
BASE=debian
BASE_IMAGE=
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
REBUILD=0
PBR_VERSION=${PBR_VERSION:-0.1.0}

log() {
    echo "build-agent-image: $*" >&2
}

die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '5,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --base) BASE=${2:?--base needs a value}; shift 2 ;;
        --base=*) BASE=${1#*=}; shift ;;
        --base-image) BASE_IMAGE=${2:?--base-image needs a value}; shift 2 ;;
        --base-image=*) BASE_IMAGE=${1#*=}; shift ;;
        --mirror) MIRROR=${2:?--mirror needs a value}; shift 2 ;;
        --mirror=*) MIRROR=${1#*=}; shift ;;
        --rebuild) REBUILD=1; shift ;;
        -h|--help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done

case $BASE in
    debian) ;;
    centos-stream) BASE_IMAGE=${BASE_IMAGE:-quay.io/centos/centos:stream9} ;;
    ubi) BASE_IMAGE=${BASE_IMAGE:-registry.access.redhat.com/ubi9/ubi} ;;
    *) die "--base $BASE is not one of debian, centos-stream, ubi" ;;
esac

[[ $(id -u) -eq 0 ]] || die "run as root (podman storage, mmdebstrap)"
for tool in podman sha256sum flock; do
    command -v "$tool" >/dev/null || die "$tool is missing: run tools/install-deps.sh"
done
if [[ $BASE == debian && -z $BASE_IMAGE ]]; then
    command -v mmdebstrap >/dev/null \
        || die "mmdebstrap is missing: run tools/install-deps.sh"
fi

export CONTAINERS_CONF=${CONTAINERS_CONF:-$TOP_DIR/tools/containers.conf}
CACHE_ROOT=${IRONIC_COREOS_CACHE_DIR:-/var/cache/ironic-coreos}/agent-image
mkdir -p "$CACHE_ROOT"

# Files of the build context: what the image is made of.
context_files() {
    printf '%s\n' setup.cfg setup.py pyproject.toml requirements.txt \
        README.rst upper-constraints.txt
    find container ironic_coreos \
        \( -path ironic_coreos/tests -o -name __pycache__ \) -prune \
        -o -type f ! -name '*.pyc' -print | LC_ALL=C sort
}

# A hash of the files named on standard input (paths and contents), read
# in directory $1.
hash_files() {
    (cd "$1" && while read -r f; do
        printf '%s\0' "$f"
        sha256sum < "$f"
    done) | sha256sum | cut -c1-16
}

DEBIAN_DEB_CACHE=$CACHE_ROOT/debs

# The Debian base: two rootfs archives made by one mmdebstrap run, imported
# into podman: "build" (run-time packages and python3-venv) and "base" (the
# same with python3-venv, apt and perl purged and the root slimmed).
debian_base() {
    local key dir
    # The base changes with the suite, the mirror, the package list,
    # image-setup and the mmdebstrap command (between the MMDEBSTRAP marks).
    key=$({
        printf '%s\n' "$SUITE" "$MIRROR"
        cat "$CONTEXT/container/debian-packages" \
            "$CONTEXT/container/image-setup"
        sed -n '/MMDEBSTRAP-BEGIN/,/MMDEBSTRAP-END/p' "${BASH_SOURCE[0]}"
    } | sha256sum | cut -c1-16)
    dir=$CACHE_ROOT/debian-base-$key
    DEBIAN_BUILD_TAG=localhost/ironic-coreos-agent-build:$key
    DEBIAN_BASE_TAG=localhost/ironic-coreos-agent-base:$key
    mkdir -p "$dir"
    exec 8>"$dir/.lock"
    flock 8
    if [[ ! -f $dir/base.tar || ! -f $dir/build.tar ]]; then
        local packages work start
        packages=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' \
            "$CONTEXT/container/debian-packages" | tr -s ' \n' ',,')
        packages=${packages%,}
        work=$(mktemp -d "$CACHE_ROOT/.debian-base.XXXXXX")
        # Removed on exit unless the base is made (see the trap below).
        BASE_WORK=$work
        mkdir -p "$DEBIAN_DEB_CACHE"
        start=$SECONDS
        log "making the Debian $SUITE base with mmdebstrap (from $MIRROR)"
        # NOTE: dpkg path filters keep docs, man pages and locales out of
        # both archives; image-setup slim-root removes the rest. tar's exit
        # status 1 (a file changed while read: the chroot's /sys mount
        # point changes with the host's network devices) is not an error.
        # MMDEBSTRAP-BEGIN
        mmdebstrap --variant=minbase --mode=root --format=tar \
            --aptopt='APT::Install-Recommends "false"' \
            --aptopt='APT::Install-Suggests "false"' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/lintian/*' \
            --include="$packages,python3-venv" \
            --skip=essential/unlink \
            --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
            --setup-hook="sync-in $DEBIAN_DEB_CACHE /var/cache/apt/archives/" \
            --customize-hook="sync-out /var/cache/apt/archives $DEBIAN_DEB_CACHE" \
            --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
            --customize-hook="copy-in $CONTEXT/container/image-setup /usr/local/sbin" \
            --customize-hook='mkdir -p "$1"/usr/local/share/ironic-coreos' \
            --customize-hook="copy-in $CONTEXT/container/debian-packages /usr/local/share/ironic-coreos" \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
            --customize-hook="tar --numeric-owner --xattrs --format=pax \
                --one-file-system --exclude='./dev/*' --exclude='./proc/*' \
                --exclude='./sys/*' --exclude='./run/*' \
                --warning=no-file-changed \
                -C \"\$1\" -cf $work/build.tar . || [ \$? -eq 1 ]" \
            --customize-hook='chroot "$1" /usr/local/sbin/image-setup slim-root' \
            "$SUITE" "$work/base.tar" "$MIRROR" >&2
        # MMDEBSTRAP-END
        mv "$work/build.tar" "$work/base.tar" "$dir/"
        rmdir "$work"
        BASE_WORK=
        log "Debian base made in $((SECONDS - start)) s"
    fi
    if ! podman image exists "$DEBIAN_BUILD_TAG"; then
        podman import --quiet --change 'CMD ["/bin/bash"]' \
            "$dir/build.tar" "$DEBIAN_BUILD_TAG" >/dev/null
    fi
    if ! podman image exists "$DEBIAN_BASE_TAG"; then
        podman import --quiet --change 'CMD ["/bin/bash"]' \
            "$dir/base.tar" "$DEBIAN_BASE_TAG" >/dev/null
    fi
}

# The build context, copied first: the image is made of exactly the files
# the key is computed from.
BASE_WORK=
CONTEXT=$(mktemp -d "$CACHE_ROOT/.context.XXXXXX")
trap 'rm -rf "$CONTEXT" ${BASE_WORK:+"$BASE_WORK"}' EXIT
(cd "$TOP_DIR" && context_files | tar -cf - --files-from=-) \
    | tar -C "$CONTEXT" -xf -

# The key of this build.
BASE_ID=$BASE${BASE_IMAGE:+:$BASE_IMAGE}
if [[ $BASE == debian && -z $BASE_IMAGE ]]; then
    BASE_ID="$BASE_ID $SUITE $MIRROR"
fi
KEY=$BASE-$({
    (cd "$CONTEXT" && context_files) | hash_files "$CONTEXT"
    printf '%s\n' "$BASE_ID" "$PBR_VERSION"
    cat "${BASH_SOURCE[0]}" "$TOP_DIR/tools/containers.conf"
} | sha256sum | cut -c1-16)
TAG=$NAME:$KEY
DIR=$CACHE_ROOT/$KEY
ARCHIVE=$DIR/agent.oci.tar
mkdir -p "$DIR"

# One build of a key at a time (tests and labs may ask together).
exec 9>"$DIR/.lock"
flock 9

if [[ $REBUILD -eq 1 ]]; then
    rm -f "$ARCHIVE"
    podman image rm --force "$TAG" >/dev/null 2>&1 || true
fi

if [[ -f $ARCHIVE ]] && podman image exists "$TAG"; then
    log "cached: $TAG"
    echo "$ARCHIVE"
    exit 0
fi
if [[ -f $ARCHIVE ]]; then
    log "loading $TAG from $ARCHIVE"
    podman tag "$(podman pull --quiet "oci-archive:$ARCHIVE")" "$TAG"
fi

if ! podman image exists "$TAG"; then
    START=$SECONDS
    if [[ $BASE == debian && -z $BASE_IMAGE ]]; then
        debian_base
        BUILD_ARGS=(--build-arg "BASE_IMAGE=$DEBIAN_BASE_TAG"
                    --build-arg "BUILD_IMAGE=$DEBIAN_BUILD_TAG")
    else
        BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_IMAGE"
                    --build-arg "BUILD_IMAGE=$BASE_IMAGE")
    fi
    SECRET=()
    for bundle in /etc/ssl/certs/ca-certificates.crt \
            /etc/pki/tls/certs/ca-bundle.crt; do
        if [[ -f $bundle ]]; then
            SECRET=(--secret "id=cabundle,src=$bundle")
            break
        fi
    done
    log "building $TAG (base $BASE_ID)"
    # NOTE: host networking for the build only (pip downloads wheels);
    # no bridge or firewall set-up is needed on the build machine.
    podman build --network host --pull=missing \
        --file "$CONTEXT/container/Containerfile" \
        "${BUILD_ARGS[@]}" "${SECRET[@]}" \
        --build-arg "PBR_VERSION=$PBR_VERSION" \
        --label "org.opencontainers.image.version=$PBR_VERSION" \
        --label "io.openstack.ironic-coreos.image-key=$KEY" \
        --tag "$TAG" "$CONTEXT" >&2
    log "built $TAG in $((SECONDS - START)) s"
fi

if [[ ! -f $ARCHIVE ]]; then
    podman save --quiet --format oci-archive --output "$ARCHIVE.tmp" "$TAG"
    mv "$ARCHIVE.tmp" "$ARCHIVE"
fi
log "image $TAG, archive $(du -m "$ARCHIVE" | cut -f1) MiB"
echo "$ARCHIVE"
