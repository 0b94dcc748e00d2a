"""Summaries of py-spy's raw (collapsed) stacks: where a sampled process spends its time.

    .venv/bin/python benchmarks/stacks.py FILE [--top N]

Each line of a raw file is `frame;frame;...;leaf COUNT`, the first frame naming the
thread's entry point. Prints the share of samples per thread entry, per leaf function
("self") and per function anywhere on the stack ("inclusive").
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable


def summarise(lines: Iterable[str], top: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no samples"
    out = [f"{total} samples", "self (leaf function):"]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    out.append("inclusive (anywhere on the stack):")
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with open(args.file) as raw:
        print(summarise(raw, args.top))


if __name__ == "__main__":
    main()
