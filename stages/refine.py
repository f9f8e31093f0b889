"""DVC stage ``refine@<category>``: refined part-level instance maps (docs/method.md 2.3, bugs fixed).

    python stages/refine.py --category pushpins

Fine mode: proposals, optionally kept only inside the grounding foreground, minus both backgrounds, then
Combine & Filter. Coarse mode: grounding instances split into connected components, then Combine & Filter.
Params ``refine`` (mode and use_grounding_filter per category via ``refine.overrides``).
Writes ``data/refined/<category>/instances/<stem>.png`` and ``summary.json``.
"""

from __future__ import annotations

from csad.pipeline import refine
from csad.pipeline.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Refine the proposals of every train image of one category."""
    refine.run(load_stage(argv, __doc__, "refine"))


if __name__ == "__main__":
    run_stage(main)
