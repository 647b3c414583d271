"""Fixtures for the storefront's browser tests, run by tests/browser/run.sh against a real
`till serve`: where the server is (TILL_BROWSER_URL, and TILL_BROWSER_SHORT_HOLD_URL for the
server whose holds expire in seconds), its API key (TILL_BROWSER_API_KEY, used only here to
seed the catalog and read stock, never by a page), Debian's Chromium (TILL_CHROMIUM) driven
by Playwright, and screenshots into TILL_ARTIFACTS."""

import json
import os
import re
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

# How long a test waits for something the server does on its own (a webhook, the expiry
# worker), in milliseconds: the simulator's webhooks come after 1.5 s here.
SETTLE_MS = 20_000
# Every expectation may wait that long: CI machines are shared and sometimes slow.
expect.set_options(timeout=SETTLE_MS)


def _env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the browser tests with tests/browser/run.sh")
    return value


@pytest.fixture(scope="session")
def base_url():
    return _env("TILL_BROWSER_URL")


@pytest.fixture(scope="session")
def short_hold_url():
    return _env("TILL_BROWSER_SHORT_HOLD_URL")


@pytest.fixture(scope="session")
def api_key():
    return _env("TILL_BROWSER_API_KEY")


class Api:
    """The JSON API with the merchant's key: what a shop owner's back office does."""

    def __init__(self, url, key):
        self.url, self.key = url, key

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.key}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def ok(self, method, path, body=None):
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path} -> {status} {answer}"
        return answer

    def product(self, name, price_minor, stock, tax_code="apparel"):
        """A new product with `stock` units in one warehouse; returns its SKU."""
        sku = "T-" + uuid.uuid4().hex[:10].upper()
        self.ok("PUT", f"/v1/products/{sku}", {
            "name": name, "price": {"amount": price_minor, "currency": "INR"}, "tax_code": tax_code})
        self.ok("PUT", f"/v1/inventory/{sku}/warehouses/blr-1", {"on_hand": stock})
        return sku

    def available(self, sku):
        return self.ok("GET", f"/v1/inventory/{sku}")["available"]

    def on_hand(self, sku):
        return self.ok("GET", f"/v1/inventory/{sku}")["on_hand"]


def _seller(api):
    # The seller in Karnataka, 18% GST on apparel: CGST + SGST within the state, IGST to others.
    api.ok("PUT", "/v1/settings/tax", {
        "origin": {"country": "IN", "region": "KA"}, "gstin": "29ABCDE1234F1ZW",
        "legal_name": "Asha Textiles Pvt Ltd"})
    api.ok("PUT", "/v1/tax_codes/apparel", {"hsn": "6109", "rates": [{"country": "IN", "rate_bps": 1800}]})


@pytest.fixture(scope="session")
def api(base_url, api_key):
    shop = Api(base_url, api_key)
    _seller(shop)
    return shop


@pytest.fixture(scope="session")
def short_api(short_hold_url, api_key):
    shop = Api(short_hold_url, api_key)
    _seller(shop)
    return shop


@pytest.fixture
def product(api):
    """A tee with 5 in stock on the main server: (sku, name)."""
    name = "Cotton tee " + uuid.uuid4().hex[:4]
    return api.product(name, 49900, 5), name


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=_env("TILL_CHROMIUM"),
            # Root in a container has no user namespaces for Chromium's sandbox.
            args=["--no-sandbox"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser, api_key):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(SETTLE_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, api_key):
    p = context.new_page()
    yield p
    # No page the test saw may carry the API key.
    assert api_key not in p.content()


@pytest.fixture(scope="session")
def artifacts():
    path = os.environ.get("TILL_ARTIFACTS", "target/browser-artifacts")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture
def shot(artifacts):
    """shot(page, name): a full-page screenshot, kept as a CI artifact."""
    backend = os.environ.get("TILL_BROWSER_BACKEND", "any")

    def take(p, name):
        p.screenshot(path=os.path.join(artifacts, f"{backend}-{name}.png"), full_page=True)

    return take


def order_id_of(p):
    match = re.search(r"/shop/orders/(ord_[A-Za-z0-9]+)", p.url)
    assert match, f"not on an order's page: {p.url}"
    return match.group(1)


# --- The console (/admin) ---------------------------------------------------------------


def sign_in(p, url, key):
    """Signs in to the console in this page's browser context, as a person would."""
    p.goto(f"{url}/admin/sign-in")
    p.get_by_label("API key").fill(key)
    p.get_by_role("button", name="Sign in").click()


@pytest.fixture
def console(page, base_url, api_key):
    """A page signed in to the console, on its dashboard."""
    sign_in(page, base_url, api_key)
    page.wait_for_url(f"{base_url}/admin")
    return page


@pytest.fixture
def paid_order(api, product):
    """An order of one `product`, paid by card through the API: (order id, sku, email)."""
    sku, _ = product
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    order = api.ok("POST", "/v1/orders", {
        "customer": {"email": email, "name": "Ravi Kumar"},
        "items": [{"sku": sku, "qty": 1}],
        "ship_to": {"country": "IN", "region": "MH", "city": "Pune", "postal_code": "411001"}})
    request = urllib.request.Request(
        f"{api.url}/v1/orders/{order['id']}/payments", method="POST",
        data=json.dumps({"method": "card", "source": "pm_card_visa"}).encode())
    request.add_header("Authorization", f"Bearer {api.key}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Idempotency-Key", uuid.uuid4().hex)
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
    assert api.ok("GET", f"/v1/orders/{order['id']}")["status"] == "confirmed"
    return order["id"], sku, email
