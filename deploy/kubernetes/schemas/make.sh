#!/usr/bin/env bash
# Makes the JSON Schemas in this folder from the CRDs of the pinned
# releases, with crd_to_jsonschema.py (see README.md here).
#
#   deploy/kubernetes/schemas/make.sh KEDA_GIT_DIR PROMETHEUS_OPERATOR_GIT_DIR
#
# Each argument is a clone of the project's repository (kedacore/keda,
# prometheus-operator/prometheus-operator) holding the pinned tag; a bare
# clone will do. PYTHON names a Python with PyYAML (default: the CI venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../../../.ci/venv/bin/python}

keda_tag=v2.18.3
prometheus_operator_tag=v0.93.0

convert() { # repository name, git dir, tag, path in the repository, output file
  local blob
  blob=$(git -C "$2" rev-parse "$3:$4")
  mkdir -p "$(dirname "$5")"
  git -C "$2" show "$3:$4" \
    | "$python" "$here/crd_to_jsonschema.py" --source "$1 $3 $4 (git blob $blob)" > "$5"
  echo "$5 <- $1 $3 $4"
}

keda=$here/keda-${keda_tag#v}
convert kedacore/keda "$1" "$keda_tag" config/crd/bases/keda.sh_scaledobjects.yaml "$keda/ScaledObject.json"
convert kedacore/keda "$1" "$keda_tag" config/crd/bases/keda.sh_triggerauthentications.yaml "$keda/TriggerAuthentication.json"

operator=$here/prometheus-operator-${prometheus_operator_tag#v}
convert prometheus-operator/prometheus-operator "$2" "$prometheus_operator_tag" \
  example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml "$operator/ServiceMonitor.json"
