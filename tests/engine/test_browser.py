"""The web page in a real browser: Debian's chromium and chromedriver, driven by selenium, against the real service
(`faceanon serve` in a subprocess on 127.0.0.1). The wall lays out 1, 4 and 9 cameras; a camera that is offline or
whose privacy is degraded says why; the login takes the right token and refuses a wrong one; a control changed on a
card reaches the service. Every state is saved as a screenshot under tests/artifacts/web/ (or $FACEANON_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, free_port
from faceanon.config import SAMPLE_CLIP

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="chromium and chromium-driver are not installed (apt-get install chromium "
                              "chromium-driver; ./tests/run does this)"),
]
ARTIFACTS = Path(os.environ.get("FACEANON_ARTIFACTS", ROOT / "tests" / "artifacts")) / "web"
TOKEN = "browser-test-token"
START_TIMEOUT = 120.0


class Served:
    """`faceanon serve` with the given cameras (name -> camera config), a token, on free ports."""

    def __init__(self, workdir: Path, mqtt_port: int, cameras: dict[str, dict], token: str | None = TOKEN) -> None:
        self.port, self.token, self.workdir = free_port(), token, workdir
        http = {"host": "127.0.0.1", "port": self.port, **({"token": token} if token else {})}
        config = {"mqtt": {"host": "127.0.0.1", "port": mqtt_port}, "http": http, "rtsp": {"enabled": False},
                  "detector": {"threads": 1}, "state_dir": str(workdir / "state"), "log_level": "info",
                  "cameras": [{"name": name, **cam} for name, cam in cameras.items()]}
        path = workdir / "faceanon.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = workdir / "faceanon.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "faceanon", "serve", "--config", str(path)],
                                         stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
        self.url = f"http://127.0.0.1:{self.port}/"

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path.lstrip("/"))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""

    def cameras(self) -> dict[str, dict]:
        status, body = self.get("api/cameras")
        assert status == 200, body
        return {c["name"]: c for c in json.loads(body)["cameras"]}

    def wait_live(self, names: list[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if self.get("api/health")[0] == 200 and all(
                    c["state"] == "live" for name, c in self.cameras().items() if name in names):
                return
            time.sleep(0.5)
        raise TimeoutError(f"cameras {names} not live in {START_TIMEOUT}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def clip(fps: float = 1.0) -> dict:
    return {"url": str(SAMPLE_CLIP), "detect_fps": fps}


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
                "--hide-scrollbars", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: webdriver.Chrome, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def wait(driver: webdriver.Chrome, what: str, check, timeout: float = 60.0):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d))
    except TimeoutException:
        shot(driver, "failed-" + what.replace(" ", "-"))
        raise AssertionError(f"the page did not show {what} within {timeout}s") from None


def cards(driver: webdriver.Chrome) -> dict[str, object]:
    return {el.get_attribute("data-camera"): el for el in driver.find_elements(By.CSS_SELECTOR, "#wall .card")}


def streams_playing(driver: webdriver.Chrome, names: list[str]) -> bool:
    return all(driver.execute_script(
        "const img = document.querySelector('.card[data-camera=\"' + arguments[0] + '\"] img');"
        "return !!img && img.naturalWidth > 0;", name) for name in names)


def columns(driver: webdriver.Chrome) -> int:
    return len({round(el.rect["x"]) for el in cards(driver).values()})


def log_in(driver: webdriver.Chrome, token: str) -> None:
    field = driver.find_element(By.ID, "token-input")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()


def test_login_offline_degraded_and_controls_on_a_wall_of_nine(browser, mosquitto, tmp_path: Path) -> None:
    live = [f"cam{i}" for i in range(1, 8)]
    cameras = {name: clip(2.0) for name in live}
    cameras["gate"] = {"url": f"rtsp://127.0.0.1:{free_port()}/gate", "detect_fps": 2}  # nothing listens there
    cameras["yard"] = {**clip(), "model": str(tmp_path / "missing.onnx"),  # its detector cannot load
                       "unsafe_settings": "I accept that faces may be shown"}  # a model of its own: unmeasured
    served = Served(tmp_path, mosquitto.port, cameras)
    try:
        served.wait_live(live)
        browser.get(served.url)
        # The page asks for the token; a wrong one is refused and shows nothing of the cameras.
        wait(browser, "the login form", lambda d: d.find_element(By.ID, "login").is_displayed())
        assert not cards(browser)
        shot(browser, "login")
        log_in(browser, "not-the-token")
        wait(browser, "the refusal", lambda d: "not this service's" in d.find_element(By.ID, "login-error").text)
        assert not cards(browser)
        shot(browser, "login-refused")
        log_in(browser, TOKEN)
        wait(browser, "nine cameras", lambda d: len(cards(d)) == 9)
        assert not browser.find_element(By.ID, "login").is_displayed()
        assert "token" not in browser.current_url and TOKEN not in browser.page_source
        wait(browser, "the live streams", lambda d: streams_playing(d, live))
        assert columns(browser) == 3
        # An offline camera and a degraded one say why, in words.
        gate = wait(browser, "the offline reason", lambda d: (c := cards(d)["gate"]).get_attribute("data-state")
                    == "offline" and "unreachable" in c.find_element(By.CLASS_NAME, "reason").text and c)
        assert "retrying in" in gate.find_element(By.CLASS_NAME, "reason").text
        yard = wait(browser, "the degraded reason", lambda d: (c := cards(d)["yard"]).get_attribute("data-state")
                    == "degraded" and "cannot load" in c.find_element(By.CLASS_NAME, "reason").text and c)
        assert yard.find_element(By.CLASS_NAME, "badge").text == "privacy degraded"
        assert "9 cameras" in browser.find_element(By.ID, "summary").text
        shot(browser, "wall-9-offline-degraded")

        # A control changed on a card reaches the service at once; a refused value says why.
        card = cards(browser)["cam1"]
        card.find_element(By.CSS_SELECTOR, "details.controls summary").click()
        # The style offers fill alone (the protection floor); the target changes.
        style = Select(card.find_element(By.CSS_SELECTOR, '[data-control="style"]'))
        assert [o.get_attribute("value") for o in style.options] == ["fill"]
        Select(card.find_element(By.CSS_SELECTOR, '[data-control="target"]')).select_by_value("head")
        deadline = time.monotonic() + 10
        while served.cameras()["cam1"]["controls"]["target"] != "head":
            assert time.monotonic() < deadline, "the target change did not reach the service"
            time.sleep(0.2)
        hold = card.find_element(By.CSS_SELECTOR, '[data-control="hold_seconds"]')
        browser.execute_script("arguments[0].value = '99'; arguments[0].dispatchEvent(new Event('change'))", hold)
        wait(browser, "the refusal of a hold of 99 s",
             lambda d: "hold_seconds" in card.find_element(By.CLASS_NAME, "control-error").text)
        assert served.cameras()["cam1"]["controls"]["hold_seconds"] == 1.0
        time.sleep(2.0)  # the tile's next snapshots, with head masks
        shot(browser, "controls")
        checkbox = card.find_element(By.CSS_SELECTOR, '[data-control="enabled"]')
        checkbox.click()
        wait(browser, "the camera off", lambda d: cards(d)["cam1"].get_attribute("data-state") == "off")
        assert served.cameras()["cam1"]["enabled"] is False
        shot(browser, "camera-off")

        # Click to enlarge; the service panel; logging out asks for the token again.
        cards(browser)["cam2"].find_element(By.CLASS_NAME, "view").click()
        wait(browser, "the enlarged camera", lambda d: "enlarged" in cards(d)["cam2"].get_attribute("class"))
        assert cards(browser)["cam2"].rect["width"] > 1300
        shot(browser, "enlarged")
        cards(browser)["cam2"].find_element(By.CLASS_NAME, "view").click()  # a second click shrinks it
        wait(browser, "the camera back in the wall",
             lambda d: "enlarged" not in cards(d)["cam2"].get_attribute("class"))
        browser.find_element(By.ID, "service-toggle").click()
        wait(browser, "the service panel",
             lambda d: f"connected to 127.0.0.1:{mosquitto.port}" in d.find_element(By.ID, "service").text)
        assert "centerface-int8 on CPU" in browser.find_element(By.ID, "service").text
        shot(browser, "service-panel")
        browser.find_element(By.ID, "logout").click()
        wait(browser, "the login form again", lambda d: d.find_element(By.ID, "login").is_displayed())
    finally:
        served.stop()


@pytest.mark.parametrize(("count", "expected_columns"), [(1, 1), (4, 2)])
def test_the_wall_uses_the_window(browser, mosquitto, tmp_path: Path, count: int, expected_columns: int) -> None:
    names = [f"camera_{i}" for i in range(1, count + 1)]
    served = Served(tmp_path, mosquitto.port, {name: clip(2.0) for name in names}, token=None)
    try:
        served.wait_live(names)
        browser.get(served.url)
        wait(browser, f"{count} cameras", lambda d: len(cards(d)) == count)
        wait(browser, "the live streams", lambda d: streams_playing(d, names))
        assert columns(browser) == expected_columns
        width = max(el.rect["width"] for el in cards(browser).values())
        assert width > 1300 / expected_columns - 40  # the cards fill the 1400 px window
        shot(browser, f"wall-{count}")
        # Dark mode and a phone: one column, the same page.
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        browser.set_window_size(420, 900)
        wait(browser, "one column on a phone", lambda d: columns(d) == 1)
        shot(browser, f"wall-{count}-phone-dark")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1400, 900)
    finally:
        served.stop()
