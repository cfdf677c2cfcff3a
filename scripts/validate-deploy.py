#!/usr/bin/env python3
"""Validates Vane's deployment files against pinned schemas (scripts/validate-deploy.sh runs it).

    scripts/validate-deploy.py [--argo SCHEMA] [--crd CRD.yaml]... [--rules RULES.yml]
                               [--write-rule OUT.yaml] FILE.yaml...

Each YAML document is checked by kind:
- an Argo `Workflow` against Argo Workflows' JSON schema (`--argo`: api/jsonschema/schema.json
  of argoproj/argo-workflows v4.1.2, commit 16a52d67daf2f4a8a76fa8bec02a76a46aa46257);
- a kind one of the `--crd` CustomResourceDefinitions defines (ServiceMonitor,
  PrometheusRule: prometheus-operator v0.93.0, commit f8fafd475f3d132e239432ae6172de60a6cb6516)
  against that CRD's openAPIV3Schema;
- with `--rules`, a `PrometheusRule`'s groups must equal the rules file's (it is generated from
  it: `--write-rule OUT.yaml` writes it);
- anything else is left to kubernetes-validate (built-in kinds).
Validation is strict: unknown fields are refused, as Kubernetes and Argo's controller do
(the published schemas leave additionalProperties open). Both schemas are Apache-2.0.
Needs `jsonschema` and `PyYAML` (PyPI).
"""
import argparse
import json
import sys

import jsonschema
import yaml

RULE_HEADER = (
    "# Generated from deploy/prometheus/vane-rules.yml by scripts/validate-deploy.sh --write;\n"
    "# CI checks the two agree. Edit the rules there (and their promtool tests), not here.\n"
)


def strict(node):
    """additionalProperties: false wherever an object lists its properties."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
    return node


def rule_doc(rules_path):
    rules = yaml.safe_load(open(rules_path))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "vane"},
        "spec": {"groups": rules["groups"]},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--argo")
    ap.add_argument("--crd", action="append", default=[])
    ap.add_argument("--rules")
    ap.add_argument("--write-rule")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()

    if a.write_rule:
        with open(a.write_rule, "w") as f:
            f.write(RULE_HEADER)
            yaml.safe_dump(rule_doc(a.rules), f, sort_keys=False, width=1000, allow_unicode=True)
        print(f"wrote {a.write_rule}")
        return 0

    validators = {}
    if a.argo:
        defs = strict(json.load(open(a.argo)))["definitions"]
        for kind in ("Workflow", "WorkflowTemplate", "CronWorkflow"):
            ref = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": defs}
            validators[("argoproj.io/v1alpha1", kind)] = jsonschema.Draft202012Validator(ref)
    for path in a.crd:
        crd = yaml.safe_load(open(path))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            schema = strict(v["schema"]["openAPIV3Schema"])
            validators[(f"{group}/{v['name']}", kind)] = jsonschema.Draft7Validator(schema)

    failed = 0
    for path in a.files:
        for doc in yaml.safe_load_all(open(path)):
            if not doc:
                continue
            key = (doc.get("apiVersion"), doc.get("kind"))
            meta = doc.get("metadata", {})
            name = meta.get("name") or meta.get("generateName", "")
            v = validators.get(key)
            if v is None:
                continue
            errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
            if key[1] == "PrometheusRule" and a.rules:
                if doc["spec"]["groups"] != rule_doc(a.rules)["spec"]["groups"]:
                    errors.append(
                        jsonschema.ValidationError(
                            f"spec.groups differ from {a.rules}: regenerate with "
                            "scripts/validate-deploy.sh --write"
                        )
                    )
            for e in errors:
                print(f"{path}: {key[1]} {name} {'/'.join(map(str, e.path))}: {e.message}")
            failed += len(errors)
            if not errors:
                print(f"{path}: {key[1]} {name} valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
