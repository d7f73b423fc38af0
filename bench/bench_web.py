"""Server time of the bench board and of a step page on a database of 10,000 released
batches (and 24 under way), as a ratio to a page that renders an empty template through
the same stack (session cookie resumed, services opened, security headers).

The board reads the batch list from the query table (no released batch is folded) and
folds each batch under way; a step page folds one batch. Neither should grow with the
history: the goal is each under 50 ms at the median. Requests go through Starlette's test
client in this process (no network); each is timed from the client's call to its answer.
Prints times and ratios, never pass/fail.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import PASSWORD, REPO, STANDARD, Clock, approve_file, run_to, seed_people
from test_scale import copy_history, released_template

from cmprep.domain import people
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route
    from starlette.testclient import TestClient

from cmprep.web.app import _endpoint, create_app
from cmprep.web.shell import SIGNED_IN, Req, WebRoute
from cmprep.web.templating import environment

RELEASED = 10_000
UNDER_WAY = 24  # spread over the steps, as a busy lab's board
ROUNDS = 40
STOPS = ["expansion", "conditioning", "collection", "spin", "filtration", "qc"]


def build(db: Path) -> tuple[Services, Clock]:
    clock = Clock()
    svc = seed_people(Services(SQLiteStore(db, create=True), clock=clock))
    approve_file(svc, REPO / "protocols" / f"{STANDARD}.yaml")
    released_template(svc, clock, "TEMPLATE")
    t0 = time.perf_counter()
    copy_history(svc, clock, "TEMPLATE", RELEASED - 1)
    print(f"built {RELEASED} released batches in {time.perf_counter() - t0:.0f} s")
    for i in range(UNDER_WAY):
        clock.advance(minutes=20)
        batch = f"NOW-{i:02d}"
        svc.batches.start(STANDARD, "alice", batch)
        run_to(svc, clock, batch, STOPS[i % len(STOPS)])
    return svc, clock


def empty(r: Req) -> Response:
    return HTMLResponse(environment().from_string("").render())


def timed(client: TestClient, url: str) -> float:
    runs = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        answer = client.get(url)
        runs.append(time.perf_counter() - t0)
        assert answer.status_code == 200, (url, answer.status_code)
    return statistics.median(runs)


def main() -> None:
    people.SCRYPT_N = 2**8  # people are set up, not timed: cheap password hashes
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        svc, clock = build(db)
        svc.close()
        app = create_app(lambda: Services(SQLiteStore(db), clock=clock))
        route = WebRoute("GET", "/bench/empty", empty, SIGNED_IN)
        app.router.routes.insert(0, Route(route.path, _endpoint(app.state.web, route)))
        client = TestClient(app, follow_redirects=False)
        form = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf
        signed = client.post(
            "/login", data={"csrf": csrf.group(1), "name": "alice", "password": PASSWORD}
        )
        assert signed.status_code == 303
        board_rows = client.get("/").text.count('<li class="card')
        base = timed(client, "/bench/empty")
        board = timed(client, "/")
        step = timed(client, "/batches/NOW-03/steps/spin")
    print(f"empty template, same stack: median {base * 1000:.1f} ms")
    print(
        f"bench board ({board_rows} batches shown, {RELEASED} released skipped): "
        f"median {board * 1000:.1f} ms  ({board / base:.1f}x)"
    )
    print(f"step page (spin):      median {step * 1000:.1f} ms  ({step / base:.1f}x)")


if __name__ == "__main__":
    main()
