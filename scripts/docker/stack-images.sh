#!/usr/bin/env bash
# Local stand-ins for the registry images that docker-compose.yml uses, for machines that reach
# no image registry (only Debian's archive): each is built FROM the local Debian base image
# (scripts/docker/base-image.sh) with Debian's own package and tagged as the upstream image,
# so that the Compose file runs as shipped. Their Dockerfiles, and how each differs from
# upstream (above all the release), are in scripts/docker/standins/<name>/:
#
#   python      lainaamo/python:3.11-bookworm  Debian's python3 3.11, for the project's image
#                                              (--build-arg PYTHON_IMAGE=...; not an upstream tag)
#   postgres    postgres:15                    Debian's postgresql-15
#   mosquitto   eclipse-mosquitto:2            mosquitto 2.0.21 from bookworm-backports
#   caddy       caddy:2                        Debian's caddy 2.6
#   coturn      coturn/coturn:4.6              Debian's coturn 4.6
#   prometheus  prom/prometheus:v2.53.0        Debian's prometheus 2.42
#
#   scripts/docker/stack-images.sh [--only NAME[,NAME...]] [--force] [--no-cache]
#                                  [--base TAG]
#
# Makes sure Docker answers (ensure-docker.sh) and the base image exists (base-image.sh, about
# 2 minutes the first time), then builds the stand-ins one after the other with
# `docker build --network host` (the default bridge may not reach the Debian mirror). A second
# run takes seconds: Docker's layer cache. --no-cache builds anew (the mirror's newest
# packages; base-image.sh --rebuild renews the base). Prints per image the tag, the Debian
# release it carries (its /etc/lainaamo-standin), its size and the time taken, and the total.
#
# A tag that exists but is no stand-in (no label org.lainaamo.standin: e.g. the real upstream
# image, pulled where a registry is reachable) is left as it is, and said so: the real image
# serves the Compose file as well. --force replaces it with the stand-in.
#
# It does not build the project's own image; after it, e.g.:
#   docker build --network host --build-arg PYTHON_IMAGE=lainaamo/python:3.11-bookworm \
#       -t lainaamo-server:local .
#
# Safe to run any number of times, also by several at once (one builds, the others wait and
# then find the layers cached). As root where Docker needs it (and for base-image.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STANDINS="$HERE/standins"
BASE="${LAINAAMO_STANDIN_BASE:-lainaamo/debian:bookworm}"
FORCE=0
NO_CACHE=()
ONLY=""

# name -> tag, in build order (python first: the project's image needs it soonest).
NAMES=(python postgres mosquitto caddy coturn prometheus)
declare -A TAGS=(
    [python]=lainaamo/python:3.11-bookworm
    [postgres]=postgres:15
    [mosquitto]=eclipse-mosquitto:2
    [caddy]=caddy:2
    [coturn]=coturn/coturn:4.6
    [prometheus]=prom/prometheus:v2.53.0
)

say() { echo "stack-images: $*"; }
die() { echo "stack-images: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --only) [ $# -ge 2 ] || die "--only needs NAME[,NAME...]"; ONLY="$2"; shift 2 ;;
        --only=*) ONLY="${1#--only=}"; shift ;;
        --force) FORCE=1; shift ;;
        --no-cache) NO_CACHE=(--no-cache); shift ;;
        --base) [ $# -ge 2 ] || die "--base needs a TAG"; BASE="$2"; shift 2 ;;
        --base=*) BASE="${1#--base=}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

selected=()
if [ -n "$ONLY" ]; then
    IFS=, read -r -a wanted <<<"$ONLY"
    for name in "${wanted[@]}"; do
        [ -n "$name" ] || continue
        [ -n "${TAGS[$name]:-}" ] || die "no stand-in called '$name' (there are: ${NAMES[*]})"
    done
    # In the build order, each once.
    for name in "${NAMES[@]}"; do
        for w in "${wanted[@]}"; do
            if [ "$w" = "$name" ]; then selected+=("$name"); break; fi
        done
    done
else
    selected=("${NAMES[@]}")
fi
[ "${#selected[@]}" -gt 0 ] || die "--only named no stand-in (there are: ${NAMES[*]})"

now_ms() { date +%s%3N; }
secs() { local ms="$1"; printf '%d.%02d s' $((ms / 1000)) $((ms % 1000 / 10)); }
started=$(now_ms)

bash "$HERE/ensure-docker.sh"

# One run at a time on this machine: the machine's cores go to one build, and who waited
# finds the layers cached.
LOCK=/run/lock/lainaamo-stack-images.lock
[ -w "$(dirname "$LOCK")" ] || LOCK="${TMPDIR:-/tmp}/lainaamo-stack-images.lock"
exec 9>"$LOCK"
if ! flock -n 9; then
    say "another stack-images.sh is building; waiting for it ($LOCK)"
    flock 9
fi

if [ "$BASE" = lainaamo/debian:bookworm ]; then
    # Its messages, not the image id it prints last.
    bash "$HERE/base-image.sh" --suite bookworm --tag "$BASE" | { grep -v '^sha256:' || true; }
fi
docker image inspect "$BASE" >/dev/null 2>&1 || die "no base image $BASE (scripts/docker/base-image.sh makes lainaamo/debian:bookworm)"

LOGDIR="$(mktemp -d -p "${TMPDIR:-/tmp}" lainaamo-stack-images.XXXXXX)"
trap 'rm -rf "$LOGDIR"' EXIT

is_standin() { [ "$(docker image inspect --format '{{index .Config.Labels "org.lainaamo.standin"}}' "$1" 2>/dev/null)" = true ]; }

results=()
kept=()
for name in "${selected[@]}"; do
    tag="${TAGS[$name]}"
    dir="$STANDINS/$name"
    [ -f "$dir/Dockerfile" ] || die "missing $dir/Dockerfile"
    old_id="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    if [ -n "$old_id" ] && ! is_standin "$tag"; then
        if [ "$FORCE" -eq 0 ]; then
            say "$tag exists and is not a stand-in (no label org.lainaamo.standin: the real upstream image?): left as it is; --force replaces it"
            kept+=("$tag")
            continue
        fi
        say "$tag exists and is not a stand-in: replacing it (--force)"
    fi
    say "building $tag from scripts/docker/standins/$name (log: $LOGDIR/$name.log)"
    t0=$(now_ms)
    if ! docker build --network host "${NO_CACHE[@]}" --build-arg "BASE=$BASE" -t "$tag" "$dir" \
            >"$LOGDIR/$name.log" 2>&1; then
        tail -n 40 "$LOGDIR/$name.log" >&2
        trap - EXIT
        die "building $tag failed (above; the whole log: $LOGDIR/$name.log)"
    fi
    took=$(( $(now_ms) - t0 ))
    id="$(docker image inspect --format '{{.Id}}' "$tag")"
    if [ -n "$old_id" ] && [ "$old_id" != "$id" ] \
            && [ "$(docker image inspect --format '{{len .RepoTags}}' "$old_id" 2>/dev/null)" = 0 ]; then
        # The image it replaces, now without a tag, unless a container still uses it.
        if docker rmi "$old_id" >/dev/null 2>&1; then
            say "removed the earlier ${old_id:7:12} of $tag"
        fi
    fi
    release="$(docker run --rm --entrypoint cat "$tag" /etc/lainaamo-standin 2>/dev/null | head -n 1)"
    release="${release#*stand-in: }"
    size=$(( $(docker image inspect --format '{{.Size}}' "$tag") / 1000000 ))
    line="$(printf '%-30s %-62s %5d MB %9s' "$tag" "${release:-?}" "$size" "$(secs "$took")")"
    say "$line"
    results+=("$line")
done

echo
echo "Stand-ins (tag, Debian release, size, build time):"
for line in "${results[@]}"; do echo "  $line"; done
for tag in "${kept[@]}"; do echo "  $tag: not a stand-in, left as it is (--force replaces it)"; done
echo "Total: $(secs $(( $(now_ms) - started )))"
echo
echo "The project's own image (not built here):"
echo "  docker build --network host --build-arg PYTHON_IMAGE=lainaamo/python:3.11-bookworm -t lainaamo-server:local ."
