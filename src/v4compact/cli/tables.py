"""Plain-text tables on standard output, as the listing subcommands print them."""

from __future__ import annotations


def print_table(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> None:
    """Print ``rows`` (the first is the header, underlined) in aligned columns, the columns
    numbered in ``right`` right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
