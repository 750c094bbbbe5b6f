#!/usr/bin/env bash
# Builds the tandem-server and tandem-operator images from the binaries `cargo build --release`
# made on this host, on a machine that can reach no image registry:
#   1. unless the Dockerfile's runtime base (RUNTIME_IMAGE, distroless cc for Debian 12) is
#      already present, assembles a stand-in under the same name from Debian 12 packages
#      (apt-get download, dpkg-deb -x, docker import): libc6, libgcc-s1, ca-certificates,
#      tzdata, base-files and netbase, with the users of distroless `nonroot` (65532) and of
#      the server's pods (10001), and distroless's PATH, SSL_CERT_FILE, USER and WORKDIR;
#   2. builds the Dockerfile's server-prebuilt and operator-prebuilt targets from a build
#      context holding the binaries (classic builder or BuildKit, no frontend pulled);
#   3. prints each image's size.
# The host must be Debian 12 (the binaries link its glibc, and apt downloads its packages).
# Docker is whatever DOCKER_HOST names (images/dockerd.sh starts a private daemon).
#
# Usage: images/build.sh [--binaries DIR] [--tag TAG] [--server-image NAME]
#                        [--operator-image NAME] [--rebuild-base]
#   --binaries DIR         where tandem-server, tandem-operator and crdgen are
#                          (default: ${CARGO_TARGET_DIR:-target}/release)
#   --tag TAG              image tag (default: the workspace version, which is the operator's
#                          default server image tag): tandem-server:TAG, tandem-operator:TAG
#   --server-image NAME    the server image's full name instead (e.g. for a registry)
#   --operator-image NAME  the operator image's full name instead
#   --rebuild-base         assemble the runtime base again even when an image of that name
#                          exists
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binaries="${CARGO_TARGET_DIR:-${repo_root}/target}/release"
tag=""
server_image=""
operator_image=""
rebuild_base=0

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binaries) binaries="${2:?--binaries needs a directory}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --server-image) server_image="${2:?--server-image needs a name}"; shift 2 ;;
    --operator-image) operator_image="${2:?--operator-image needs a name}"; shift 2 ;;
    --rebuild-base) rebuild_base=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "${repo_root}/Cargo.toml")"
tag="${tag:-$version}"
runtime_image="$(sed -n 's/^ARG RUNTIME_IMAGE=//p' "${repo_root}/Dockerfile")"
server_image="${server_image:-tandem-server:${tag}}"
operator_image="${operator_image:-tandem-operator:${tag}}"

for bin in tandem-server tandem-operator crdgen; do
  if [[ ! -x "${binaries}/${bin}" ]]; then
    echo "build.sh: ${binaries}/${bin} not found; build it first:" >&2
    echo "  cargo build --release --locked -p tandem-server --bin tandem-server -p tandem-operator --bin tandem-operator --bin crdgen" >&2
    exit 2
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The stand-in for gcr.io/distroless/cc-debian12:nonroot.
assemble_base() {
  # shellcheck source=/dev/null
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  if [[ "$codename" != bookworm ]]; then
    echo "build.sh: the runtime base is assembled from Debian 12 (bookworm) packages; this host is '${codename}'" >&2
    exit 2
  fi
  local packages=(base-files netbase tzdata ca-certificates libc6 libgcc-s1)
  mkdir -p "${work}/debs" "${work}/rootfs"
  # Downloads as root into a directory _apt cannot write, hence no sandbox user.
  if ! (cd "${work}/debs" && apt-get download -qq -o APT::Sandbox::User=root "${packages[@]}"); then
    apt-get update -qq
    (cd "${work}/debs" && apt-get download -qq -o APT::Sandbox::User=root "${packages[@]}")
  fi
  local deb
  for deb in "${work}"/debs/*.deb; do
    dpkg-deb -x "$deb" "${work}/rootfs"
  done
  local root="${work}/rootfs"
  # What ca-certificates' maintainer script would generate: the bundle TLS clients read.
  mkdir -p "${root}/etc/ssl/certs"
  cat "${root}"/usr/share/ca-certificates/mozilla/*.crt >"${root}/etc/ssl/certs/ca-certificates.crt"
  # As distroless: no manuals, no documentation but the copyright files.
  rm -rf "${root}/usr/share/man" "${root}/usr/share/info" "${root}/usr/share/lintian"
  find "${root}/usr/share/doc" -type f ! -name copyright -delete
  cat >"${root}/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
tandem:x:10001:10001:tandem-server:/data:/sbin/nologin
PASSWD
  cat >"${root}/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
staff:x:50:
nogroup:x:65534:
nonroot:x:65532:
tandem:x:10001:
GROUP
  install -d -m 1777 "${root}/tmp"
  install -d -m 0700 "${root}/root"
  install -d -m 0700 -o 65532 -g 65532 "${root}/home/nonroot"
  tar -C "$root" --numeric-owner --sort=name -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /home/nonroot' \
    --message "stand-in for ${runtime_image}: Debian 12 packages ${packages[*]}" \
    - "$runtime_image" >/dev/null
}

if [[ $rebuild_base -eq 1 ]] || ! docker image inspect "$runtime_image" >/dev/null 2>&1; then
  echo "== assembling ${runtime_image} from Debian 12 packages" >&2
  assemble_base
fi

context="${work}/context"
mkdir -p "${context}/data"
# Without their debug info (the release profile keeps it for profiling): a fraction of the size.
for bin in tandem-server tandem-operator crdgen; do
  strip --strip-debug -o "${context}/${bin}" "${binaries}/${bin}"
done
for target in server operator; do
  image="$server_image"
  [[ $target == operator ]] && image="$operator_image"
  echo "== building ${image} (Dockerfile target ${target}-prebuilt)" >&2
  docker build --quiet --file "${repo_root}/Dockerfile" --target "${target}-prebuilt" \
    --build-arg "RUNTIME_IMAGE=${runtime_image}" --build-arg "VERSION=${version}" \
    --tag "$image" "$context" >/dev/null
done

echo "== image sizes" >&2
for image in "$runtime_image" "$server_image" "$operator_image"; do
  size="$(docker image inspect --format '{{.Size}}' "$image")"
  printf '%s\t%s bytes (%s MB)\n' "$image" "$size" "$((size / 1000000))"
done
