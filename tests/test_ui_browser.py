"""The MLflow UI in a real browser: headless Chromium opens `scal ui` on the session's toy smoke
study and checks what the React app renders, not the HTML shell the server sends (that shell is the
same for every page; the runs, charts and versions only exist once the app has fetched and drawn them):

- the runs table lists the study (parent) run, its trials grouped under it until it is expanded;
- the study run's page lists ``best_val_error`` and charts it with one point per subset, x = m;
- the chart view, configured as docs/ui.md says (x = step, log scale on both axes), draws the
  learning curve on log-log axes;
- a subset's trials, filtered and sorted with the trial-hash column shown, include its best-fit
  trial, the one whose hash the registered version carries;
- the registered model's page lists its versions and the ``@largest`` alias.

Chromium is Debian's (``apt-get install chromium``; .ci/run installs it where it is missing), driven
by Playwright through ``executable_path``, so nothing downloads. Without it these tests skip and say
why. Locators use what MLflow's own UI names (test ids, roles, aria labels) in the pinned 3.17.

Screenshots for docs/ui.md::

    SCAL_UI_SCREENSHOTS=docs/img .venv/bin/pytest -q tests/test_ui_browser.py

writes them (1400x900 viewport, palette PNGs). It changes no assertion; it only adds a second toy
study (seed 1, one more hidden layer in its grid, not registered) to the copied store first, so the
chart view has two curves to compare.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, free_port, run_cli, sqlite_uri, wait_http
from scal import keys

CHROMIUM = shutil.which("chromium")
SHOTS = os.environ.get("SCAL_UI_SCREENSHOTS")
VIEWPORT = {"width": 1400, "height": 900}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                                                ".ci/run installs it), so the UI cannot be opened in a browser"),
]

# Chromium as root in a container, on a closed network: no sandbox, no GPU, and none of the
# background connections (updates, sync, QUIC probes) that the network would refuse.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# The MLflow 3 UI's own stored preferences (localStorage, key ``<name>_v1``): its Assistant panel
# opens on a first visit and would cover a third of the page, and the sidebar defaults to GenAI.
UI_PREFERENCES = """
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
"""

CHILD_NAME = re.compile(r"^m(\d+)-")          # trial runs are named m<subset size>-<knobs>-lr..-s<seed>
RUN_NAME_CELL = ".ag-pinned-left-cols-container [col-id='attributes.`Run Name`']"
CHART_CARD = "experiment-view-compare-runs-card"


def _copy_store(src_uri: str, dest: Path) -> str:
    """A copy of the sqlite store (the session's study stays as other tests expect it); its runs
    keep pointing at the original artifacts, which the UI only reads."""
    dst_uri = sqlite_uri(dest)
    src, dst = (sqlite3.connect(u.removeprefix("sqlite:///")) for u in (src_uri, dst_uri))
    try:
        src.backup(dst)    # sqlite's online backup: a consistent copy, whatever is mid-write
    finally:
        src.close()
        dst.close()
    return dst_uri


@pytest.fixture(scope="module")
def study(toy_study, tmp_path_factory):
    """What the pages must show, read from the store with MlflowClient."""
    d = tmp_path_factory.mktemp("ui_browser")
    uri = _copy_store(toy_study["uri"], d)
    s = toy_study["summary"]
    client = MlflowClient(uri, uri)
    parent = client.get_run(s["parent_run_id"])
    children = client.search_runs([s["experiment_id"]], f"tags.`{keys.PARENT}` = '{parent.info.run_id}'",
                                  max_results=10_000)
    name = s["registered_model"]
    largest = client.get_model_version_by_alias(name, keys.ALIAS_LARGEST)
    info = {
        "dir": d, "uri": uri, "experiment_id": s["experiment_id"], "parent_id": parent.info.run_id,
        "parent_name": parent.info.run_name, "child_names": {c.info.run_name for c in children},
        "curve": {x["size"]: x["val_error"] for x in s["subsets"]}, "model": name,
        "versions": {int(v): str(n) for v, n in s["registered_versions"].items()},   # subset size -> version
        "largest": largest.version, "largest_source": client.get_run(largest.run_id).info.run_name,
        "largest_hash": largest.tags[keys.R_TRIAL_HASH],
    }
    if SHOTS:
        # A second study in the same experiment, for the comparison screenshot only. Its artifacts
        # go where the copied experiment says, beside the session study's: new run ids, nothing overwritten.
        proc = run_cli(["study", "--domain", "toy", "--budget", "smoke", "--seed", "1", "--layer-offsets", "1",
                        "--no-register", "--executor", "local", "--tracking-uri", uri, "--json"], cwd=d)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return info


@pytest.fixture(scope="module")
def ui(study):
    """`scal ui` on the copied store, on a free loopback port; its base URL once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"      # the server would try to report usage to the internet
    log = open(study["dir"] / "ui.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "scal", "ui", "--tracking-uri", study["uri"], "--port", str(port)],
                            cwd=study["dir"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc, 90, study["dir"] / "ui.log")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def page(ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch() gives Chromium a new empty profile (--user-data-dir in a temporary folder) each time
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(UI_PREFERENCES)
        pg = context.new_page()
        pg.set_default_timeout(45_000)    # the first page loads the app's bundles (~10 s on 2 cores)
        try:
            yield pg
        finally:
            browser.close()


def shot(page, name: str) -> None:
    """Save the page as ``<name>.png`` in the folder SCAL_UI_SCREENSHOTS names, if any; a 256-colour
    palette keeps a 1400x900 UI screenshot well under 200 KB without visible loss."""
    if not SHOTS:
        return
    from PIL import Image

    out = (ROOT / SHOTS if not Path(SHOTS).is_absolute() else Path(SHOTS)) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)     # let transitions (menus closing, charts resizing) settle
    page.screenshot(path=str(out))
    Image.open(out).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def _runs_url(ui: str, study: dict, search: str | None = None, **extra: str) -> str:
    """The experiment's runs page with a search, and the UI's other URL state (sort, view mode)."""
    q = {"searchFilter": search, **extra} if search else extra
    query = urllib.parse.urlencode(q, quote_via=urllib.parse.quote)
    return f"{ui}/#/experiments/{study['experiment_id']}/runs" + (f"?{query}" if query else "")


def _chart(page, metric: str):
    """The chart card titled ``metric`` and its Plotly graph (the div carries Plotly's data and layout)."""
    card = page.get_by_test_id(CHART_CARD).filter(has=page.get_by_role("heading", name=metric, exact=True))
    plot = card.locator(".js-plotly-plot")
    plot.wait_for()
    return card, plot


def _traces(plot, run_name: str) -> list[dict]:
    data = plot.evaluate("e => e.data.map(t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || [])}))")
    return [t for t in data if t["name"].startswith(run_name)]


def test_runs_table_lists_the_study_with_its_trials_under_it(page, ui, study):
    page.goto(_runs_url(ui, study))
    page.get_by_role("link", name=study["parent_name"], exact=True).wait_for()
    children = page.get_by_role("link", name=CHILD_NAME)
    assert children.count() == 0                  # MLflow 3 groups the trials under their study run

    cell = page.locator(RUN_NAME_CELL).filter(has=page.get_by_role("link", name=study["parent_name"], exact=True))
    cell.get_by_role("button").click()            # the +/- expander, the cell's only button
    children.first.wait_for()
    shown = set(children.all_inner_texts())
    assert shown <= study["child_names"], shown - study["child_names"]
    assert {int(CHILD_NAME.match(n)[1]) for n in shown} == set(study["curve"])   # every subset's trials
    shot(page, "runs-table")


def test_study_run_page_lists_and_charts_best_val_error(page, ui, study):
    page.goto(f"{ui}/#/experiments/{study['experiment_id']}/runs/{study['parent_id']}")
    metrics = page.get_by_role("table").filter(has_text=keys.M_BEST_N_PARAMS)   # the Overview's metrics table
    metrics.get_by_text(keys.M_BEST_VAL_ERROR, exact=True).wait_for()

    page.get_by_role("tab", name="Model metrics").click()
    _, plot = _chart(page, keys.M_BEST_VAL_ERROR)
    traces = _traces(plot, study["parent_name"])
    assert traces
    for t in traces:        # the learning curve itself: step = subset size m, value = eps(m)
        assert t["x"] == sorted(study["curve"])
        assert t["y"] == pytest.approx([study["curve"][m] for m in sorted(study["curve"])], rel=1e-6)
    shot(page, "study-run-metrics")


def test_chart_view_draws_the_learning_curve_on_log_axes(page, ui, study):
    page.goto(_runs_url(ui, study, f"tags.`{keys.ROLE}` = '{keys.ROLE_STUDY}'", compareRunsMode="CHART"))
    card, plot = _chart(page, keys.M_BEST_VAL_ERROR)
    page.get_by_placeholder("Search metric charts").fill(keys.M_BEST_VAL_ERROR)
    card.get_by_test_id(f"{CHART_CARD}-menu").click()
    page.get_by_role("menuitem", name="Configure").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("radio", name="Step", exact=True).check()
    dialog.get_by_role("switch", name="x-axis-log").click()
    dialog.get_by_role("switch", name="y-axis-log").click()
    shot(page, "chart-configure")
    dialog.get_by_role("button", name="Save changes").click()
    dialog.wait_for(state="hidden")

    assert plot.evaluate("e => [e._fullLayout.xaxis.type, e._fullLayout.yaxis.type]") == ["log", "log"]
    traces = _traces(plot, study["parent_name"])
    assert traces and all(t["x"] == sorted(study["curve"]) for t in traces)
    card.locator("[data-component-id=fullscreen_button_chartcard]").click()
    page.get_by_role("dialog").locator(".js-plotly-plot").wait_for()
    shot(page, "chart-compare")
    page.keyboard.press("Escape")


def test_a_subsets_best_fit_trial_is_found_by_filter_and_sort(page, ui, study):
    m = max(study["curve"])
    search = f"params.{keys.P_SUBSET_SIZE} = '{m}' and tags.`{keys.PARENT}` = '{study['parent_id']}'"
    page.goto(_runs_url(ui, study, search, orderByKey=f"metrics.`{keys.M_MIN_VAL_ERROR}`", orderByAsc="true"))
    page.get_by_role("link", name=study["largest_source"], exact=True).first.wait_for()
    names = set(page.get_by_role("link", name=CHILD_NAME).all_inner_texts())
    assert names and all(n.startswith(f"m{m}-") for n in names)     # a flat list of that subset's trials
    for column in (keys.M_MIN_VAL_ERROR, keys.TRIAL_HASH):            # the columns docs/ui.md adds
        page.get_by_test_id("column-selection-dropdown").first.click()
        page.get_by_placeholder("Search columns").fill(column)
        page.get_by_role("dialog").get_by_text(column, exact=True).click()
        page.keyboard.press("Escape")
    # The row showing the registered version's trial hash is the trial that version was logged from
    # (a reused trial's reference run carries the same hash and the same name).
    hash_cells = page.locator(f"[role=gridcell][col-id='tags.`{keys.TRIAL_HASH}`']")
    hash_cells.first.wait_for()
    rows = {c.evaluate("e => e.closest('[role=row]').getAttribute('row-index')") for c in hash_cells.all()
            if c.inner_text().strip() == study["largest_hash"]}
    assert rows
    for index in rows:
        name_cell = page.locator(f".ag-pinned-left-cols-container [role=row][row-index='{index}']")
        assert name_cell.get_by_role("link", name=CHILD_NAME).inner_text() == study["largest_source"]
    page.locator(".ag-body-horizontal-scroll-viewport").evaluate("e => e.scrollLeft = e.scrollWidth")
    shot(page, "best-fit-trial")


def test_model_page_lists_versions_and_the_largest_alias(page, ui, study):
    page.goto(f"{ui}/#/models/{study['model']}")
    for version in study["versions"].values():
        page.get_by_role("link", name=f"Version {version}", exact=True).wait_for()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=f"Version {study['largest']}", exact=True))
    alias = re.compile(rf"@\s*{keys.ALIAS_LARGEST}")     # rendered "@ largest", a no-break space between
    assert alias.search(row.inner_text())
    aliased = page.get_by_role("row").filter(has_text=alias)
    assert aliased.count() == 1                   # the alias names one version
    shot(page, "registry-model")

    page.get_by_role("link", name=f"Version {study['largest']}", exact=True).click()
    page.get_by_role("link", name=study["largest_source"], exact=True).wait_for()   # its Source Run
    shot(page, "registry-version")
