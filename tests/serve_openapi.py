#!/usr/bin/python3
"""Checks recorded replies of `neardup serve` against doc/openapi.yaml.

Usage: serve_openapi.py SPEC EXCHANGES

EXCHANGES holds one JSON object per line: {"method", "route" (the path
template, e.g. /v1/images/{id}), "status", "ctype", "body" (a file)}.
Every reply must be declared in the spec (route, method, status), carry a
declared content type, and its JSON body must match the declared schema
(types, required members, enums, array items, $ref). Every operation of the
spec must have been exercised with a 2xx reply. Prints one line per problem
and exits 1 when there is any; not a test by itself (tests/e2e_serve.sh
runs it). Only the subset of JSON Schema the spec uses is implemented."""
import json
import sys

import yaml


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def check(spec, schema, value, where, problems):
    schema = resolve(spec, schema)
    t = schema.get("type")
    ok = {
        None: True,
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[t]
    if not ok:
        problems.append(f"{where}: {type(value).__name__} where the spec says {t}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if t == "object":
        for req in schema.get("required", []):
            if req not in value:
                problems.append(f"{where}: required member '{req}' missing")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                check(spec, sub, value[name], f"{where}.{name}", problems)
    if t == "array" and "items" in schema:
        for i, item in enumerate(value):
            check(spec, schema["items"], item, f"{where}[{i}]", problems)


def main():
    spec = yaml.safe_load(open(sys.argv[1]))
    problems = []
    seen_2xx = set()
    n = 0
    for line in open(sys.argv[2]):
        ex = json.loads(line)
        n += 1
        method, route, status = ex["method"].lower(), ex["route"], str(ex["status"])
        what = f"{ex['method']} {route} -> {status}"
        op = spec["paths"].get(route, {}).get(method)
        if op is None:
            problems.append(f"{what}: the spec has no such operation")
            continue
        resp = op["responses"].get(status)
        if resp is None:
            problems.append(f"{what}: status not declared (declared: {', '.join(op['responses'])})")
            continue
        if status.startswith("2"):
            seen_2xx.add((route, method))
        resp = resolve(spec, resp)
        content = resp.get("content", {})
        ctype = (ex.get("ctype") or "").split(";")[0].strip()
        if content and ctype not in content:
            problems.append(f"{what}: content type '{ctype}' not declared ({', '.join(content)})")
            continue
        if ctype == "application/json":
            try:
                body = json.load(open(ex["body"]))
            except ValueError as e:
                problems.append(f"{what}: body is not JSON: {e}")
                continue
            check(spec, content[ctype]["schema"], body, what, problems)
    for route, ops in spec["paths"].items():
        for method in ops:
            if method in ("get", "post", "delete", "put", "patch") and (route, method) not in seen_2xx:
                problems.append(f"{method.upper()} {route}: never answered with a 2xx in the test")
    for p in problems:
        print(p)
    print(f"{n} replies checked against the spec, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
