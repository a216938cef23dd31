"""The web console in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against `authctl serve`, one server per
test on a fresh embedded store; one browser per session, a blank page per
test. Elements are found as a screen reader finds them: by computed role and
accessible name. Screenshots go to target/console/."""

import json
import os
import queue
import re
import shutil
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from request_log import answered

API_KEY = re.compile(r"\bbauth_[0-9a-f]{16}_[0-9a-f]{64}_[0-9a-f]{8}\b")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
PATIENCE = 60
"""Seconds a server may take to start on a busy machine."""

# Where to look for each role: cheap CSS first, then the browser's computed
# role and accessible name decide. A role not listed is looked for as [role=X].
CANDIDATES = {
    "button": "button, [role=button], input[type=button], input[type=submit], input[type=reset]",
    "textbox": "input[type=text], input[type=password], input[type=email], input[type=url], "
               "input[type=tel], input:not([type]), textarea, [role=textbox]",
    "searchbox": "input[type=search], [role=searchbox]",
    "checkbox": "input[type=checkbox], [role=checkbox]",
    "radio": "input[type=radio], [role=radio]",
    "combobox": "select, input[list], [role=combobox]",
    "spinbutton": "input[type=number], [role=spinbutton]",
    "dialog": "dialog, [role=dialog], [role=alertdialog]",
    "alertdialog": "dialog, [role=alertdialog]",
    "table": "table, [role=table], [role=grid]",
    "heading": "h1, h2, h3, h4, h5, h6, [role=heading]",
    "link": "a[href], [role=link]",
    "alert": "[role=alert]",
    "status": "output, [role=status]",
    "row": "tr, [role=row]",
    "cell": "td, [role=cell], [role=gridcell]",
    "gridcell": "td, [role=gridcell]",
    "columnheader": "th, [role=columnheader]",
    "rowheader": "th, [role=rowheader]",
    "list": "ul, ol, [role=list]",
    "listitem": "li, [role=listitem]",
    "navigation": "nav, [role=navigation]",
    "banner": "header, [role=banner]",
    "main": "main, [role=main]",
    "region": "section, [role=region]",
    "group": "fieldset, details, [role=group]",
    "form": "form, [role=form]",
    "img": "img, svg, [role=img]",
    # Chromium's own computed roles for its date pickers.
    "DateTime": "input[type=datetime-local]",
    "Date": "input[type=date]",
}

# The elements of `arguments[0]` (a CSS selector) that are displayed, in one
# round trip instead of one per element.
VISIBLE = """
return [...document.querySelectorAll(arguments[0])].filter(
  el => el.checkVisibility({visibilityProperty: true, opacityProperty: true}));
"""


class Server:
    """`authctl serve` on a free loopback port with a fresh embedded store,
    the two keys it printed on first start, and calls to its API."""

    def __init__(self, stack, spawn, authctl, directory, env):
        self.log = directory / "serve.log"
        self.data_dir = directory / "data"
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("TABLE_NAME", "SIGNING_SECRET_ARN", "ISSUER")}
        environment.update(RUST_LOG="info", **{k: str(v) for k, v in env.items()})
        command = [authctl, "serve", "--addr", "127.0.0.1:0", "--data-dir", self.data_dir]
        process = stack.enter_context(spawn(command, self.log, read_stdout=True, env=environment))
        self.printed = read_banner(process)
        self.base = re.search(r"^listening on (http://\S+)$", self.printed, re.M).group(1)
        self.console = f"{self.base}/console/"
        keys = list(dict.fromkeys(API_KEY.findall(self.printed)))
        if len(keys) != 2:
            pytest.fail(f"expected a starter and a console key in serve's banner:\n{self.printed}",
                        pytrace=False)
        self.starter_key, self.root_key = keys
        """The starter API key (read write) and the console's root key (every admin scope)."""
        self.http = stack.enter_context(httpx.Client(base_url=self.base, timeout=30))
        self._root_token = None

    def api(self, method, path, token=None, json=None):
        """Any request: status, JSON body (None if it is not JSON), headers."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, path, headers=headers, json=json)
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body, response.headers

    def login(self, api_key, session_id=None):
        """`POST /auth/login`: the access token; fails the test unless 200."""
        body = {"api_key": api_key} | ({"session_id": session_id} if session_id else {})
        status, answer, _ = self.api("POST", "/auth/login", json=body)
        assert status == 200, (status, answer)
        return answer["access_token"]

    @property
    def root_key_id(self):
        """The console root key's id."""
        return self.root_key.split("_")[1]

    def root_token(self):
        """A token of the root key, in a session of the tests' own."""
        if self._root_token is None:
            self._root_token = self.login(self.root_key, "tests")
        return self._root_token

    def portal_link(self, owner, allowed_scopes, return_url=None):
        """A one-time portal link for `owner`, asked for with the root key."""
        self.root_token()
        if not isinstance(allowed_scopes, str):
            allowed_scopes = " ".join(allowed_scopes)
        body = {"owner": owner, "allowed_scopes": allowed_scopes}
        if return_url is not None:
            body["return_url"] = return_url
        status, answer, _ = self.api("POST", "/admin/v1/portal-sessions", self._root_token, body)
        assert status == 201, (status, answer)
        return answer["url"]

    def count(self, route):
        """Requests answered on `route` (the log's label, e.g. "/console")."""
        return answered(self.log, route)


def read_banner(process):
    """What serve printed up to its `listening on` line; stdout is read to
    its end in the background so the server never blocks on a full pipe."""
    lines = queue.Queue()
    threading.Thread(target=lambda out=process.stdout: [*map(lines.put, out), lines.put(None)],
                     daemon=True).start()
    printed, deadline = [], time.monotonic() + PATIENCE
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        except queue.Empty:
            break
        if line is None:
            break
        printed.append(line)
        if line.startswith("listening on "):
            return "".join(printed)
    pytest.fail("authctl serve did not start listening:\n" + "".join(printed), pytrace=False)


@pytest.fixture
def serve(authctl, spawn, tmp_path):
    """Starts servers of this test's own, `serve(**env)` with extra
    environment variables; all stopped after the test."""
    with ExitStack() as stack:
        started = []

        def serve(**env):
            directory = tmp_path / f"server-{len(started) + 1}"
            directory.mkdir()
            started.append(Server(stack, spawn, authctl, directory, env))
            return started[-1]

        yield serve


@pytest.fixture
def server(serve):
    """A server with the default settings."""
    return serve()


@pytest.fixture(scope="session")
def screenshots(target):
    """target/console/, emptied once per session."""
    path = target / "console"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session, logging the network
    (performance log) and the console (browser log)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
                    "(scripts/test does)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The browser's one tab, with lookups by role and accessible name."""

    def __init__(self, driver, screenshots):
        self.driver = driver
        self._screenshots = screenshots
        self._requested = []
        self._tokens = []
        self._console = []

    def open(self, url):
        """Loads `url`; `requests()` counts from here."""
        self._drain()
        self._requested.clear()
        self.driver.get(url)

    def reload(self):
        self.driver.refresh()

    @property
    def url(self):
        return self.driver.current_url

    def roles(self, role):
        """Every displayed element whose computed role is `role`, as (accessible name, element)."""
        found = []
        for el in self.driver.execute_script(VISIBLE, CANDIDATES.get(role, f"[role={role}]")):
            try:
                if el.aria_role == role:
                    found.append(((el.accessible_name or "").strip(), el))
            except (StaleElementReferenceException, WebDriverException):
                continue  # it went away while we looked
        return found

    def role(self, role, name, timeout=10):
        """Waits for a displayed element with `role` and accessible name `name`."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.roles(role)
            for found, el in seen:
                if found == name:
                    return el
            if time.monotonic() > deadline:
                pytest.fail(f"no {role} named {name!r} within {timeout} s; {role}s seen: "
                            f"{[n for n, _ in seen]}; all named elements: {self._named()}",
                            pytrace=False)
            time.sleep(0.1)

    def absent(self, role, name, timeout=10):
        """Waits until no displayed element has `role` and accessible name `name`."""
        deadline = time.monotonic() + timeout
        while any(found == name for found, _ in self.roles(role)):
            if time.monotonic() > deadline:
                pytest.fail(f"a {role} named {name!r} is still shown after {timeout} s", pytrace=False)
            time.sleep(0.1)

    def present(self, role, name):
        """Whether a displayed element has `role` and accessible name `name` now."""
        return any(found == name for found, _ in self.roles(role))

    def until(self, what, condition, timeout=10):
        """Waits until `condition()` holds; fails naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self._holds(condition):
            if time.monotonic() > deadline:
                pytest.fail(f"not within {timeout} s: {what}; page text:\n{self.text()}", pytrace=False)
            time.sleep(0.1)

    @staticmethod
    def _holds(condition):
        """`condition()`, false while the page replaces what it looked at."""
        try:
            return condition()
        except StaleElementReferenceException:
            return False

    def bearer(self):
        """The bearer token the page sent last, read from the browser's own
        network log: the page keeps it in memory only."""
        self._drain()
        if not self._tokens:
            pytest.fail("the page has sent no bearer token", pytrace=False)
        return self._tokens[-1]

    def click(self, role, name):
        return self._act(role, name, lambda el: el.click())

    def fill(self, role, name, text):
        """Clears the field, then types `text`."""
        return self._act(role, name, lambda el: (el.clear(), el.send_keys(text)))

    def _act(self, role, name, action):
        """Finds the element and acts on it, finding it again if the page
        replaced it in between (a screen re-rendered as an answer came in)."""
        for _ in range(5):
            el = self.role(role, name)
            try:
                action(el)
                return el
            except StaleElementReferenceException:
                time.sleep(0.1)
        pytest.fail(f"the {role} {name!r} kept being replaced", pytrace=False)

    def text(self):
        """The visible text of the page."""
        return self.driver.find_element(By.TAG_NAME, "body").text

    def alert(self, timeout=10):
        """The text of the displayed role=alert element, once it says something."""
        deadline = time.monotonic() + timeout
        while True:
            texts = [el.text.strip() for _, el in self.roles("alert")]
            if said := [t for t in texts if t]:
                return "\n".join(said)
            if time.monotonic() > deadline:
                pytest.fail(f"no alert with text within {timeout} s; page text:\n{self.text()}",
                            pytrace=False)
            time.sleep(0.1)

    def shot(self, name):
        """A screenshot of the page as target/console/<name>.png."""
        path = self._screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def requests(self):
        """Every URL the page requested since `open`; `data:` URLs (the
        browser's own icons, e.g. a date picker's) go nowhere and are left out."""
        self._drain()
        return [url for url in self._requested if not url.startswith("data:")]

    def console_errors(self):
        """The browser console's errors so far. A failed load (source
        "network", e.g. a 401 the page shows as an alert) is left out: the
        page answers those itself, and the tests check what it shows."""
        self._drain()
        return [e["message"] for e in self._console if e.get("level") == "SEVERE" and e.get("source") != "network"]

    def _drain(self):
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                request = message["params"]["request"]
                self._requested.append(request["url"])
                for name, value in request.get("headers", {}).items():
                    if name.lower() == "authorization" and value.startswith("Bearer "):
                        self._tokens.append(value.removeprefix("Bearer "))
        self._console.extend(self.driver.get_log("browser"))

    def _named(self):
        """(role, name) of every displayed element that has an accessible name, for a failure message."""
        named = []
        for el in self.driver.execute_script(VISIBLE, ", ".join(sorted(set(CANDIDATES.values())))):
            try:
                if name := (el.accessible_name or "").strip():
                    named.append((el.aria_role, name))
            except (StaleElementReferenceException, WebDriverException):
                continue
        return named

    def _reset(self):
        """A blank page at the default size, the logs drained and forgotten."""
        self.driver.get("about:blank")
        self.driver.set_window_size(*WINDOW)
        self._drain()
        self._requested.clear()
        self._console.clear()


@pytest.fixture
def page(browser, screenshots):
    """A blank page in the session's browser; a test whose page logged a
    console error fails (see pytest_runtest_call)."""
    for handle in browser.window_handles[1:]:
        browser.switch_to.window(handle)
        browser.close()
    browser.switch_to.window(browser.window_handles[0])
    page = Page(browser, screenshots)
    page._reset()
    return page


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After a test that used `page`: its browser console errors fail it
    (or, if it failed already, are shown beside its failure)."""
    page = item.funcargs.get("page")
    try:
        result = yield
    except BaseException:
        if isinstance(page, Page) and (errors := page.console_errors()):
            item.add_report_section("call", "browser console", "\n".join(errors))
        raise
    if isinstance(page, Page) and (errors := page.console_errors()):
        pytest.fail("the browser console logged errors:\n" + "\n".join(errors), pytrace=False)
    return result
