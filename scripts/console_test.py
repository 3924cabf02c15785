#!/usr/bin/env python3
"""The operator console in a real browser (headless Chromium through Selenium).

Run by scripts/console_test.sh against a running engine (CONSOLE_BASE_URL, default the one
scripts/run.sh starts). It makes its own admin key with `xyzctl keys create`, its own user and
transaction with `xyzctl call`, then drives the console as an operator would and checks every
result through the API too, and finds every action the console took in api_call_logs
(read with the `mariadb` client as root). Screenshots of each page go to target/console-test/.

Environment: CONSOLE_BASE_URL, CONSOLE_DATABASE (the engine's database, default xyz), XYZCTL
(the xyzctl binary), CONSOLE_TEST_OUT (screenshots), and what `xyzctl keys create` needs
(MIGRATION_DATABASE_URL, MASTER_KEYS, …).
"""

import json
import os
import random
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE_URL = os.environ.get("CONSOLE_BASE_URL", "http://127.0.0.1:8080").rstrip("/")
DATABASE = os.environ.get("CONSOLE_DATABASE", "xyz")
XYZCTL = os.environ.get("XYZCTL", f"target/{os.environ.get('ENGINE_PROFILE', 'release')}/xyzctl")
OUT = os.environ.get("CONSOLE_TEST_OUT", "target/console-test")
WAIT_S = 15
XSS_NAME = '<script>window.__xss=1</script> "><img src=x onerror="window.__xss=2">'

passed = 0


def say(text):
    print(f"==> {text}", flush=True)


def check(condition, what):
    global passed
    if not condition:
        raise AssertionError(what)
    passed += 1
    print(f"  ok: {what}", flush=True)


def xyzctl(*args, env=None):
    merged = dict(os.environ)
    merged.update(env or {})
    return subprocess.run([XYZCTL, *args], capture_output=True, text=True, env=merged, timeout=60)


def new_admin_key():
    name = f"console-test-{random.randrange(10**9)}"
    out = xyzctl("keys", "create", "--name", name, "--role", "admin")
    if out.returncode != 0:
        raise SystemExit(f"xyzctl keys create failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def audited(client_id, at_least, seconds=15):
    """The writes `client_id` made, as api_call_logs has them: (method, path, http_status).
    The audit writer flushes in batches: wait for them."""
    query = ("SELECT method, path, http_status FROM api_call_logs "
             f"WHERE client_id = '{client_id}' AND method <> 'GET' ORDER BY id")
    deadline = time.time() + seconds
    while True:
        out = subprocess.run(["mariadb", "-uroot", "-N", "-B", "-e", query, DATABASE],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise SystemExit(f"reading api_call_logs failed: {out.stderr}")
        rows = [line.split("\t") for line in out.stdout.splitlines() if line]
        rows = [(m, p, int(status)) for m, p, status in rows]
        if len(rows) >= at_least or time.time() > deadline:
            return rows
        time.sleep(0.5)


def api(key, method, path, body=None, external_id=None, wait=None):
    """One signed call with xyzctl: (HTTP status, envelope)."""
    args = ["call", method, path]
    if body is not None:
        args.append(json.dumps(body))
    if external_id:
        args += ["--external-id", external_id]
    if wait:
        args += ["--wait", str(wait)]
    out = xyzctl(*args, env={"CLIENT_ID": key["client_id"], "CLIENT_SECRET": key["secret"], "BASE_URL": BASE_URL})
    status, _, text = out.stdout.partition("\n")
    try:
        return int(status.strip()), json.loads(text)
    except ValueError:
        raise AssertionError(f"xyzctl call {method} {path}: {out.stdout!r} {out.stderr!r}")


def api_until(key, method, path, accept, what, seconds=10):
    deadline = time.time() + seconds
    while True:
        status, envelope = api(key, method, path)
        if accept(status, envelope):
            return status, envelope
        if time.time() > deadline:
            raise AssertionError(f"{what}: last answer {status} {envelope}")
        time.sleep(0.3)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900",
                "--disable-gpu", "--no-first-run", "--disable-extensions"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


class Console:
    def __init__(self, driver):
        self.d = driver
        self.wait = WebDriverWait(driver, WAIT_S)

    def shot(self, name):
        path = os.path.join(OUT, f"{name}.png")
        self.d.save_screenshot(path)
        say(f"screenshot {path}")

    def by_id(self, element_id):
        return self.wait.until(EC.presence_of_element_located((By.ID, element_id)))

    def text_of(self, element_id):
        return self.by_id(element_id).text

    def wait_text(self, element_id, needle):
        try:
            self.wait.until(EC.text_to_be_present_in_element((By.ID, element_id), needle))
        except TimeoutException:
            raise AssertionError(f"#{element_id} never showed {needle!r}: {self.text_of(element_id)!r}")
        return self.text_of(element_id)

    def fill(self, element_id, value):
        e = self.by_id(element_id)
        e.clear()
        e.send_keys(value)

    def go(self, fragment):
        self.d.execute_script("location.hash = arguments[0];", fragment)

    def xss_untouched(self):
        return self.d.execute_script("return typeof window.__xss === 'undefined';")

    def accept_confirm(self):
        self.wait.until(EC.alert_is_present())
        self.d.switch_to.alert.accept()

    def csp_violations(self):
        return [e["message"] for e in self.d.get_log("browser") if "Content Security Policy" in e["message"]]


def main():
    os.makedirs(OUT, exist_ok=True)
    say(f"the console at {BASE_URL}/console")
    admin = new_admin_key()
    # The new key is announced to every ingress; a first call may still race the reload.
    api_until(admin, "GET", "/admin/keys", lambda s, _: s == 200, "the fresh admin key works")

    say("a user whose name is markup, and a transaction, through the API")
    nik = "3201" + "".join(random.choice("0123456789") for _ in range(12))
    user_body = {
        "nik": nik, "full_name": XSS_NAME, "legal_name": "Budi Santoso", "tempat_lahir": "Bandung",
        "tanggal_lahir": "1997-03-02", "gaji": 12000000, "foto_ktp": "https://cdn.example.com/ktp.jpg",
        "foto_selfie": "https://cdn.example.com/selfie.jpg", "limit_one_month": 100000,
        "limit_two_month": 300000, "limit_three_month": 500000, "limit_sixth": 10000000,
    }
    status, created = api(admin, "POST", "/create-user", user_body, external_id=f"console-user-{nik}")
    check(status == 201, f"user created ({status})")
    user_id = created["message_data"]["user_id"]
    order = f"CONSOLE-ORDER-{random.randrange(10**12)}"
    status, outcome = api(admin, "POST", "/transaction", {
        "user_id": user_id, "otr": 1000, "admin_fee": 100, "harga_aset": 900, "bunga_persen": 2.5,
        "tenor": 3, "nama_aset": "Kulkas 2 Pintu",
    }, external_id=order, wait=15)
    check(status == 201, f"transaction approved ({status} {outcome.get('message_action')})")
    call_id = outcome["message_data"]["api_call_id"]
    contract = outcome["message_data"]["result"]["nomor_kontrak"]

    driver = browser()
    c = Console(driver)
    try:
        driver.get(f"{BASE_URL}/console")
        c.by_id("login-form")
        c.shot("01-login")

        say("a wrong key shows the API's 401")
        c.fill("login-client-id", admin["client_id"])
        c.fill("login-secret", "not-the-secret")
        c.by_id("login-form").submit()
        shown = c.wait_text("login-error", "INVALID_SIGNATURE")
        check("INVALID_SIGNATURE" in shown, f"wrong key refused: {shown}")
        c.shot("02-wrong-key")

        say("signing in with the fresh admin key, from the keyboard")
        c.fill("login-secret", admin["secret"])
        c.by_id("login-secret").send_keys(Keys.ENTER)
        c.wait_text("health-tiles", "Readiness")
        c.wait_text("health-tiles", "Dead letters")
        check(c.by_id("login").get_attribute("hidden") is not None, "the login form is gone")
        stored = driver.execute_script(
            "return [localStorage.length, sessionStorage.length, document.cookie];")
        check(stored == [0, 0, ""], f"nothing stored in the browser: {stored}")
        c.shot("03-health")

        say("find the call by its api call id, open its contract")
        driver.find_element(By.LINK_TEXT, "Find a call").send_keys(Keys.ENTER)
        c.by_id("find-by-id")
        focused = driver.execute_script("return document.activeElement.tagName + ':' + document.activeElement.textContent;")
        check(focused == "H1:Find a call", f"a page opened from the keyboard takes the focus to its heading ({focused})")
        c.fill("call-id", call_id)
        c.by_id("find-by-id").submit()
        shown = c.wait_text("call-result", "APPROVED")
        check(call_id in shown and contract in shown, "the call is shown, approved, with its contract")
        c.shot("04-call")
        c.by_id("call-result").find_element(By.LINK_TEXT, contract).click()
        shown = c.wait_text("contract-out", "Kulkas 2 Pintu")
        check(contract in shown and "1182.50" in shown, "the contract page shows it")
        c.shot("05-contract")

        say("the user: markup in the name stays text")
        c.go("#/users/" + user_id)
        c.wait_text("user-out", "Budi Santoso")
        c.wait_text("user-installments", "394.17")
        check(XSS_NAME in c.text_of("user-out"), "the name is shown as text, markup and all")
        check(c.xss_untouched(), "window.__xss stays undefined after viewing the user")
        check(contract in c.text_of("user-contracts"), "the user's contract is listed")
        c.shot("06-user")

        say("lock and unlock the user")
        c.by_id("user-toggle-status").click()
        c.wait_text("flash", "User locked.")
        _, user = api(admin, "GET", f"/users/{user_id}")
        check(user["message_data"]["user_status"] == "LOCK", "locked, as the API says")
        c.wait_text("user-toggle-status", "Unlock user")
        c.by_id("user-toggle-status").click()
        c.wait_text("flash", "User unlocked.")
        _, user = api(admin, "GET", f"/users/{user_id}")
        check(user["message_data"]["user_status"] == "ACTIVE", "active again, as the API says")

        say("create a key, then revoke it")
        c.go("#/keys")
        c.by_id("keys-list")
        c.fill("key-name", "console-made")
        c.by_id("key-create-form").submit()
        c.wait_text("flash", "Created ")
        made = {"client_id": c.text_of("new-client-id"), "secret": c.text_of("new-secret")}
        check(made["client_id"].startswith("ck_") and len(made["secret"]) >= 32, "the new key and its secret are shown once")
        status, _ = api_until(made, "GET", f"/users/{user_id}/limits", lambda s, _: s == 200, "the new merchant key works")
        check(status == 200, "the new key signs calls")
        _, keys = api(admin, "GET", "/admin/keys")
        listed = [k for k in keys["message_data"]["items"] if k["client_id"] == made["client_id"]]
        check(len(listed) == 1 and listed[0]["role"] == "merchant" and "secret" not in listed[0],
              "the API lists the new key, without its secret")
        c.wait_text("keys-list", made["client_id"])
        c.shot("07-keys")
        c.d.find_element(By.CSS_SELECTOR, f"button[data-action=revoke][data-client-id='{made['client_id']}']").click()
        c.accept_confirm()
        c.wait_text("flash", "Revoked " + made["client_id"])
        _, keys = api(admin, "GET", "/admin/keys")
        listed = [k for k in keys["message_data"]["items"] if k["client_id"] == made["client_id"]]
        check(listed and listed[0]["revoked_at"], "the API shows the key revoked")
        status, refused = api_until(made, "GET", f"/users/{user_id}/limits", lambda s, _: s == 401,
                                    "the revoked key is refused", seconds=5)
        check(refused["message_action"] == "INVALID_SIGNATURE", "the revoked key gets 401")

        say("dead letters")
        c.go("#/dead-letters")
        c.wait_text("dlq-list", "Api call id")
        c.shot("08-dead-letters")
        check(c.xss_untouched(), "window.__xss stays undefined on every page")

        # The last steps use SPEC §13 (limits) and §10 (lookup by external id).
        say("raise a limit")
        c.go("#/users/" + user_id)
        c.wait_text("user-out", "Budi Santoso")
        c.fill("limit-1", "150000")
        c.by_id("limits-form").submit()
        c.wait_text("flash", "Limits changed.")
        _, limits = api(admin, "GET", f"/users/{user_id}/limits")
        check(limits["message_data"]["limits"]["1"]["granted"] == "150000.00", "the granted limit is raised, as the API says")
        c.wait_text("user-limit-changes", "150000.00")
        c.shot("09-user-limits")

        say("find the call by merchant and external id")
        c.go("#/calls")
        c.fill("call-merchant", "PLATFORM")
        c.fill("call-external-id", order)
        c.by_id("find-by-external-id").submit()
        shown = c.wait_text("call-result", "APPROVED")
        check(call_id in shown and contract in shown, "found by its external id")
        c.shot("10-call-by-external-id")

        say("every console action is an audited API call")
        actions = [("PATCH", f"/users/{user_id}/status"), ("PATCH", f"/users/{user_id}/status"),
                   ("POST", "/admin/keys"), ("DELETE", f"/admin/keys/{made['client_id']}"),
                   ("PATCH", f"/users/{user_id}/limits")]
        # The test's own writes with that key: the user and the transaction it made first.
        own = [("POST", "/create-user", 201), ("POST", "/transaction", 201)]
        logged = audited(admin["client_id"], len(own) + len(actions))
        check(sorted(logged) == sorted(own + [(m, p, 201 if m == "POST" else 200) for m, p in actions]),
              f"api_call_logs has each of them under the console's key: {logged}")

        violations = c.csp_violations()
        check(not violations, f"no Content-Security-Policy violation: {violations}")
        check(c.xss_untouched(), "window.__xss stays undefined to the end")
    except Exception:
        c.shot("failure")
        raise
    finally:
        driver.quit()
    print(f"console: {passed} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}\nconsole: {passed} passed, 1 failed", file=sys.stderr)
        sys.exit(1)
