"""``python -m tests.support.mutation``: the scores of the last mutation run, per module.

mutmut (``make mutate``) keeps each mutant's result in ``mutants/<module>.py.meta``: the exit
code of the tests run against it. This reads those files and prints, for every mutated
module, how many mutants the unit tests killed, and lists the survivors (``--survivors``),
which ``mutmut show <name>`` displays as a diff.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mutmut.stats import status_by_exit_code

MUTANTS = Path("mutants")


@dataclass(frozen=True)
class Score:
    module: str
    killed: int
    survived: int
    timed_out: int
    untested: int
    pending: int

    @property
    def total(self) -> int:
        return self.killed + self.survived + self.timed_out + self.untested + self.pending

    @property
    def score(self) -> float:
        """Killed (timeouts count as caught) over all mutants that were run."""
        run = self.killed + self.survived + self.timed_out + self.untested
        return (self.killed + self.timed_out) / run if run else 0.0


def scores(root: Path = MUTANTS) -> tuple[list[Score], list[str]]:
    """The score of every module with results, and the names of the surviving mutants."""
    results: list[Score] = []
    survivors: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts: Counter[str] = Counter()
        for name, code in codes.items():
            status = status_by_exit_code[code]
            if status == "not checked":
                counts["pending"] += 1
            elif status in ("killed", "caught by type check"):
                counts["killed"] += 1
            elif status == "timeout":
                counts["timed_out"] += 1
            elif status == "no tests":
                counts["untested"] += 1
                survivors.append(name)
            else:  # survived, or suspicious: the tests passed or said nothing clear
                counts["survived"] += 1
                survivors.append(name)
        module = str(meta.relative_to(root)).removesuffix(".meta")
        results.append(
            Score(
                module,
                counts["killed"],
                counts["survived"],
                counts["timed_out"],
                counts["untested"],
                counts["pending"],
            )
        )
    return results, sorted(survivors)


def table(results: list[Score]) -> str:
    lines = [
        "| module | mutants | killed | survived | no test | score |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for s in results:
        if s.pending == s.total:
            continue  # not run this time (make mutate ARGS=... ran other modules)
        caught = s.killed + s.timed_out
        lines.append(
            f"| `{s.module}` | {s.total} | {caught} | {s.survived} | {s.untested} | {s.score:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    results, survivors = scores()
    if not results:
        raise SystemExit("no mutation results: run `make mutate` first")
    print(table(results))
    if args.survivors:
        print("\n".join(["", *survivors]))


if __name__ == "__main__":
    main()
