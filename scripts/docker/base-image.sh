#!/usr/bin/env bash
# A local Debian base image for Docker, made without any image registry: debootstrap a
# minimal Debian (variant minbase, plus ca-certificates) from this machine's own Debian
# mirror into a directory, then `docker import` it. Images of this project build FROM it
# (tests/kiosk/systemd/Dockerfile; the production stack can too), so nothing is pulled.
#
#   scripts/docker/base-image.sh [--suite bookworm] [--tag lainaamo/debian:bookworm]
#                                [--mirror URL] [--security URL] [--rebuild]
#
# Does nothing (and says so) when the image exists already, so a second run takes a moment;
# --rebuild makes it anew (e.g. for the mirror's newest packages). Prints what it does and
# the image's id last. As root only (debootstrap). Several runs at once build it once.
#
# The mirror: --mirror, else LAINAAMO_DEBIAN_MIRROR, else the first Debian mirror of the
# machine's APT sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and
# *.sources), else http://deb.debian.org/debian; the security archive likewise
# (LAINAAMO_DEBIAN_SECURITY). The image's APT sources are the suite, its -updates and its
# -security on those, main only. As Docker's own Debian images, it has a policy-rc.d that
# keeps apt-get from starting services while an image is built, and no package lists (run
# apt-get update first).
#
# The image trusts what this machine trusts beyond Debian's CA list: the certificates in
# /usr/local/share/ca-certificates (e.g. a proxy's that re-signs HTTPS, as on CI machines)
# are copied in, and pip and requests, which carry their own CA list, are pointed at the
# system's (PIP_CERT, REQUESTS_CA_BUNDLE). The image is for this machine, never pushed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE="${LAINAAMO_DEBIAN_SUITE:-bookworm}"
TAG=""
MIRROR="${LAINAAMO_DEBIAN_MIRROR:-}"
SECURITY="${LAINAAMO_DEBIAN_SECURITY:-}"
REBUILD=0

say() { echo "base-image: $*"; }
die() { echo "base-image: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --suite) SUITE="$2"; shift 2 ;;
        --tag) TAG="$2"; shift 2 ;;
        --mirror) MIRROR="$2"; shift 2 ;;
        --security) SECURITY="$2"; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
TAG="${TAG:-lainaamo/debian:$SUITE}"

bash "$HERE/ensure-docker.sh"

image_id() { docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null; }

exists() {
    local id created
    id="$(image_id)" || return 1
    created="$(docker image inspect --format '{{.Created}}' "$TAG")"
    say "$TAG exists (${id:7:12}, made ${created%%.*}): nothing to do (--rebuild makes it anew)"
    echo "$id"
}

if [ "$REBUILD" -eq 0 ] && exists; then exit 0; fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: sudo $0"

# One build at a time per tag; who waited finds the image made.
exec 9>"/run/lock/lainaamo-base-image-${TAG//[^A-Za-z0-9_.-]/_}.lock"
flock 9
if [ "$REBUILD" -eq 0 ] && exists; then exit 0; fi

if ! command -v debootstrap >/dev/null 2>&1 || [ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    command -v apt-get >/dev/null 2>&1 || die "no apt-get here: install debootstrap yourself"
    say "apt-get install -y debootstrap debian-archive-keyring"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        debootstrap debian-archive-keyring >/dev/null
fi

# "URI SUITE" of every enabled deb source of this machine, one per line.
apt_sources() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                           print $i, $(i + 1) }' "$file"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        # deb822 stanzas: Types, URIs, Suites, Enabled, separated by blank lines.
        awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
                                    for (u in uris) for (s in suites) print uris[u], suites[s]
                                types = ""; enabled = ""; delete uris; delete suites }
             /^[ \t]*$/ { flush(); next }
             /^#/ { next }
             { key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ /, "") }
             key == "types" { types = $0 }
             key == "enabled" { enabled = tolower($0) }
             key == "uris" { split($0, uris, " ") }
             key == "suites" { split($0, suites, " ") }
             END { flush() }' "$file"
    done
}

# The first source whose suite is SUITE-like and whose URI is a Debian archive.
pick() {  # SUITE-PATTERN URI-PATTERN
    apt_sources | awk -v suite="$1" -v uri="$2" '$2 ~ suite && $1 ~ uri { print $1; exit }'
}

if [ -z "$MIRROR" ]; then
    MIRROR="$(pick "^$SUITE(-updates)?$" 'debian/?$')"
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi
if [ -z "$SECURITY" ]; then
    SECURITY="$(pick "^$SUITE-security$" 'debian-security/?$')"
    SECURITY="${SECURITY:-http://deb.debian.org/debian-security}"
fi
MIRROR="${MIRROR%/}"
SECURITY="${SECURITY%/}"

WORK="$(mktemp -d -p /var/tmp lainaamo-base-image.XXXXXX)"
TARGET="$WORK/rootfs"
cleanup() {
    # debootstrap mounts /proc and /sys in the target; a failed run may leave them.
    local mounted
    mounted="$(awk -v t="$TARGET" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r)"
    [ -z "$mounted" ] || echo "$mounted" | xargs -r -n1 umount -l
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

old_id="$(image_id || true)"
started=$SECONDS
say "debootstrap --variant=minbase $SUITE from $MIRROR (about 2 minutes; log in $WORK/debootstrap.log)"
if ! debootstrap --variant=minbase --include=ca-certificates --components=main \
    "$SUITE" "$TARGET" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    [ -f "$TARGET/debootstrap/debootstrap.log" ] && tail -n 30 "$TARGET/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (above)"
fi

cat >"$TARGET/etc/apt/sources.list" <<EOF
# Written by scripts/docker/base-image.sh
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
# As in Docker's Debian images: no service starts while an image is built with apt-get.
printf '#!/bin/sh\nexit 101\n' >"$TARGET/usr/sbin/policy-rc.d"
chmod 0755 "$TARGET/usr/sbin/policy-rc.d"
local_cas=(/usr/local/share/ca-certificates/*.crt)
if [ -e "${local_cas[0]}" ]; then
    say "trusting this machine's own CA certificates: ${local_cas[*]##*/}"
    cp "${local_cas[@]}" "$TARGET/usr/local/share/ca-certificates/"
    chroot "$TARGET" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"
fi
chroot "$TARGET" apt-get clean
rm -rf "$TARGET"/var/lib/apt/lists/* "$TARGET"/var/cache/apt/*.bin "$TARGET"/var/log/*.log \
    "$TARGET"/tmp/* "$TARGET"/var/tmp/*
: >"$TARGET/etc/machine-id"  # made at each container's first boot, never shared
echo "lainaamo" >"$TARGET/etc/hostname"

say "docker import as $TAG"
tar --numeric-owner --xattrs -C "$TARGET" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.lainaamo.base.suite=$SUITE org.lainaamo.base.mirror=$MIRROR" \
    --message "debootstrap --variant=minbase $SUITE $MIRROR (scripts/docker/base-image.sh)" \
    - "$TAG" >/dev/null
id="$(image_id)" || die "docker import made no $TAG"
size="$(docker image inspect --format '{{.Size}}' "$TAG")"
if [ -n "$old_id" ] && [ "$old_id" != "$id" ]; then
    # The one it replaces, unless images built from it still use it.
    docker rmi "$old_id" >/dev/null 2>&1 && say "removed the earlier ${old_id:7:12}" || true
fi
say "made $TAG (${id:7:12}, $((size / 1000000)) MB) in $((SECONDS - started)) s"
echo "$id"
