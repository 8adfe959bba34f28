"""Schema validation: custom resources against the CRD schemas (../shared/schemas, or
TCP_CANARY_SCHEMAS) made strict, built-in kinds against Kubernetes' strict schemas."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from .common import KUBERNETES_VERSION, Report, Unit, ident


def strictify(schema, at_root: bool = True):
    """Returns a copy of an OpenAPI v3 CRD schema where unknown fields are errors."""
    if isinstance(schema, list):
        return [strictify(s, False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {k: strictify(v, False) if k in ("items", "not") else v for k, v in schema.items()}
    for key in ("anyOf", "allOf", "oneOf"):
        if key in s:
            s[key] = [strictify(x, False) for x in s[key]]
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strictify(s["additionalProperties"], False)
    if "properties" in s:
        s["properties"] = {k: strictify(v, False) for k, v in s["properties"].items()}
    is_object = s.get("type") == "object" or "properties" in s
    if (
        is_object
        and "additionalProperties" not in s
        and not s.get("x-kubernetes-preserve-unknown-fields")
    ):
        s["additionalProperties"] = False
    if at_root:
        props = s.setdefault("properties", {})
        # ObjectMeta is checked by the API server, not the CRD schema: keep it open here
        # and check the name separately.
        props["metadata"] = {"type": "object"}
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("status", {"type": "object"})
    return s


def load_crd_schemas(schema_dir: Path) -> dict[tuple[str, str], dict]:
    """Maps (apiVersion, kind) to (strict schema, served) for every CRD version."""
    found: dict[tuple[str, str], dict] = {}
    files = sorted(schema_dir.glob("*.yaml"))
    if not files:
        raise RuntimeError(f"no CRD files in {schema_dir} (set TCP_CANARY_SCHEMAS)")
    for f in files:
        for crd in yaml.safe_load_all(f.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                raw = (v.get("schema") or {}).get("openAPIV3Schema")
                if raw is None:
                    continue
                found[(f"{group}/{v['name']}", kind)] = {
                    "schema": strictify(raw),
                    "served": v.get("served", False),
                }
    made = add_derived_tlsroute(found)
    if made:
        print(
            f"no TLSRoute CRD in {schema_dir}: TLSRoute {', '.join(made)} validated against the "
            "TCPRoute CRD's parentRefs and rules, with hostnames as the Gateway CRD's listener hostname"
        )
    return found


# Gateway API's TLSRoute has no CRD in ../shared/schemas. What can be validated is: its
# parentRefs and rules (backendRefs) are the TCPRoute's types, and its hostnames the
# listener hostname's of the Gateway CRD. So a TLSRoute is validated against the TCPRoute
# CRD's schema of the same version (v1alpha3 against v1's) with `hostnames` added, unless
# a TLSRoute CRD is in the folder.
TLSROUTE_FROM_TCPROUTE = {"v1": "v1", "v1alpha3": "v1", "v1alpha2": "v1alpha2"}
GATEWAY_API = "gateway.networking.k8s.io"


def add_derived_tlsroute(found: dict) -> list[str]:
    """Adds TLSRoute schemas made from TCPRoute's where no TLSRoute CRD was read; returns
    the versions so made."""
    if any(kind == "TLSRoute" for _, kind in found):
        return []
    hostname = {"type": "string", "maxLength": 253, "minLength": 1}
    for (api, kind), entry in found.items():
        if kind == "Gateway" and api.startswith(GATEWAY_API + "/"):
            listener = entry["schema"]["properties"]["spec"]["properties"]["listeners"]["items"]
            hostname = copy.deepcopy(listener["properties"]["hostname"])
            break
    made = []
    for version, source in TLSROUTE_FROM_TCPROUTE.items():
        tcp = found.get((f"{GATEWAY_API}/{source}", "TCPRoute"))
        if tcp is None:
            continue
        schema = copy.deepcopy(tcp["schema"])
        schema["properties"]["spec"]["properties"]["hostnames"] = {
            "type": "array", "maxItems": 16, "items": hostname,
        }
        found[(f"{GATEWAY_API}/{version}", "TLSRoute")] = {"schema": schema, "served": True}
        made.append(version)
    return made


def validate_schema(unit: Unit, crds: dict, rep: Report) -> None:
    for doc in unit.docs:
        where = f"{unit.name} {ident(doc)}"
        md = doc.get("metadata") or {}
        rep.check(
            bool(md.get("name") or md.get("generateName")), where, "metadata.name is missing"
        )
        for key in ("labels", "annotations"):
            values = md.get(key) or {}
            rep.check(
                all(isinstance(v, str) for v in values.values()),
                where,
                f"metadata.{key} values must all be strings",
            )
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if (api, kind) in crds:
            validator = jsonschema.Draft4Validator(crds[(api, kind)]["schema"])
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            rep.check(
                not errors,
                where,
                "; ".join(
                    f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}"
                    for e in errors[:5]
                ),
            )
            continue
        if any(a.split("/")[0] == api.split("/")[0] and k == kind for a, k in crds):
            rep.check(False, where, f"{api} is not a version of {kind} in the CRD schemas")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            rep.check(True, where, "")
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, getattr(e, "absolute_path", []) or []))
            rep.check(False, where, f"Kubernetes {KUBERNETES_VERSION} schema: {path}: {e.message[:300]}")
        except kubernetes_validate.SchemaNotFoundError:
            rep.check(False, where, f"no schema for {api} {kind} (not a built-in kind, no CRD)")
