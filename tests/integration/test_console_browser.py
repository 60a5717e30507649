"""The console in a real browser: Debian's headless Chromium driven by Selenium
(chromium-driver) against the real API served over HTTP, the engine on this event loop, our
PBX and the carrier Asterisk. Sign in, open an IVR and see its diagram, open the SVG itself,
simulate 1 then 2, watch a real call appear under live calls, send it DTMF from the button
(detected at the caller's side, the carrier), hang it up from the button, then find it in
the call log with its path. A screenshot of each page is kept (TRUNX_TEST_ARTIFACTS, else
build/test-artifacts/console)."""
from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver  # setup.cfg's dev extras
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from admin_api import create_app
from devtools.stack.ami import originate_local
from tests.engine_support import running_engine, seed_account
from tests.integration.outbound_support import make_account, outbound_config
from trunx import accounts, dnc
from trunx.models import Call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

IVR_DID = "+19495551277"
TREE = {"nodes": {
    "menu": {"audio": "beep", "gather": {"1": "sales", "2": "bye"}, "timeout": 60,
             "timeout_node": "menu"},
    "sales": {"audio": "beep", "gather": {"1": "bye", "2": "goodbye"}, "timeout": 60},
    "bye": {"action": "hangup"},
    "goodbye": {"action": "hangup", "audio": "beep"},
}}
ARTIFACTS = Path(os.environ.get("TRUNX_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "build" / "test-artifacts") / "console"


@pytest.fixture(scope="module")
def browser():
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            pytest.fail(f"the browser tests need Debian's {tool} (apt install chromium "
                        "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--disable-gpu"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def cfg(tmp_path, redis_server, pbx, carrier):
    return outbound_config(tmp_path, redis_server.url, pbx, sounds_dir=str(pbx.sounds_dir_host),
                           asterisk_sounds_dir=pbx.sounds_dir_in_root)


@pytest.fixture
def server(cfg, redis):
    """The API over real HTTP (werkzeug's threaded server) in this process."""
    app = create_app(cfg, redis=redis)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    app.extensions["trunx.store"].close()


class Page:
    """The browser, driven from a thread so the engine on the event loop keeps running."""

    def __init__(self, driver, base: str):
        self.d, self.base = driver, base

    async def run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def get(self, path: str):
        await self.run(self.d.get, self.base + path)

    async def shot(self, name: str):
        await self.run(self.d.save_screenshot, str(ARTIFACTS / f"{name}.png"))

    def find(self, css: str):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    async def until(self, check, timeout: float = 20.0, reload: str | None = None):
        """Wait for `check()` (run in the browser's thread) to be truthy, reloading `reload`
        between tries when given."""
        async with asyncio.timeout(timeout):
            while True:
                if reload:
                    await self.get(reload)
                found = await self.run(check)
                if found:
                    return found
                await asyncio.sleep(0.3)


def received_dtmf(ami, since: int) -> list[str]:
    return [e.get("Digit") for e in ami.events[since:] if e.get("Event") == "DTMFEnd"
            and e.get("Direction") == "Received"
            and e.get("Channel", "").startswith("PJSIP/pbx-")]


async def test_console_in_chromium(cfg, redis, server, browser, carrier, carrier_ami):
    account = make_account(cfg)
    key = accounts.create_key(account)
    seed_account(cfg, redis, tree=TREE, did=IVR_DID, ivr_id="front-desk", account=account)
    dnc.suppress(account.id, "+12025550199", source="api", redis=redis, reason="asked")
    page = Page(browser, server)

    # sign in: the pages redirect to the form, the key goes in the form once
    await page.get("/console/ivrs/front-desk")
    assert "/console/login" in browser.current_url
    await page.shot("01-sign-in")

    def sign_in():
        page.find("#key").send_keys(key)
        page.find("#sign-in").click()
    await page.run(sign_in)
    await page.until(lambda: "/console/ivrs/front-desk" in browser.current_url)
    cookie = browser.get_cookie("trunx_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert await page.run(browser.execute_script, "return document.cookie") == ""

    # the diagram, inline: every node named
    names = await page.run(lambda: {t.text for t in page.all("#diagram svg g.node text")})
    assert set(TREE["nodes"]) <= names
    await page.shot("02-ivr")

    # the SVG itself opens in the browser and names every node
    await page.get("/console/ivrs/front-desk/diagram.svg")
    svg_text = await page.run(lambda: browser.page_source)
    assert "<svg" in svg_text and all(f">{n}<" in svg_text for n in TREE["nodes"])
    await page.shot("03-diagram-svg")

    # simulate 1 then 2
    await page.get("/console/ivrs/front-desk")

    def simulate():
        page.find("#inputs").send_keys("1 2")
        page.find("#simulate").click()
    await page.run(simulate)
    outcome = await page.until(lambda: page.all("#sim-outcome") and page.find("#sim-outcome").text)
    visited = await page.run(lambda: [li.text.split()[0] for li in page.all("#sim-nodes li")])
    assert (outcome, visited) == ("hangup", ["menu", "sales", "goodbye"])
    bold = await page.run(lambda: {g.get_attribute("id")
                                   for g in page.all("#diagram svg g.node.visited")})
    assert bold == {"node-menu", "node-sales", "node-goodbye"}   # the walk, drawn bold
    await page.shot("04-simulate")

    async with running_engine(cfg) as engine:
        # a real call from the carrier into our DID: it presses 1, then waits in sales
        await originate_local(carrier_ami, IVR_DID, "w2-d1-w60-h", context="to-pbx")
        row = await page.until(lambda: page.all("#live-calls tbody tr"),
                               reload="/console/calls/live")
        call_id = await page.run(lambda: row[0].get_attribute("data-call"))
        await page.shot("05-live-calls")

        since = len(carrier_ami.events)

        def send_dtmf():
            page.find(f"#dtmf-{call_id}").send_keys("1")
            page.find(f'tr[data-call="{call_id}"] button[value="dtmf"]').click()
        await page.run(send_dtmf)
        done = await page.until(lambda: page.all(".message") and page.find(".message").text)
        assert "dtmf" in done
        async with asyncio.timeout(15):      # heard at the caller's end of the line
            while "1" not in received_dtmf(carrier_ami, since):
                await asyncio.sleep(0.05)

        def in_sales_wait():
            # the caller's 1 took it to sales' question (GET OPTION: the prompt, then the
            # wait for a key), and its 0.25 s beep has played out by now: the hang-up
            # below comes in the question's wait, so the path keeps the prompt heard
            for r in engine.registry.records():
                for p in r.path:
                    if (p["node"], p["event"]) == ("sales", "enter"):
                        return time.monotonic() - r._t0 > p["t"] + 1.0
            return False
        async with asyncio.timeout(20):
            while not in_sales_wait():
                await asyncio.sleep(0.05)

        def hang_up():
            page.find(f'tr[data-call="{call_id}"] button.danger').click()
        await page.until(lambda: page.all(f'tr[data-call="{call_id}"]'))
        await page.run(hang_up)
        async with asyncio.timeout(20):      # the call's final row, once it has ended
            while Call.get_or_none(Call.id == call_id, Call.ended_at.is_null(False)) is None:
                await asyncio.sleep(0.1)

    # the call log, then the call with its path
    link = await page.until(lambda: page.all(f'a[href="/console/calls/{call_id}"]'),
                            reload="/console/calls")
    await page.shot("06-call-log")
    await page.run(link[0].click)
    steps = await page.until(lambda: [(li.get_attribute("data-node"),
                                       li.get_attribute("data-event"))
                                      for li in page.all("#path li")])
    assert steps[:5] == [("menu", "enter"), ("menu", "prompt"), ("menu", "digits"),
                         ("sales", "enter"), ("sales", "prompt")]
    assert await page.run(lambda: page.find('#path li[data-event="digits"] kbd').text) == "1"
    assert await page.run(lambda: page.find("#call-outcome").text) == "caller-hangup"
    await page.shot("07-call")

    # the IVR's page again: the real call is counted on the edge it took and in the stats
    await page.get("/console/ivrs/front-desk")
    labels = await page.run(lambda: [t.text for t in page.all("#diagram svg g.edge text")])
    assert "1 (1)" in labels
    assert await page.run(lambda: page.find("#stats-calls").text.startswith("1 call"))
    await page.shot("07b-ivr-with-stats")

    for name, path, css, shows in (("08-audio", "/console/audio", "h1", "Audio library"),
                                   ("09-dnc", "/console/dnc", "#dnc", "+12025550199"),
                                   ("10-agents", "/console/agents", "h1", "AI agents")):
        await page.get(path)
        assert shows in await page.run(lambda c=css: page.find(c).text)
        await page.shot(name)
    assert len(list(ARTIFACTS.glob("*.png"))) >= 10
