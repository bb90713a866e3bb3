"""Rebuild ``noaa_weather.csv`` from the dataset's source copy: add the event time, nothing else.

The source has no calendar dates, only ``day_index`` (the position in time order of the recorded days);
one day per row from 1949-01-01 is the event time (``date``), inserted after ``day_index``, which stays
as the event key. Every other field is copied as text, unchanged.

    python examples/noaa-weather/prepare.py SOURCE.csv [OUT.csv]
"""

from __future__ import annotations

import csv
import sys
from datetime import date, timedelta
from pathlib import Path

FIRST_DAY = date(1949, 1, 1)


def prepare(source: Path, out: Path) -> int:
    """Write ``out`` with a ``date`` column after ``day_index``; return the number of rows."""
    with source.open(newline="") as src, out.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
        header = next(reader)
        writer.writerow([header[0], "date", *header[1:]])
        rows = 0
        for row in reader:
            day = FIRST_DAY + timedelta(days=int(row[0]))
            writer.writerow([row[0], day.isoformat(), *row[1:]])
            rows += 1
    return rows


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else here / "noaa_weather.csv"
    print(f"{prepare(Path(sys.argv[1]), target)} rows -> {target}")
