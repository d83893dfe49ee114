"""Command line: infer a starting schema from a sample, or check a file against a schema.

    python -m shared.validation infer SAMPLE.csv [--name churn] > schemas/churn.yaml
    python -m shared.validation check schemas/churn.yaml DATA.csv [--json]

``check`` exits 0 when the file is valid, 1 when it is not (the failures on stdout), 2 when the schema or
the arguments are wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.errors import ConfigError, InvalidInput
from shared.validation import infer as inference
from shared.validation import load_schema, validate
from shared.validation.schema import FORMATS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.validation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    infer = commands.add_parser("infer", help="print a starting schema (YAML) inferred from a sample file")
    infer.add_argument("sample", help="a CSV or JSONL file (.gz too); - reads stdin")
    infer.add_argument("--name", help="the schema's name (default: the file's stem)")
    infer.add_argument("--format", choices=FORMATS, help="the sample's format (default: from its name)")
    infer.add_argument("--delimiter", default=",", help="CSV delimiter (default ,)")
    infer.add_argument(
        "--max-allowed",
        type=int,
        default=inference.DEFAULT_MAX_ALLOWED,
        help="string columns with at most this many distinct values get an allowed list (%(default)s)",
    )
    infer.add_argument(
        "--min-rows", type=int, help="rows.min (default: 5%% of the sample's rows, at least 1)"
    )
    infer.add_argument(
        "--margin", type=float, default=0.0, help="widen numeric min/max by this fraction of their span"
    )
    check = commands.add_parser("check", help="validate a file against a schema and print the failures")
    check.add_argument("schema", help="a schema file (YAML)")
    check.add_argument("data", help="the file to check")
    check.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)

    if args.command == "infer":
        data = sys.stdin.buffer.read() if args.sample == "-" else _read(args.sample)
        name = "stdin" if args.sample == "-" else Path(args.sample).name
        try:
            schema = inference.infer(
                data,
                name,
                schema_name=args.name,
                data_format=args.format,
                delimiter=args.delimiter,
                max_allowed=args.max_allowed,
                min_rows=args.min_rows,
                margin=args.margin,
            )
        except (InvalidInput, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        sys.stdout.write(inference.to_yaml(schema))
        return 0

    try:
        schema = load_schema(args.schema)
    except ConfigError as error:
        print("\n".join(error.problems), file=sys.stderr)
        return 2
    report = validate(_read(args.data), Path(args.data).name, schema)
    sys.stdout.write(report.to_json() if args.json else report.summary(limit=len(report.failures)) + "\n")
    return 0 if report.valid else 1


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SystemExit(f"error: cannot read {path}: {error.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
