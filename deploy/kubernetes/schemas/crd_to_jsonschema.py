#!/usr/bin/env python3
"""Turns a CustomResourceDefinition into a JSON Schema for check-jsonschema.

    crd_to_jsonschema.py --source TEXT < crd.yaml > Kind.json

Takes the `openAPIV3Schema` of the CRD's storage version and makes it a
draft-07 JSON Schema that is stricter than the API server in one way on
purpose: an object whose properties are listed admits no others (the API
server would prune an unknown field silently, so a misspelt `minReplicaCount`
would be dropped, not refused). The rest follows the CRD:

- `apiVersion` and `kind` must be the CRD's group/version and kind;
- `nullable: true` admits null;
- `x-kubernetes-int-or-string` admits an integer or a string;
- `x-kubernetes-preserve-unknown-fields` keeps the object open;
- descriptions and other `x-kubernetes-*` keys are left out; CEL rules
  (`x-kubernetes-validations`) are not checked.

Needs PyYAML (in .ci/venv). See README.md beside this file.
"""

import argparse
import json
import sys

import yaml


def convert(node):
    """The JSON Schema for one OpenAPI v3 schema node of a CRD."""
    if isinstance(node, list):
        return [convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: convert(sub) for name, sub in value.items()}
        else:
            out[key] = convert(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    )
    if closed:
        out["additionalProperties"] = False
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="where the CRD came from, recorded in $comment")
    args = parser.parse_args()
    crd = yaml.safe_load(sys.stdin)
    if crd.get("kind") != "CustomResourceDefinition":
        sys.exit("not a CustomResourceDefinition")
    spec = crd["spec"]
    (version,) = [v for v in spec["versions"] if v.get("storage")]
    schema = convert(version["schema"]["openAPIV3Schema"])
    api_version = f"{spec['group']}/{version['name']}"
    kind = spec["names"]["kind"]
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}},
    }
    required = ["apiVersion", "kind", "metadata"]
    schema["required"] = required + [r for r in schema.get("required", []) if r not in required]
    document = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"Made by crd_to_jsonschema.py from {args.source}",
        "title": f"{kind} ({api_version})",
        **schema,
    }
    json.dump(document, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
