"""Write a small synthetic classification CSV (deterministic): `python make_data.py OUT.csv`.

Four numeric features; ``label`` is ``yes`` when a noisy linear score is positive. ``--shift`` moves the
feature distribution (to imitate drift); ``--rows`` sets the size.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys


def make_csv(rows: int = 400, seed: int = 7, shift: float = 0.0) -> str:
    generator = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["f1", "f2", "f3", "f4", "label"])
    for _ in range(rows):
        values = [generator.gauss(shift, 1.0) for _ in range(4)]
        score = 1.5 * values[0] - 2.0 * values[1] + 0.5 * values[2] + generator.gauss(0, 0.5)
        writer.writerow([f"{value:.4f}" for value in values] + ["yes" if score > 0 else "no"])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output path, or - for stdout")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shift", type=float, default=0.0)
    args = parser.parse_args(argv)
    text = make_csv(args.rows, args.seed, args.shift)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
