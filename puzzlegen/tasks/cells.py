"""Names of grid cells ("top-left", ..., "center") and the other spellings a person would accept."""

from __future__ import annotations

_ROWS = {1: ("",), 2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
_COLS = {1: ("",), 2: ("left", "right"), 3: ("left", "center", "right")}
_SYNONYMS = {
    "top": ("top", "upper"),
    "bottom": ("bottom", "lower"),
    "middle": ("middle", "center", "centre"),
    "center": ("center", "centre", "middle"),
    "left": ("left",),
    "right": ("right",),
    "": ("",),
}


def cell_names(rows: int, cols: int) -> list[str] | None:
    """Names of the cells in reading order ("top-left", ..., "center"), or None past 3 x 3."""
    if rows not in _ROWS or cols not in _COLS or rows * cols < 2:
        return None
    names = []
    for r in _ROWS[rows]:
        for c in _COLS[cols]:
            names.append("center" if (r, c) == ("middle", "center") else "-".join(w for w in (r, c) if w))
    return names


def cell_aliases(rows: int, cols: int, suffixes: tuple[str, ...] = ("", " cell")) -> dict[str, list[str]]:
    """Other spellings a person would accept for each cell: upper/lower, centre, "left top", "... corner".

    Spellings that normalise alike ("top left", "Top-Left") are left to the verifier's normalisation.
    """
    aliases = {}
    for i, name in enumerate(cell_names(rows, cols) or []):
        r, c = _ROWS[rows][i // cols], _COLS[cols][i % cols]
        if name == "center":
            spellings = {"center", "centre", "middle", "central", "middle center", "center middle"}
        else:
            spellings = {f"{a} {b}".strip() for a in _SYNONYMS[r] for b in _SYNONYMS[c]}
            spellings.add(f"{c} {r}".strip())
        ends = suffixes + ((" corner",) if r in ("top", "bottom") and c in ("left", "right") else ())
        ends += (" quadrant",) if (rows, cols) == (2, 2) else ()
        aliases[name] = sorted({s + e for s in spellings for e in ends} - {name.replace("-", " ")})
    return aliases
