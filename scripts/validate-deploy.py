#!/usr/bin/env python3
"""Validates rendered workflows against Argo Workflows' pinned JSON schema.

    scripts/validate-deploy.py SCHEMA FILE.yaml...

SCHEMA is deploy/schemas/argo-workflows-v4.1.2.schema.json: api/jsonschema/schema.json of
argoproj/argo-workflows at tag v4.1.2 (commit 16a52d67daf2f4a8a76fa8bec02a76a46aa46257),
Apache-2.0. Needs the `jsonschema` and `PyYAML` packages (PyPI).
"""
import json
import sys

import jsonschema
import yaml


def strict(node):
    """Refuses unknown fields, as Argo's controller does (strict decoding); the published schema
    leaves additionalProperties open, which would let a misspelt key through."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
    return node


def main() -> int:
    schema = strict(json.load(open(sys.argv[1])))
    failed = 0
    for path in sys.argv[2:]:
        for doc in yaml.safe_load_all(open(path)):
            kind = doc.get("kind")
            ref = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}"}
            validator = jsonschema.Draft202012Validator(
                {**ref, "definitions": schema["definitions"]}
            )
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            for e in errors:
                print(f"{path}: {kind} {'/'.join(map(str, e.path))}: {e.message}")
            failed += len(errors)
            if not errors:
                print(f"{path}: {kind} {doc['metadata'].get('generateName', '')} valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
