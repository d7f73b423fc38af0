"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against
`cmprep serve` started as its own process on a free loopback port over a fresh database.

At a tablet's two viewports (1024x768 landscape, 768x1024 portrait) a technician signs in
with the keyboard alone and records a whole batch of a bundled protocol by tapping and
typing: late entries for the first steps (conditioning 48 h ago, so the collection falls in
its 24-72 h window now), a centrifuge scanned with a keyboard-wedge reader and a spin
typed in rpm (converted with the rotor radius: 701 x g, out of spec, kept with a reason),
a scanned filter lot, a branch arm chosen. A second person verifies filtration and QC on
the same tablet with their own password. QA reviews, decides the deviation, signs the
review and releases with their password, and the record page shows it all.

On every page: each input has a label, each control is at least 44 px (inline links in
running text are exempt, as WCAG 2.5.8 exempts them), and nothing the person typed turns
into markup. Screenshots of each page go to test-output/web/ (git-ignored).

The browser is never downloaded: without /usr/bin/chromium (Debian's `chromium` package)
the test is skipped with the reason, unless $CMPREP_REQUIRE_BROWSER is set (CI), where it
fails instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, REPO, STANDARD, approve_file, present

from cmprep.domain import people
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"landscape": (1024, 768), "portrait": (768, 1024)}
OUT = REPO / "test-output" / "web"
MIN_TARGET = 44  # px, WCAG 2.5.5 (enhanced) and the usual tablet guideline


def _unavailable(reason: str) -> None:
    if os.environ.get("CMPREP_REQUIRE_BROWSER"):
        pytest.fail(f"CMPREP_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable("no /usr/bin/chromium: install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install '.[dev]')")
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield found
        found.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmprep(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "cmprep", *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cmprep serve` on a fresh database: made with `cmprep init`, then the lab's people,
    the standard protocol approved, a filter lot, a centrifuge with its rotor radius and a
    biosafety cabinet."""
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "lab.db"
    env = {**os.environ, "CMPREP_SESSIONS": str(folder / "sessions")}
    env.pop("CMPREP_DB", None)
    _cmprep(
        "init", "--db", str(db), "--admin", "root", "--full-name", "Ada Admin",
        "--password-stdin", stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(people, "SCRYPT_N", 2**10)  # the others' hashes: cheaper, still real
        app = Services(SQLiteStore(db))
        for name, full, role in (
            ("alice", "Alice Archer", "technician"),
            ("bob", "Bob Baker", "technician"),
            ("rita", "Rita Reviewer", "reviewer"),
            ("quinn", "Quinn Quality", "qa"),
        ):
            app.people.add(name, full, role, PASSWORD, "root", PASSWORD)
        present(app)
        approve_file(app, REPO / "protocols" / f"{STANDARD}.yaml")
        app.materials.register_lot("F-1", "filter", "2099-12-31", "alice")
        app.materials.register_equipment(
            "CF-02", "centrifuge", "2099-12-31", "alice", rotor_radius_cm=16.5
        )
        app.materials.register_equipment("BSC-1", "biosafety cabinet", "2099-12-31", "alice")
        app.close()
    port = _free_port()
    from cmprep.cli import COMMANDS

    if "serve" in COMMANDS:
        command = [sys.executable, "-m", "cmprep", "serve"]
    else:  # until the command table names it
        command = [sys.executable, "-c", "from cmprep.cli.serve import serve; serve()"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--db", str(db)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/login", timeout=1) as answer:
                    assert answer.status == 200
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"cmprep serve did not start: {output}")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# --- checks on every page ---------------------------------------------------------------------
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.name || el.id || el.outerHTML.slice(0, 60))"""

SMALL = """(min) => {
  const targets = 'button, .button, select, textarea, summary, nav a, .card-link, '
    + '.due-line a, .crumbs a, td a, input:not([type=hidden])';
  const small = [];
  for (const el of document.querySelectorAll(targets)) {
    const style = getComputedStyle(el);
    if (el.offsetParent === null || style.visibility === 'hidden') continue;
    let box = el.getBoundingClientRect();
    if (el.type === 'checkbox' || el.type === 'radio') {
      const label = el.closest('label');   // the label is the target of a tick box
      if (label) box = label.getBoundingClientRect();
    }
    if (box.width < min || box.height < min)
      small.push((el.textContent || el.name || el.tagName).trim().slice(0, 40)
                 + ' ' + Math.round(box.width) + 'x' + Math.round(box.height));
  }
  return small;
}"""


class Bench:
    """One tablet: a page, its screenshots, and the checks every page passes."""

    def __init__(self, page: Any, base: str, view: str) -> None:
        self.page = page
        self.base = base
        self.view = view
        self.shots = 0
        self.console: list[str] = []  # a script or style the CSP blocked would show here
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console.append(str(e)))

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        assert self.page.evaluate(UNLABELLED) == [], f"{name}: inputs without a label"
        assert self.page.evaluate(SMALL, MIN_TARGET) == [], f"{name}: targets under 44 px"
        html = self.page.content()
        assert "<script>alert(1)</script>" not in html
        self.shots += 1
        OUT.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(OUT / f"{self.view}-{self.shots:02d}-{name}.png"))

    def go(self, path: str, name: str) -> None:
        self.page.goto(self.base + path)
        self.check(name)

    def click(self, text: str, name: str) -> None:
        self.page.get_by_role("link", name=text).or_(
            self.page.get_by_role("button", name=text)
        ).first.click()
        self.check(name)

    def fill(self, fields: dict[str, str], within: str = "body") -> None:
        root = self.page.locator(within)
        for name, value in fields.items():
            el = root.locator(f"[name={name}]")
            if el.first.get_attribute("type") == "radio":
                root.locator(f"[name={name}][value={value}]").check()
            elif el.evaluate("e => e.tagName") == "SELECT":
                el.select_option(value)
            else:
                el.fill(value)

    def tick_all(self) -> None:
        for box in self.page.locator("input[name^=check_]").all():
            box.check()

    def save(self, name: str) -> None:
        self.page.locator("form.step-form button[type=submit]").click()
        self.check(name)
        assert "Nothing was saved" not in self.page.content(), self.page.content()[:4000]

    def sign_in_with_the_keyboard(self, name: str) -> None:
        self.go("/login", "sign-in")
        keyboard = self.page.keyboard
        keyboard.type(name)  # the name field has the focus
        keyboard.press("Tab")
        keyboard.type(PASSWORD)
        with self.page.expect_navigation():
            keyboard.press("Enter")
        assert self.page.url == self.base + "/", self.page.content()[-3000:]
        self.check("board")


def _late(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")


def _record_batch(t: Bench, batch_id: str) -> str:
    """alice records the whole batch; returns the id of the deviation she opened."""
    page = t.page
    t.sign_in_with_the_keyboard("alice")
    t.click("Start a batch", "start")
    t.fill({"batch_id": batch_id})
    t.click("Start the batch", "batch")
    now = datetime.now(timezone.utc)
    steps = [
        ("isolation", {"v_source_tissue": "UC", "v_donor_id": "UC-D-0193"}, 50),
        (
            "expansion",
            {
                "v_passage": "3",
                "v_confluence": "75",
                "v_viability": "95",
                "v_basal_medium": "DMEM",
                "v_fbs_percent": "10",
                "v_seeding_density": "4000",
            },
            49,
        ),
        ("pbs_wash", {"v_washes": "3", "v_pbs_lot": "PBS-7"}, 48.5),
        (
            "conditioning",
            {
                "v_serum_percent": "0",
                "v_medium": "serum-free DMEM",
                "v_incubator_temp": "37",
                "v_vessels": "14",
                "v_vessel_area": "175",
                "v_medium_volume": "36 mL",
                "v_cell_count": "4.9e7",
                "v_viability_start": "95",
            },
            48,
        ),
    ]
    for step, values, hours_ago in steps:
        t.click(page.locator("a.button.primary.big").first.inner_text(), f"step-{step}")
        t.tick_all()
        t.fill(values)
        page.locator("summary", has_text="Late entry").click()
        page.locator("input[name=late]").check()
        t.fill(
            {
                "at": _late(now - timedelta(hours=hours_ago)),
                "late_reason": "written on the sheet in the cabinet",
            }
        )
        t.save(f"saved-{step}")
        assert "late entry" in page.content()
    # collection: now, 48 h after conditioning, inside its 24-72 h window
    t.click("Collection of conditioned medium", "step-collection")
    assert "window open" in page.content()
    t.tick_all()
    t.fill(
        {
            "v_volume": "500 mL",
            "v_vessels_pooled": "4",
            "v_cell_count": "4.5e7",
            "v_viability": "92",
            "v_mycoplasma_sampled": "yes",
            "v_mycoplasma_sample_id": "MY-1",
        }
    )
    t.save("saved-collection")
    # spin: the centrifuge scanned (the reader types its id and Enter), the speed in rpm
    t.click("Low-speed spin to remove cells and debris", "step-spin")
    scan = page.locator("#eq_0")
    assert scan.evaluate("el => el === document.activeElement"), "the scan field has the focus"
    page.keyboard.type("CF-02")
    page.keyboard.press("Enter")  # moves on, does not send the form
    page.wait_for_function("document.activeElement && document.activeElement.id !== 'eq_0'")
    assert page.url.endswith("/steps/spin")
    page.locator("#m-eq_0", has_text="rotor 16.5 cm").wait_for()
    t.tick_all()
    t.fill({"v_rcf": "1950 rpm", "v_duration": "10", "v_temperature": "4"})
    page.locator("#m-v_rcf", has_text="out of spec").wait_for()
    assert "701" in page.locator("#m-v_rcf").inner_text()
    page.locator("[data-keep]").wait_for(state="visible")
    t.check("spin-judged")
    page.locator("input[name=keep]").check()
    t.fill({"keep_reason": "rotor setting confirmed with the supervisor"})
    t.save("saved-spin")
    assert "opened (major)" in page.content()
    deviation = page.locator("section.saved a[href^='/deviations/']").first.inner_text()
    t.click(f"Investigate {deviation}", "investigate")
    t.fill(
        {
            "justification": "rpm set instead of x g on CF-02",
            "impact": "cells pelleted; supernatant clear",
        }
    )
    t.click("Save the investigation", "investigated")
    t.go(f"/batches/{batch_id}", "batch-after-spin")
    # filtration: the filter lot scanned, then the cabinet
    t.click("Sterile filtration (0.22 um)", "step-filtration")
    page.keyboard.type("F-1")
    page.keyboard.press("Enter")
    page.keyboard.type("BSC-1")
    page.keyboard.press("Enter")
    page.locator("#m-lot_0", has_text="filter lot F-1").wait_for()
    t.tick_all()
    t.fill(
        {
            "v_pore_size": "0.22 um",
            "v_integrity_test_passed": "yes",
            "v_filter_lot": "F-1",
            "v_filtrate_volume": "490 mL",
        }
    )
    t.save("saved-filtration")
    # the branch: choose concentration
    assert "Choose one arm" in page.content()
    t.click("Concentration by ultrafiltration", "step-concentrate")
    t.tick_all()
    t.fill(
        {
            "v_mwco": "3 kDa",
            "v_final_volume": "40 mL",  # 500 mL / 40 mL: the factor 12.5 is computed
            "v_device_lot": "UF-1",
            "v_storage_temperature": "-80",
            "v_container": "sterile cryovial",
            "v_aliquots": "20",
            "v_expiry": "2027-11-01T00:00Z",
        }
    )
    t.save("saved-concentrate")
    t.click("Characterisation and release QC", "step-qc")
    t.tick_all()
    t.fill(
        {
            "v_sterility_passed": "yes",
            "v_endotoxin": "0.1 EU/mL",
            "v_mycoplasma_passed": "yes",
            "v_vegf": "0.31 ng/mL",
            "v_vegf_blank": "5 pg/mL",
            "v_qc_report_id": "QC-2026-118",
        }
    )
    t.save("saved-qc")
    return deviation


def _verify(t: Bench, batch_id: str) -> None:
    """bob verifies filtration and QC on alice's tablet, with his own password."""
    for title in ("Sterile filtration (0.22 um)", "Characterisation and release QC"):
        t.go(f"/batches/{batch_id}", "batch-to-verify")
        t.click(f"Verify {title}", "verify")
        assert "Meaning of this signature (verified)" in t.page.content()
        t.fill({"verifier": "bob", "password": PASSWORD})
        t.click("Sign: verified", "verified")
        assert "Verification signed." in t.page.content()
    t.click("Sign out", "signed-out")


def _release(t: Bench, batch_id: str, deviation: str) -> None:
    page = t.page
    t.sign_in_with_the_keyboard("quinn")
    page.locator(f"a[href='/batches/{batch_id}/review']").click()
    t.check("review")
    assert "Out of specification (1)" in page.content()
    t.click(deviation, "deviation")
    t.fill(
        {
            "reason": "no impact on the product: supernatant clear, filtration passed",
            "capa": "retrain on x g settings; label CF-02 in x g",
            "password": PASSWORD,
        }
    )
    t.click("Sign the decision", "deviation-closed")
    t.go(f"/batches/{batch_id}/review", "review-again")
    t.fill({"comment": "record complete; DEV closed", "password": PASSWORD}, within="#sign")
    page.locator("#sign button").click()
    t.check("reviewed")
    page.locator("#release input[name=password]").fill(PASSWORD)
    page.locator("#release button").click()
    t.check("record")
    text = page.content()
    assert "Batch released." in text
    for shown in (
        batch_id,
        "UC-D-0193",
        "1950 rpm",
        "701",
        deviation,
        "LATE ENTRY",
        "Bob Baker",
        "Quinn Quality",
        "F-1",
        "CF-02",
        "retrain on x g settings",
    ):
        assert shown in text, shown
    t.click("Back", "batch-released")
    assert "released" in page.content()


@pytest.mark.parametrize("view", sorted(VIEWPORTS))
def test_a_whole_batch_at_the_bench_in_a_real_browser(browser, server, view):
    width, height = VIEWPORTS[view]
    context = browser.new_context(
        viewport={"width": width, "height": height}, timezone_id="UTC", locale="en-GB"
    )
    context.set_default_timeout(10_000)
    try:
        t = Bench(context.new_page(), server, view)
        batch_id = f"WEB-{view.upper()}"
        deviation = _record_batch(t, batch_id)
        _verify(t, batch_id)
        _release(t, batch_id, deviation)
        assert t.console == [], t.console
    finally:
        context.close()


def test_the_pages_work_without_javascript(browser, server):
    """No script: the form is sent as it is, judged on the server, and an out-of-spec
    value asks for the explicit keep on the page that comes back."""
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, timezone_id="UTC", java_script_enabled=False
    )
    context.set_default_timeout(10_000)
    try:
        t = Bench(context.new_page(), server, "no-script")
        page = t.page
        t.go("/login", "sign-in")
        t.fill({"name": "alice", "password": PASSWORD})
        t.click("Sign in", "board")
        t.click("Start a batch", "start")
        t.fill({"batch_id": "WEB-NOSCRIPT"})
        t.click("Start the batch", "batch")
        t.click("MSC source and donor identity", "step-isolation")
        assert (
            page.locator("[data-print]").count() == 0
            or not page.locator("[data-print]").is_visible()
        )
        t.fill({"v_source_tissue": "WJ", "v_donor_id": "WJ-0007"})
        page.locator("form.step-form button[type=submit]").click()
        t.check("judged")
        assert "Out of specification: nothing was saved yet" in page.content()
        assert page.locator("[data-keep]").is_visible()
        page.locator("input[name=keep]").check()
        t.fill({"keep_reason": "study of Wharton's jelly MSCs, approved by QA"})
        t.save("saved")
        assert "DEV-" in page.content() and "opened (critical)" in page.content()
    finally:
        context.close()
