"""Write docs/config-reference.md from schema/pipeline.schema.json: the reference cannot drift from the
schema editors validate with (a test fails when the committed file is stale).

    python -m shared.deploy.reference            # rewrite docs/config-reference.md
    python -m shared.deploy.reference --check    # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = ROOT / "schema" / "pipeline.schema.json"
REFERENCE = ROOT / "docs" / "config-reference.md"


def _type(node: dict[str, Any]) -> str:
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{value}`" for value in node["enum"])
    kind = node.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map of " + _type(node["additionalProperties"])
    return str(kind)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: dict[str, Any], path: str, required: set[str], rows: list[list[str]]) -> None:
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        default = f"`{json.dumps(child['default'])}`" if "default" in child else ""
        rows.append(
            [
                f"`{here}`" + (" (required)" if name in required else ""),
                _type(child),
                default,
                _cell(child.get("description", "")),
            ]
        )
        target = child.get("items", child) if child.get("type") == "array" else child
        if target.get("properties"):
            _rows(
                target,
                here + ("[]" if child.get("type") == "array" else ""),
                set(target.get("required", [])),
                rows,
            )


def reference(schema: dict[str, Any]) -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from [`schema/pipeline.schema.json`](../schema/pipeline.schema.json) by",
        "`python -m shared.deploy.reference`; do not edit by hand. The same schema validates `pipeline.yaml`",
        "in your editor (README, Configuration); `python -m shared.config check` checks what it cannot:",
        "cross references (a dataset's model, a service's model) and the wiring with `main.py`.",
        "",
        schema.get("description", ""),
        "",
    ]
    spec = schema["properties"]["spec"]
    top: list[list[str]] = []
    root_node = {"properties": {k: v for k, v in schema["properties"].items() if k != "spec"}}
    _rows(root_node, "", set(schema.get("required", [])), top)
    scalars = {k: v for k, v in spec["properties"].items() if v.get("type") not in ("object", "array")}
    _rows({"properties": scalars}, "spec", set(spec.get("required", [])), top)
    sections = [("Document", top)]
    for name, child in spec["properties"].items():
        if name in scalars:
            continue
        rows: list[list[str]] = []
        _rows({"properties": {name: child}}, "spec", set(spec.get("required", [])), rows)
        sections.append((f"spec.{name}", rows))
    for title, rows in sections:
        lines.extend([f"## {title}", "", "| field | type | default | meaning |", "|---|---|---|---|"])
        lines.extend("| " + " | ".join(row) + " |" for row in rows)
        lines.append("")
    duration = schema["$defs"]["duration"]["description"]
    lines.extend(["## Types", "", f"* **duration**: {duration}", ""])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.deploy.reference", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/config-reference.md is stale")
    args = parser.parse_args(argv)
    text = reference(json.loads(SCHEMA.read_text(encoding="utf-8")))
    if args.check:
        current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.is_file() else ""
        if current != text:
            print(f"{REFERENCE} is stale: run python -m shared.deploy.reference", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
