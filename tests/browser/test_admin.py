"""The console in Chromium, as a shop owner uses it: signing in with the API key (and being
sent there without a session), an order's page with its timeline, a refund issued from it,
a stock edit that the storefront shows, and a form refused without its CSRF token."""

import re

from playwright.sync_api import expect

from conftest import sign_in

# The console's main pages: (path, heading).
PAGES = [
    ("/admin", "Dashboard"),
    ("/admin/orders", "Orders"),
    ("/admin/inventory", "Inventory"),
    ("/admin/coupons", "Coupons"),
    ("/admin/tax", "Tax"),
    ("/admin/webhooks", "Webhooks"),
    ("/admin/events", "Events"),
]


def test_the_console_needs_the_api_key_and_keeps_it_out_of_the_browser(page, base_url, api_key, shot):
    for path, _ in PAGES:
        page.goto(base_url + path)
        expect(page).to_have_url(f"{base_url}/admin/sign-in")
    shot(page, "admin-sign-in")
    sign_in(page, base_url, "sk_not_this_tills_key")
    expect(page.get_by_role("alert")).to_have_text("That is not this Till's API key.")
    assert not [c for c in page.context.cookies() if c["name"] == "till_admin"]

    sign_in(page, base_url, api_key)
    expect(page).to_have_url(f"{base_url}/admin")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    session = [c for c in page.context.cookies() if c["name"] == "till_admin"]
    assert len(session) == 1, page.context.cookies()
    assert session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    assert session[0]["path"] == "/admin"
    assert api_key not in session[0]["value"]
    # Scripts cannot read it.
    assert "till_admin" not in page.evaluate("document.cookie")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base_url}/admin/sign-in")
    page.goto(f"{base_url}/admin/orders")
    expect(page).to_have_url(f"{base_url}/admin/sign-in")


def test_an_orders_page_shows_its_timeline_and_issues_a_refund(console, base_url, api, paid_order, shot):
    order_id, _, email = paid_order
    page = console
    page.get_by_role("link", name="Orders", exact=True).click()
    page.get_by_label("Customer or order").fill(email)
    page.get_by_label("Status").select_option("confirmed")
    page.get_by_label("Payment method").select_option("card")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.orders tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(email)
    shot(page, "admin-orders")

    page.get_by_role("link", name=order_id).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order {order_id}")
    timeline = page.locator("ol.timeline li")
    kinds = timeline.evaluate_all("items => items.map(i => i.dataset.kind)")
    # The API's timeline, read after the page: the page's steps are its first ones (emails and
    # webhooks may have been added since).
    steps = [s["kind"] for s in api.ok("GET", f"/v1/orders/{order_id}/timeline")]
    assert kinds == steps[:len(kinds)], (kinds, steps)
    for kind in ["order.created", "stock.locked", "payment.succeeded", "order.confirmed", "invoice.issued"]:
        assert kind in kinds, kinds
    expect(page.get_by_role("link", name=re.compile(r"^INV.+ \(PDF\)$"))).to_be_visible()
    shot(page, "admin-order")

    page.get_by_label(re.compile("Refund amount")).fill("100.00")
    page.get_by_role("button", name="Issue refund").click()
    expect(page.get_by_role("status")).to_have_text("Done: refund issued.")
    refunds = api.ok("GET", f"/v1/orders/{order_id}")["refunds"]
    assert [r["amount"] for r in refunds] == [10000], refunds
    expect(page.locator("table.refunds")).to_contain_text(refunds[0]["id"])
    expect(page.locator("ol.timeline")).to_contain_text("refund.requested")
    shot(page, "admin-order-refunded")

    # More than is left: refused as the API refuses it, nothing more refunded.
    page.get_by_label(re.compile("Refund amount")).fill("100000")
    page.get_by_role("button", name="Issue refund").click()
    expect(page.get_by_role("alert")).to_contain_text("amount must be")
    assert len(api.ok("GET", f"/v1/orders/{order_id}")["refunds"]) == 1


def test_a_stock_edit_shows_on_the_storefront(console, base_url, api, product, shot):
    sku, name = product
    page = console
    page.goto(f"{base_url}/admin/inventory")
    page.get_by_role("link", name=sku).click()
    row = page.locator("tr[data-warehouse=blr-1]")
    expect(row).to_contain_text("5")
    row.get_by_label("On hand in blr-1").fill("12")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Done: blr-1 set.")
    expect(page.locator("table.ledger tbody tr").first).to_contain_text("+7")
    assert api.on_hand(sku) == 12
    shot(page, "admin-stock")

    shop = page.context.new_page()
    shop.goto(f"{base_url}/shop")
    card = shop.get_by_role("listitem").filter(has_text=name)
    expect(card).to_contain_text("12 in stock")
    shop.close()

    # Below what checkouts hold is refused with the API's reason; the stock stays.
    api.ok("POST", "/v1/orders", {"items": [{"sku": sku, "qty": 3}]})
    page.locator("tr[data-warehouse=blr-1]").get_by_label("On hand in blr-1").fill("2")
    page.locator("tr[data-warehouse=blr-1]").get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("below the 3 units locked")
    assert api.on_hand(sku) == 12


def test_a_form_without_its_csrf_token_is_refused(console, base_url, api, product):
    sku, _ = product
    order = api.ok("POST", "/v1/orders", {"items": [{"sku": sku, "qty": 1}]})
    page = console
    # The browser's own cookies go with it (same site), but not the form's token.
    for form in [{}, {"csrf": "not-the-token"}]:
        answer = page.request.post(f"{base_url}/admin/orders/{order['id']}/cancel", form=form,
                                   max_redirects=0)
        assert answer.status == 403, answer.status
    assert api.ok("GET", f"/v1/orders/{order['id']}")["status"] == "pending"
    page.goto(f"{base_url}/admin/orders/{order['id']}")
    page.get_by_role("button", name="Cancel order").click()
    expect(page.get_by_role("status")).to_have_text("Done: order cancelled.")
    assert api.ok("GET", f"/v1/orders/{order['id']}")["status"] == "cancelled"


def test_the_main_pages_render(console, base_url, paid_order, shot):
    page = console
    for path, heading in PAGES:
        page.goto(base_url + path)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        shot(page, "admin-" + heading.lower())
    page.goto(f"{base_url}/admin")
    expect(page.locator("figure.chart svg").first).to_be_visible()
    expect(page.locator("#checkouts .value")).not_to_have_text("0")
