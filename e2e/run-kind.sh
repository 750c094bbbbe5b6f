#!/usr/bin/env bash
# Runs the Tandem end-to-end suite on a local kind cluster:
#   1. checks the tools it needs (docker, kind, kubectl, helm, cargo);
#   2. creates a kind cluster from e2e/kind-config.yaml (or reuses one with --reuse);
#   3. builds the server and operator images from the Dockerfile (or, with --host-binaries,
#      from `cargo build --release` binaries with images/build.sh, as CI builds them) and
#      loads them, and the redis-cli client image, into the cluster with `kind load`;
#   4. installs the chart with `helm upgrade --install --wait`, pointing it at those images;
#   5. runs `cargo test -p tandem-e2e -- --ignored --test-threads=1` against the cluster;
#   6. on failure, dumps pods, events, the sets and the operator and server logs;
#   7. deletes the cluster it created, unless --keep.
#
# Usage: e2e/run-kind.sh [--name NAME] [--keep] [--reuse] [--node-image IMAGE]
#                        [--host-binaries] [-- TEST ARGS]
#   --name NAME         cluster name (default: tandem-e2e, or $TANDEM_E2E_CLUSTER)
#   --keep              keep the cluster afterwards (also on failure), for inspection
#   --reuse             use the cluster NAME if it exists instead of failing; a reused
#                       cluster is never deleted
#   --node-image IMAGE  kind node image for every node (default: the one in kind-config.yaml)
#   --host-binaries     build the images from this host's release binaries (a Debian 12
#                       host: same glibc as the runtime base) instead of in the Rust image
#   -- ARGS             passed to the test binary after --ignored, e.g. a test name filter
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="${TANDEM_E2E_CLUSTER:-tandem-e2e}"
keep=0
reuse=0
node_image=""
host_binaries=0
test_args=()

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) cluster="${2:?--name needs a value}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --reuse) reuse=1; shift ;;
    --node-image) node_image="${2:?--node-image needs a value}"; shift 2 ;;
    --host-binaries) host_binaries=1; shift ;;
    --) shift; test_args=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run-kind.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

# Images: tagged for this run; the chart gets the same names through --set.
tag="${TANDEM_E2E_TAG:-e2e}"
server_image="tandem.dev/tandem-server:${tag}"
operator_image="tandem.dev/tandem-operator:${tag}"
client_image="${TANDEM_E2E_CLIENT_IMAGE:-docker.io/library/redis:7.0}"
release="tandem-operator"
operator_namespace="${TANDEM_E2E_OPERATOR_NAMESPACE:-tandem-system}"

log() { printf '\n== %s\n' "$*" >&2; }

require() {
  local tool="$1" hint="$2"
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "run-kind.sh: '$tool' is required but not on PATH. Install it: $hint" >&2
    missing=1
  fi
}

missing=0
require docker "https://docs.docker.com/engine/install/ (and a running daemon)"
require kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (go install sigs.k8s.io/kind@latest)"
require kubectl "https://kubernetes.io/docs/tasks/tools/#kubectl"
require helm "https://helm.sh/docs/intro/install/"
require cargo "https://rustup.rs"
if [[ $missing -ne 0 ]]; then
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "run-kind.sh: docker is installed but the daemon is not reachable (is it running, and may this user use it?)" >&2
  exit 2
fi

work_dir="$(mktemp -d)"
export KUBECONFIG="${work_dir}/kubeconfig"
created=0
status=1

dump_diagnostics() {
  log "diagnostics (cluster ${cluster})"
  kubectl get nodes -o wide || true
  kubectl get pods --all-namespaces -o wide || true
  kubectl get redisreplicasets --all-namespaces -o yaml || true
  kubectl get events --all-namespaces --sort-by=.lastTimestamp || true
  log "operator logs"
  kubectl logs --namespace "$operator_namespace" --selector app.kubernetes.io/name=tandem-operator \
    --all-containers --prefix --tail=-1 || true
  local ns pod
  for ns in $(kubectl get namespaces --selector tandem.dev/e2e -o jsonpath='{.items[*].metadata.name}' 2>/dev/null); do
    for pod in $(kubectl get pods --namespace "$ns" -o jsonpath='{.items[*].metadata.name}' 2>/dev/null); do
      log "logs of ${ns}/${pod}"
      kubectl logs --namespace "$ns" "$pod" --all-containers --tail=-1 || true
      kubectl logs --namespace "$ns" "$pod" --all-containers --previous --tail=-1 2>/dev/null || true
    done
  done
}

cleanup() {
  if [[ $status -ne 0 ]] && kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    dump_diagnostics
  fi
  if [[ $created -eq 1 && $keep -eq 0 ]]; then
    log "deleting kind cluster ${cluster}"
    kind delete cluster --name "$cluster" || true
  elif kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    echo "run-kind.sh: cluster ${cluster} kept; kubeconfig: kind get kubeconfig --name ${cluster}" >&2
  fi
  rm -rf "$work_dir"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  if [[ $reuse -eq 0 ]]; then
    echo "run-kind.sh: a kind cluster named ${cluster} exists; pass --reuse to use it, or --name another" >&2
    exit 2
  fi
  log "reusing kind cluster ${cluster}"
  kind get kubeconfig --name "$cluster" >"$KUBECONFIG"
else
  log "creating kind cluster ${cluster}"
  create_args=(create cluster --name "$cluster" --config "${repo_root}/e2e/kind-config.yaml" --kubeconfig "$KUBECONFIG" --wait 120s)
  if [[ -n "$node_image" ]]; then
    create_args+=(--image "$node_image")
  fi
  created=1
  kind "${create_args[@]}"
fi

log "building images ${server_image} and ${operator_image}"
if [[ $host_binaries -eq 1 ]]; then
  (cd "$repo_root" && cargo build --release --locked -p tandem-server --bin tandem-server \
    -p tandem-operator --bin tandem-operator --bin crdgen)
  "${repo_root}/images/build.sh" --server-image "$server_image" --operator-image "$operator_image"
else
  docker build --target server --tag "$server_image" "$repo_root"
  docker build --target operator --tag "$operator_image" "$repo_root"
fi
docker pull "$client_image"

log "loading images into ${cluster}"
for image in "$server_image" "$operator_image" "$client_image"; do
  kind load docker-image --name "$cluster" "$image"
done

log "installing the chart (release ${release} in ${operator_namespace})"
# The CRD first and server-side: Helm installs a chart's crds/ only on first install and
# never upgrades it, and a reused cluster may hold an older one.
kubectl apply --server-side --force-conflicts \
  --filename "${repo_root}/charts/tandem-operator/crds/redisreplicasets.tandem.dev.yaml"
kubectl wait --for condition=established --timeout=60s crd/redisreplicasets.tandem.dev
helm upgrade --install "$release" "${repo_root}/charts/tandem-operator" \
  --namespace "$operator_namespace" --create-namespace \
  --skip-crds \
  --set image.repository="${operator_image%:*}" \
  --set image.tag="$tag" \
  --set image.pullPolicy=IfNotPresent \
  --set serverImage.repository="${server_image%:*}" \
  --set serverImage.tag="$tag" \
  --set logLevel="info,tandem_operator=debug" \
  --wait --timeout 5m
if [[ $created -eq 0 ]]; then
  # Same tag, new build: pods of a reused cluster still run the image they started with.
  kubectl rollout restart deployment --namespace "$operator_namespace" \
    --selector app.kubernetes.io/name=tandem-operator
  kubectl rollout status deployment --namespace "$operator_namespace" --timeout=5m \
    --selector app.kubernetes.io/name=tandem-operator
fi

log "running the end-to-end tests"
cd "$repo_root"
TANDEM_E2E_OPERATOR_NAMESPACE="$operator_namespace" \
  TANDEM_E2E_CLIENT_IMAGE="$client_image" \
  cargo test -p tandem-e2e --locked -- --ignored --test-threads=1 ${test_args[@]+"${test_args[@]}"}
status=0
log "end-to-end suite passed"
