"""The Airflow UI in a real browser: log in, open flywheel_training, fill the trigger form; the run succeeds.

Debian's Chromium, driven headless through /usr/bin/chromedriver (``make browser`` installs both;
``make test`` does it first). Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.live_airflow import ARTIFACTS, PASSWORD, USER

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# What works for root on these machines, without a screen and without outside network.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1400",
]


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed: run `make browser` (Debian's chromium and "
            "chromium-driver; `make test` installs them first)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="flywheel-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(15)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def log_in(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    driver.find_element(By.NAME, "username").send_keys(USER)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "/auth/login" not in driver.current_url, "the login to go through")


def open_trigger_form(driver, url: str, dag_id: str):
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/dags/{dag_id}")
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Trigger Dag']").click()
    return driver.find_element(By.CSS_SELECTOR, "[role=dialog][id^='dialog:']")


def fill(dialog, field: str, value: str) -> None:
    """Type into a form field of the trigger form (Airflow names them ``element_<param>``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    element = dialog.find_element(By.NAME, f"element_{field}")
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(value)
    element.send_keys(Keys.TAB)


def click_trigger(driver, dialog) -> None:
    """Click the form's Trigger button, once no notification toast covers it."""
    from selenium.webdriver.common.by import By

    button = dialog.find_element(By.CSS_SELECTOR, "[data-testid='trigger-dag-submit']")
    driver.implicitly_wait(0)
    wait_for(
        lambda: not driver.find_elements(By.CSS_SELECTOR, "[data-scope='toast'][data-state='open']"),
        "the notification to close",
    )
    driver.implicitly_wait(15)
    button.click()


def wait_for(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def manual_runs(live, dag_id: str) -> list[dict]:
    return [run for run in live.runs(dag_id) if run["run_type"] == "manual"]


def test_trigger_form_refuses_a_bad_value_then_runs_flywheel_training(live_airflow, browser):
    dag_id = "flywheel_training"
    log_in(browser, live_airflow.url)
    dialog = open_trigger_form(browser, live_airflow.url, dag_id)
    for field in ("window_days", "epochs", "learning_rate", "force_promote", "force_reason"):
        assert dialog.find_element("name", f"element_{field}"), f"the form has no field {field}"
    assert "Adam learning rate" in dialog.text  # each field carries its description
    # another test of this Airflow may have triggered one
    earlier = {r["dag_run_id"] for r in manual_runs(live_airflow, dag_id)}

    # A learning rate of 0 is outside the schema: refused with a message, and no run is created.
    fill(dialog, "window_days", "7")
    fill(dialog, "epochs", "1")
    fill(dialog, "learning_rate", "0")
    click_trigger(browser, dialog)
    wait_for(lambda: "Invalid input for param learning_rate" in dialog.text, "the form to show the refusal")
    browser.save_screenshot(str(ARTIFACTS / "ui-trigger-form-refused.png"))
    assert {r["dag_run_id"] for r in manual_runs(live_airflow, dag_id)} == earlier

    fill(dialog, "learning_rate", "0.01")
    browser.save_screenshot(str(ARTIFACTS / "ui-trigger-form-filled.png"))
    click_trigger(browser, dialog)
    [run] = wait_for(
        lambda: [r for r in manual_runs(live_airflow, dag_id) if r["dag_run_id"] not in earlier],
        "the run to be created",
    )
    assert run["conf"]["window_days"] == 7 and run["conf"]["epochs"] == 1
    assert run["conf"]["learning_rate"] == pytest.approx(0.01)
    assert run["run_type"] == "manual"

    finished = live_airflow.wait_for_run(dag_id, run["dag_run_id"], timeout=240)
    states = live_airflow.task_states(dag_id, run["dag_run_id"])
    assert finished["state"] == "success", (
        states,
        live_airflow.task_log(dag_id, run["dag_run_id"], "prepare"),
    )
    assert set(states.values()) == {"success"}

    browser.get(f"{live_airflow.url}/dags/{dag_id}/runs/{run['dag_run_id']}")
    wait_for(lambda: "success" in browser.page_source.lower(), "the run page")
    browser.save_screenshot(str(ARTIFACTS / "ui-training-run-succeeded.png"))

    workspace_params = (live_airflow.home / "workspace" / "params.yaml").read_text()
    assert "learning_rate: 0.01" in workspace_params and "epochs: 1" in workspace_params
