"""Our unit table vs pint, measured in the same run: first use and per-value parsing.

pint is not a dependency; `make bench` installs it into the virtualenv to compare. The
table wins on start-up (what a technician feels per command) and reads a lab's spellings
("400 g" as x g, "37 degC") that pint reads otherwise or not at all.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

SAMPLES = ["48 h", "2 d", "0.22 um", "220 nm", "400 x g", "75 %", "1.2 ng/mL", "37 degC"]


def first_use(code: str) -> float:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    bare = first_use("pass")
    ours_first = first_use(
        "from cmprep.protocol.units import parse_quantity; parse_quantity('48 h', 'min')"
    )
    print(f"python -c pass:                         {bare * 1000:6.0f} ms")
    print(f"cmprep units, import + first parse:      {ours_first * 1000:6.0f} ms")
    from cmprep.protocol.units import parse_quantity

    t0 = time.perf_counter()
    n = 0
    for _ in range(2000):
        for s, u in zip(SAMPLES, ["min", "h", "um", "um", "x g", "%", "pg/mL", "°C"], strict=True):
            parse_quantity(s, u)
            n += 1
    ours_each = (time.perf_counter() - t0) / n
    print(f"cmprep units, per value:                 {ours_each * 1e6:6.1f} us")
    try:
        import pint
    except ImportError:
        print("pint not installed: `pip install pint` to compare")
        return
    pint_first = first_use("import pint; u = pint.UnitRegistry(); u.Quantity('48 h').to('min')")
    print(
        f"pint, import + registry + first parse:   {pint_first * 1000:6.0f} ms  "
        f"({pint_first / ours_first:.1f}x ours)"
    )
    import pint

    ureg = pint.UnitRegistry()
    t0 = time.perf_counter()
    n = 0
    for _ in range(200):
        for s, u in (("48 h", "min"), ("0.22 um", "um"), ("220 nm", "um"), ("75 %", "percent")):
            ureg.Quantity(s).to(u)
            n += 1
    pint_each = (time.perf_counter() - t0) / n
    print(
        f"pint, per value:                         {pint_each * 1e6:6.1f} us  "
        f"({pint_each / ours_each:.0f}x ours)"
    )
    print(f"pint reads '400 g' as: {ureg.Quantity('400 g').dimensionality} (grams, not x g)")
    try:
        ureg.Quantity("37 degC")
        print("pint parsed '37 degC'")
    except Exception as err:  # the offset-unit error a lab would hit
        print(f"pint on '37 degC': {type(err).__name__}")


if __name__ == "__main__":
    main()
