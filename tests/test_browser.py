"""The receiver's page at /, as a person sees it in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skipped
when any of them is missing. The browser talks only to the receiver on 127.0.0.1.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

import odp_logging
from odp_logging.server import Receiver

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402 - after the skip
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
)
WAIT = 10.0
"""Most seconds to wait for the page to show something; it refreshes once a second."""


@pytest.fixture(name="browser", scope="module")
def _browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """A headless Chromium, driven through the system's chromedriver (never downloaded)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(name="page_receiver")
def _page_receiver() -> Iterator[Receiver]:
    """A receiver accepting any key, whose page the browser opens."""
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(name="send")
def _send(page_receiver: Receiver) -> Iterator[Callable[..., None]]:
    """Send one event to the receiver and wait until it is stored."""
    client = odp_logging.OdpClient(api_key="page-test-key", api_host=page_receiver.url)

    def send(action: str, user: str, **data: object) -> None:
        client.send_odp_event(action, identifiers={"fs_user_id": user}, data=data)
        assert client.flush(5)

    yield send
    client.close(timeout=2)


def rows(browser: webdriver.Chrome) -> list[tuple[str, str]]:
    """The table's rows as a person reads them: (action, identifiers)."""
    return [
        (
            row.find_element(By.CSS_SELECTOR, "td.action").text,
            row.find_element(By.CSS_SELECTOR, "td.identifiers").text,
        )
        for row in browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    ]


def wait_for_rows(browser: webdriver.Chrome, expected: list[tuple[str, str]]) -> None:
    """Wait until the table shows exactly ``expected``, then check it does."""
    WebDriverWait(browser, WAIT).until(lambda driver: rows(driver) == expected)
    assert expected == rows(browser)


class TestReceiverPage:
    def test_events_are_listed_newest_first(self, browser, page_receiver, send):
        """Each stored event is a row, the newest on top, with its identifiers and data."""
        send("signed_up", "user1", plan="pro")
        send("purchased", "user2", item="shirt", price=50.0)

        browser.get(page_receiver.url + "/")

        wait_for_rows(
            browser, [("purchased", "fs_user_id=user2"), ("signed_up", "fs_user_id=user1")]
        )
        data = browser.find_element(By.CSS_SELECTOR, "#events tbody tr td.data").text
        assert "item=shirt" in data
        assert "price=50" in data
        assert "ODP receiver" == browser.title
        assert browser.find_element(By.ID, "status").text.startswith("2 events")

    def test_new_events_appear_without_reloading(self, browser, page_receiver, send):
        """An event sent while the page is open shows up on top by itself."""
        browser.get(page_receiver.url + "/")
        WebDriverWait(browser, WAIT).until(
            lambda driver: driver.find_element(By.ID, "empty").is_displayed()
        )

        send("added_to_cart", "user3")

        wait_for_rows(browser, [("added_to_cart", "fs_user_id=user3")])
        assert not browser.find_element(By.ID, "empty").is_displayed()

    def test_filters_by_action_and_identifier(self, browser, page_receiver, send):
        """Typing in the filters narrows the list and keeps them in the address."""
        send("purchased", "user1")
        send("signed_up", "user2")
        send("purchased", "user2")
        browser.get(page_receiver.url + "/")
        wait_for_rows(
            browser,
            [
                ("purchased", "fs_user_id=user2"),
                ("signed_up", "fs_user_id=user2"),
                ("purchased", "fs_user_id=user1"),
            ],
        )

        browser.find_element(By.ID, "action").send_keys("purchased")
        wait_for_rows(
            browser, [("purchased", "fs_user_id=user2"), ("purchased", "fs_user_id=user1")]
        )
        browser.find_element(By.ID, "identifier").send_keys("fs_user_id=user1")
        wait_for_rows(browser, [("purchased", "fs_user_id=user1")])

        assert browser.current_url.endswith("/?action=purchased&identifier=fs_user_id%3Duser1")
        browser.find_element(By.CSS_SELECTOR, "button[type=reset]").click()
        WebDriverWait(browser, WAIT).until(lambda driver: len(rows(driver)) == 3)

    def test_a_filtered_address_opens_filtered(self, browser, page_receiver, send):
        """A link with ?identifier=... opens with that filter filled in and applied."""
        send("purchased", "user1")
        send("purchased", "user2")

        browser.get(page_receiver.url + "/?identifier=user2")

        wait_for_rows(browser, [("purchased", "fs_user_id=user2")])
        assert "user2" == browser.find_element(By.ID, "identifier").get_attribute("value")

    def test_event_values_are_shown_as_text(self, browser, page_receiver, send):
        """Markup sent in an event is displayed literally, never run or rendered."""
        send("purchased", "user1", note="<img src=x onerror=document.title='hacked'>")

        browser.get(page_receiver.url + "/")

        wait_for_rows(browser, [("purchased", "fs_user_id=user1")])
        assert [] == browser.find_elements(By.CSS_SELECTOR, "#events img")
        assert "note=<img src=x" in browser.find_element(By.CSS_SELECTOR, "td.data").text
        assert "ODP receiver" == browser.title
