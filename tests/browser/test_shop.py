"""The storefront in Chromium, as a customer uses it: catalog, cart, checkout with its live
quote, and each way an order is paid or ends, on the page the customer watches."""

import re
import uuid
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from conftest import SETTLE_MS, order_id_of


def add_to_cart(p, url, name, qty=1):
    p.goto(f"{url}/shop")
    if qty != 1:
        p.get_by_role("listitem").filter(has_text=name).get_by_label("Quantity").fill(str(qty))
    p.get_by_role("button", name=f"Add {name} to cart").click()
    expect(p).to_have_url(re.compile(r"/shop/cart$"))


def fill_details(p, state="Karnataka"):
    # A new customer each time: the shop caps pending orders per email address.
    p.get_by_label("Email").fill(f"asha.{uuid.uuid4().hex[:8]}@example.com")
    p.get_by_label("Full name").fill("Asha Rao")
    p.get_by_label("Address").fill("12 MG Road")
    p.get_by_label("City").fill("Bengaluru")
    p.get_by_label("PIN / postal code").fill("560001")
    p.get_by_label("Country").select_option("IN")
    p.get_by_label("State (India)").select_option(label=state)


def place_order(p):
    p.get_by_role("button", name="Place order").click()
    expect(p).to_have_url(re.compile(r"/shop/orders/ord_"))
    expect(p.locator("#status")).to_have_text("pending")
    return order_id_of(p)


def order_one(p, url, name):
    """One of `name` in the cart, checked out: the new order's id, its page open."""
    add_to_cart(p, url, name)
    fill_details(p)
    return place_order(p)


def pay_by_card(p, label):
    p.get_by_label(label).check()
    p.get_by_role("button", name="Pay by card").click()


def test_a_card_purchase_confirms_the_order_with_its_invoice(page, base_url, api, product, shot, api_key):
    sku, name = product
    add_to_cart(page, base_url, name, qty=2)
    shot(page, "cart")
    fill_details(page)
    # Within Karnataka: CGST + SGST, live; another state: IGST, without a reload.
    quote = page.locator("#quote")
    expect(quote).to_contain_text("CGST 9%")
    page.get_by_label("State (India)").select_option(label="Maharashtra")
    expect(quote).to_contain_text("IGST 18%")
    expect(quote).not_to_contain_text("CGST")
    expect(page.locator("#total")).to_have_text("₹1,177.64")
    shot(page, "checkout")
    order_id = place_order(page)
    expect(page.locator(".countdown")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    assert api.available(sku) == 3  # two held for this order
    shot(page, "order-pending")
    pay_by_card(page, "Visa ending 4242 (succeeds)")
    expect(page.locator("#status")).to_have_text("confirmed")
    expect(page.get_by_role("status")).to_contain_text("Your order is confirmed")
    shot(page, "order-confirmed")
    assert api.on_hand(sku) == 3
    # The invoice PDF, through the order's own secret (the browser's cookie).
    link = page.get_by_role("link", name="download the invoice (PDF)")
    answer = page.request.get(base_url + link.get_attribute("href"))
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.body().startswith(b"%PDF")
    # The secret is out of reach of scripts, and the cart is emptied.
    cookie = next(c for c in page.context.cookies() if c["name"] == "till_order")
    assert cookie["httpOnly"] and cookie["value"].startswith(order_id + "_secret_")
    assert api_key not in page.content()
    page.goto(f"{base_url}/shop/cart")
    expect(page.get_by_text("Your cart is empty")).to_be_visible()


def test_a_upi_payment_completes_by_webhook_while_the_page_watches(page, base_url, api, product):
    sku, name = product
    order_one(page, base_url, name)
    page.get_by_label("UPI ID (VPA)").fill("success@razorpay")
    page.get_by_role("button", name="Send a UPI payment request").click()
    # Processing until the simulator's webhook arrives; the page follows by itself.
    expect(page.get_by_text("We sent a payment request to your UPI app")).to_be_visible()
    expect(page.locator("#status")).to_have_text("confirmed", timeout=SETTLE_MS)
    assert api.on_hand(sku) == 4


def test_a_upi_app_pays_the_intent_from_its_qr_code(page, base_url, api, product):
    sku, name = product
    order_one(page, base_url, name)
    page.get_by_role("button", name="Pay with a UPI app (QR code)").click()
    expect(page.get_by_role("img", name="UPI payment QR code")).to_be_visible()
    link = page.get_by_role("link", name="Open a UPI app").get_attribute("href")
    assert link.startswith("upi://pay?")
    payment = parse_qs(urlparse(link).query)["tr"][0]
    # The customer's UPI app approves (the simulator plays it); the page follows.
    assert page.request.get(f"{base_url}/sim/razorpay/upi/{payment}/approve").ok
    expect(page.locator("#status")).to_have_text("confirmed", timeout=SETTLE_MS)
    assert api.on_hand(sku) == 4


def test_a_wallet_payment_completes_by_webhook(page, base_url, api, product):
    sku, name = product
    order_one(page, base_url, name)
    page.get_by_label("Wallet").select_option(label="PhonePe")
    page.get_by_role("button", name="Pay with wallet").click()
    expect(page.get_by_text("Waiting for the payment to be confirmed")).to_be_visible()
    expect(page.locator("#status")).to_have_text("confirmed", timeout=SETTLE_MS)
    assert api.on_hand(sku) == 4


def test_a_declined_card_releases_the_stock_and_a_retry_succeeds(page, base_url, api, product):
    sku, name = product
    order_one(page, base_url, name)
    pay_by_card(page, "Visa ending 0002 (declined)")
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.get_by_role("status")).to_contain_text("The payment failed (card_declined)")
    assert api.available(sku) == 5
    # The cart survived: check out again and pay with a good card.
    page.get_by_role("link", name="Try again with another payment method").click()
    fill_details(page)
    place_order(page)
    pay_by_card(page, "Mastercard ending 4444 (succeeds)")
    expect(page.locator("#status")).to_have_text("confirmed")
    assert api.on_hand(sku) == 4


def test_3d_secure_goes_to_the_bank_and_back(page, base_url, api, product):
    sku, name = product
    order_id = order_one(page, base_url, name)
    pay_by_card(page, "Visa ending 3184 (asks for 3-D Secure)")
    # Straight to the bank's page; or, when the gateway's answer came late (a slow machine),
    # to the order's page, which links to it once the payment asks for it.
    bank = page.get_by_role("link", name="Confirm the payment with your bank")
    expect(page.get_by_text("Payment authenticated").or_(bank)).to_be_visible()
    if bank.is_visible():
        bank.click()
    expect(page).to_have_url(re.compile(r"/sim/3ds/"))
    expect(page.get_by_text("Payment authenticated")).to_be_visible()
    page.get_by_role("link", name="Return to the shop").click()
    expect(page).to_have_url(re.compile(f"/shop/orders/{order_id}$"))
    expect(page.locator("#status")).to_have_text("confirmed", timeout=SETTLE_MS)
    assert api.on_hand(sku) == 4


def test_a_coupon_applies_and_an_invalid_one_is_refused_inline(page, base_url, api, product):
    sku, name = product
    code = "SAVE" + sku[-6:]
    api.ok("PUT", f"/v1/coupons/{code}", {"kind": "percent", "percent_off": 10})
    add_to_cart(page, base_url, name)
    fill_details(page)
    coupon = page.get_by_label("Coupon code")
    coupon.fill("NOSUCHCODE")
    expect(page.locator("#coupon-error")).to_contain_text("coupon NOSUCHCODE cannot be used")
    expect(page.locator("#quote")).not_to_contain_text("Discount")
    coupon.fill(code.lower())
    expect(page.locator("#quote")).to_contain_text(f"Discount ({code})")
    expect(page.locator("#coupon-error")).to_have_count(0)
    # 10% off ₹499.00, then 18% GST: 449.10 + 80.84.
    expect(page.locator("#total")).to_have_text("₹529.94")
    place_order(page)
    expect(page.locator("main")).to_contain_text(f"Discount ({code})")
    expect(page.locator("#total")).to_have_text("₹529.94")
    assert api.ok("GET", f"/v1/coupons/{code}")["uses"]["reserved"] == 1


def test_an_expired_hold_is_shown_as_such_and_the_stock_is_back(page, short_hold_url, short_api, shot):
    name = "Silk scarf " + uuid.uuid4().hex[:4]
    sku = short_api.product(name, 29900, 3)
    order_one(page, short_hold_url, name)
    assert short_api.available(sku) == 2
    # Nobody pays: the hold runs out, the worker expires the order, the page follows.
    expect(page.locator("#status")).to_have_text("expired", timeout=SETTLE_MS)
    expect(page.get_by_role("status")).to_contain_text("This order expired")
    shot(page, "order-expired")
    assert short_api.available(sku) == 3


def test_a_client_secret_cannot_open_another_orders_pages(browser, base_url, api, product):
    sku, name = product
    orders = []
    contexts = [browser.new_context(), browser.new_context()]
    for ctx in contexts:
        p = ctx.new_page()
        add_to_cart(p, base_url, name)
        fill_details(p)
        orders.append((p, place_order(p)))
    (first, first_id), (_, second_id) = orders
    # Its own order's pages open (the invoice only once the order is confirmed); the other's
    # are not found, exactly like an order that does not exist.
    for path, own in [("", 200), ("/status", 200), ("/invoice.pdf", 409)]:
        assert first.request.get(f"{base_url}/shop/orders/{first_id}{path}").status == own, path
        assert first.request.get(f"{base_url}/shop/orders/{second_id}{path}").status == 404, path
        assert first.request.get(f"{base_url}/shop/orders/ord_nosuchorder{path}").status == 404, path
    first.goto(f"{base_url}/shop/orders/{second_id}")
    expect(first.get_by_role("heading", name="Not found")).to_be_visible()
    # Forms need the page's CSRF token: a post without it changes nothing.
    answer = first.request.post(f"{base_url}/shop/orders/{first_id}/cancel", form={"csrf": "forged"})
    assert answer.status == 400
    assert api.ok("GET", f"/v1/orders/{first_id}")["status"] == "pending"
    # The client secret is the order's only credential on the page, and it opens the API for
    # that order alone.
    secret = next(c["value"] for c in contexts[0].cookies() if c["name"] == "till_order")
    mine = first.request.get(f"{base_url}/v1/orders/{first_id}", headers={"Authorization": f"Bearer {secret}"})
    theirs = first.request.get(f"{base_url}/v1/orders/{second_id}", headers={"Authorization": f"Bearer {secret}"})
    assert (mine.status, theirs.status) == (200, 404)
    # Each order a browser placed keeps its own secret: the first order's page still opens
    # after a second order.
    third_id = order_one(first, base_url, name)
    for own in [first_id, third_id]:
        assert first.request.get(f"{base_url}/shop/orders/{own}").status == 200
    for ctx in contexts:
        ctx.close()


def test_on_a_phone_with_the_keyboard(browser, base_url, product, shot):
    sku, name = product
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    p = ctx.new_page()
    p.goto(f"{base_url}/shop")
    shot(p, "phone-catalog")
    # The skip link is the first stop; the add button works from the keyboard.
    p.keyboard.press("Tab")
    expect(p.get_by_role("link", name="Skip to content")).to_be_focused()
    p.get_by_role("button", name=f"Add {name} to cart").focus()
    p.keyboard.press("Enter")
    expect(p).to_have_url(re.compile(r"/shop/cart$"))
    fill_details(p)
    place_order(p)
    width = p.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    shot(p, "phone-order")
    ctx.close()


def test_catalog_text_is_escaped_and_assets_are_cached(page, base_url, api):
    name = '<img src=x onerror="document.title=1"> Mug ' + uuid.uuid4().hex[:4]
    api.product(name, 34900, 2)
    page.goto(f"{base_url}/shop")
    # The name is shown as text, never run as markup.
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    assert page.locator("main img").count() == 0
    assert page.title() == "Products · Till shop"
    headers = page.request.get(f"{base_url}/shop").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    css = page.request.get(f"{base_url}/assets/till.css")
    assert css.status == 200 and css.headers["cache-control"] == "public, max-age=3600"
    again = page.request.get(f"{base_url}/assets/till.css", headers={"If-None-Match": css.headers["etag"]})
    assert again.status == 304
