#!/usr/bin/env bash
# CI: the Kubernetes manifests of deploy/kubernetes, without a cluster.
# For the base, the example overlay, and the overlay with each optional
# component: render with `kubectl kustomize` (offline); validate the built-in
# kinds with kubernetes-validate --strict for Kubernetes 1.31 and 1.33 (KEDA
# 2.18's tested range); validate the custom kinds with check-jsonschema
# against deploy/kubernetes/schemas; and check them against the lcm-worker
# binary (.ci/kubernetes_manifests.py: `lcm-worker check --offline` on the
# pod's environment and files, probes, ports, grace periods, KEDA's queue).
#
# Runnable alone from the repository root: bash .ci/kubernetes.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kubectl >/dev/null || { echo "kubernetes: kubectl is needed (kubectl kustomize)" >&2; exit 1; }
[[ -x .ci/venv/bin/python ]] || python3 -m venv .ci/venv
.ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
cargo build --quiet --bin lcm-worker
worker=target/debug/lcm-worker

k8s=deploy/kubernetes
kubernetes_versions=(1.31.0 1.33.0)
out=$(mktemp -d)
# The overlay-with-component variants are copies of the overlay beside it
# (its ../../base must resolve), removed on exit.
trap 'rm -rf "$out" "$k8s"/overlays/.ci-render-*' EXIT

render() { # variant name, kustomization dir
  kubectl kustomize "$2" > "$out/$1.yaml"
  echo "kubernetes: rendered $1 ($(grep -c '^kind:' "$out/$1.yaml") objects)"
}

with_components() { # variant name, component...
  local name=$1 dir; shift
  dir=$(mktemp -d "$k8s/overlays/.ci-render-XXXXXX")
  cp "$k8s"/overlays/example/* "$dir"/
  { echo "components:"; for c in "$@"; do echo "  - ../../components/$c"; done; } >> "$dir/kustomization.yaml"
  render "$name" "$dir"
}

render base "$k8s/base"
render example "$k8s/overlays/example"
with_components example+servicemonitor servicemonitor
with_components example+keda-prometheus-scaler keda-prometheus-scaler

for rendered in "$out"/*.yaml; do
  variant=$(basename "$rendered" .yaml)
  .ci/venv/bin/python .ci/kubernetes_manifests.py split "$rendered" "$out/$variant"
  for version in "${kubernetes_versions[@]}"; do
    .ci/venv/bin/kubernetes-validate --strict --quiet -k "$version" "$out/$variant"/builtin/*.yaml
  done
  echo "kubernetes: $variant: built-in kinds valid for Kubernetes ${kubernetes_versions[*]} (strict)"
  for kind_dir in "$out/$variant"/*/; do
    kind=$(basename "$kind_dir")
    [[ $kind == builtin ]] && continue
    schemas=("$k8s"/schemas/*/"$kind".json)
    if [[ ${#schemas[@]} -ne 1 || ! -f ${schemas[0]} ]]; then
      echo "kubernetes: $variant: no single schema for kind $kind in $k8s/schemas" >&2
      exit 1
    fi
    if ! report=$(.ci/venv/bin/check-jsonschema --schemafile "${schemas[0]}" "$kind_dir"*.yaml 2>&1); then
      echo "kubernetes: $variant: $kind does not match ${schemas[0]}:" >&2
      echo "$report" >&2
      exit 1
    fi
    echo "kubernetes: $variant: $kind valid against ${schemas[0]}"
  done
  .ci/venv/bin/python .ci/kubernetes_manifests.py consistency "$rendered" "$worker"
done
echo "kubernetes: manifests rendered, valid and consistent with lcm-worker"
