# Conformance: the official Python SDKs (stripe 16, razorpay 2.0) against `till gateway-sim`,
# started by tests/sdk/run.sh, which passes its address, keys and the port its webhooks go to
# (TILL_SDK_*). This file starts nothing but the listener that receives those webhooks.

import http.server
import json
import os
import threading
import time
import uuid

import pytest
import razorpay
import requests
import stripe

SIM = os.environ["TILL_SDK_SIM_URL"]
SK = os.environ["TILL_SDK_STRIPE_KEY"]
WHSEC = os.environ["TILL_SDK_STRIPE_WEBHOOK_SECRET"]
RZP_ID = os.environ["TILL_SDK_RAZORPAY_KEY_ID"]
RZP_SECRET = os.environ["TILL_SDK_RAZORPAY_KEY_SECRET"]
RZP_WHSEC = os.environ["TILL_SDK_RAZORPAY_WEBHOOK_SECRET"]
HOOK_PORT = int(os.environ["TILL_SDK_WEBHOOK_PORT"])

stripe.api_key = SK
stripe.api_base = SIM + "/sim/stripe"
# A lost answer is retried by the SDK under the same key; none is expected here.
stripe.max_network_retries = 0

# Fields Stripe's OpenAPI marks required (the stripe SDKs' generated types, non-optional).
PAYMENT_INTENT_REQUIRED = """id object amount amount_capturable amount_received application
application_fee_amount automatic_payment_methods canceled_at cancellation_reason capture_method
client_secret confirmation_method created currency customer description last_payment_error
latest_charge livemode metadata next_action on_behalf_of payment_method
payment_method_configuration_details payment_method_options payment_method_types processing
receipt_email review setup_future_usage shipping source statement_descriptor
statement_descriptor_suffix status transfer_group""".split()
REFUND_REQUIRED = """id object amount balance_transaction charge created currency metadata
payment_intent reason receipt_number source_transfer_reversal status
transfer_reversal""".split()
EVENT_REQUIRED = """id object api_version created data livemode pending_webhooks request
type""".split()

HOOKS = []  # (path, headers, raw body) of every webhook gateway-sim posted


class Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        HOOKS.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session", autouse=True)
def webhook_listener():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", HOOK_PORT), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()


def stripe_events(object_id, count, timeout_s=15):
    """Verified Stripe events about `object_id` (by data.object.id or payment_intent), once
    at least `count` arrived."""
    deadline = time.time() + timeout_s
    while True:
        events = []
        for path, headers, body in list(HOOKS):
            if path != "/v1/webhooks/stripe":
                continue
            event = stripe.Webhook.construct_event(body, headers["stripe-signature"], WHSEC)
            raw = json.loads(body)
            obj = raw["data"]["object"]
            if object_id in (obj.get("id"), obj.get("payment_intent")):
                events.append((event, raw))
        if len(events) >= count or time.time() > deadline:
            return events
        time.sleep(0.1)


def razorpay_events(payment_id, count, timeout_s=15):
    deadline = time.time() + timeout_s
    client = rzp()
    while True:
        events = []
        for path, headers, body in list(HOOKS):
            if path != "/v1/webhooks/razorpay":
                continue
            client.utility.verify_webhook_signature(body, headers["x-razorpay-signature"], RZP_WHSEC)
            event = json.loads(body)
            if event["payload"]["payment"]["entity"]["id"] == payment_id:
                events.append(event)
        if len(events) >= count or time.time() > deadline:
            return events
        time.sleep(0.1)


def key():
    return "sdk-" + uuid.uuid4().hex


def authorized_intent(amount=2000):
    pi = stripe.PaymentIntent.create(
        amount=amount, currency="INR", payment_method="pm_card_visa",
        capture_method="manual", confirm=True, return_url="https://shop.example/back",
    )
    assert pi.status == "requires_capture"
    assert pi.amount_capturable == amount
    return pi


# --- Stripe -------------------------------------------------------------------------------

def test_stripe_confirm_false_waits_for_confirmation_then_confirm_authorizes():
    pi = stripe.PaymentIntent.create(
        amount=2000, currency="inr", payment_method="pm_card_visa",
        capture_method="manual", confirm=False,
    )
    assert pi.status == "requires_confirmation"
    assert pi.currency == "inr"
    assert pi.client_secret.startswith(pi.id + "_secret_")
    assert pi.latest_charge is None
    confirmed = stripe.PaymentIntent.confirm(pi.id, return_url="https://shop.example/back")
    assert confirmed.status == "requires_capture"
    assert confirmed.amount_capturable == 2000
    assert confirmed.latest_charge == "ch_" + pi.id[3:]
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.PaymentIntent.confirm(pi.id)
    assert err.value.code == "payment_intent_unexpected_state"


def test_stripe_intent_without_payment_method_requires_one():
    pi = stripe.PaymentIntent.create(amount=1500, currency="usd")
    assert pi.status == "requires_payment_method"
    assert pi.payment_method is None
    assert pi.capture_method == "automatic"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.PaymentIntent.confirm(pi.id)
    assert err.value.code == "payment_intent_unexpected_state"
    done = stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_mastercard")
    assert (done.status, done.amount_received, done.payment_method) == (
        "succeeded", 1500, "pm_card_mastercard")


def test_stripe_partial_capture_is_replayed_under_its_key_and_refunds_take_the_rest():
    pi = authorized_intent(2000)
    k = key()
    captured = stripe.PaymentIntent.capture(pi.id, amount_to_capture=1500, idempotency_key=k)
    assert (captured.status, captured.amount_received, captured.amount_capturable) == (
        "succeeded", 1500, 0)
    again = stripe.PaymentIntent.capture(pi.id, amount_to_capture=1500, idempotency_key=k)
    assert again.last_response.headers.get("idempotent-replayed") == "true"
    assert again.amount_received == 1500
    with pytest.raises(stripe.IdempotencyError):
        stripe.PaymentIntent.capture(pi.id, amount_to_capture=1000, idempotency_key=k)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.PaymentIntent.capture(pi.id, idempotency_key=key())
    assert err.value.code == "payment_intent_unexpected_state"
    first = stripe.Refund.create(payment_intent=pi.id, amount=400)
    assert (first.amount, first.status, first.currency) == (400, "succeeded", "inr")
    rest = stripe.Refund.create(payment_intent=pi.id)
    assert rest.amount == 1100  # what was captured (1500) less the first refund
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Refund.create(payment_intent=pi.id, amount=1)
    assert err.value.code == "charge_already_refunded"
    listed = stripe.Refund.list(payment_intent=pi.id)
    assert sorted(r.amount for r in listed.data) == [400, 1100]
    assert stripe.Refund.retrieve(first.id).amount == 400
    charge = stripe.PaymentIntent.retrieve(pi.id, expand=["latest_charge"]).latest_charge
    assert (charge.amount_captured, charge.amount_refunded, charge.refunded) == (1500, 1500, True)


def test_stripe_capture_over_the_authorization_is_refused():
    pi = authorized_intent(1000)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.PaymentIntent.capture(pi.id, amount_to_capture=1001)
    assert err.value.code == "amount_too_large"
    assert stripe.PaymentIntent.retrieve(pi.id).status == "requires_capture"


def test_stripe_refund_by_charge_with_distinct_error_codes():
    pi = stripe.PaymentIntent.create(amount=3000, currency="inr", payment_method="pm_card_visa",
                                     confirm=True, return_url="https://shop.example/back")
    assert pi.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Refund.create(charge=pi.latest_charge, amount=3001)
    assert err.value.code == "amount_too_large"
    refund = stripe.Refund.create(charge=pi.latest_charge, amount=1000, reason="requested_by_customer")
    assert (refund.payment_intent, refund.charge, refund.reason) == (
        pi.id, pi.latest_charge, "requested_by_customer")
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Refund.create(payment_intent="pi_missing")
    assert (err.value.code, err.value.http_status) == ("resource_missing", 404)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Refund.create(payment_intent=authorized_intent().id)
    assert err.value.code == "charge_not_refundable"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Refund.create(amount=5)
    assert err.value.code == "parameter_missing"


def test_stripe_refund_key_reused_with_another_body_is_an_idempotency_error():
    pi = stripe.PaymentIntent.create(amount=900, currency="inr", payment_method="pm_card_visa",
                                     confirm=True, return_url="https://shop.example/back")
    k = key()
    first = stripe.Refund.create(payment_intent=pi.id, amount=100, idempotency_key=k)
    replay = stripe.Refund.create(payment_intent=pi.id, amount=100, idempotency_key=k)
    assert replay.id == first.id
    assert replay.last_response.headers.get("idempotent-replayed") == "true"
    with pytest.raises(stripe.IdempotencyError) as err:
        stripe.Refund.create(payment_intent=pi.id, amount=200, idempotency_key=k)
    assert err.value.http_status == 400
    # Only the first refund took money.
    charge = stripe.PaymentIntent.retrieve(pi.id, expand=["latest_charge"]).latest_charge
    assert charge.amount_refunded == 100


def test_stripe_decline_raises_card_error_with_the_intent():
    with pytest.raises(stripe.CardError) as err:
        stripe.PaymentIntent.create(amount=500, currency="inr", confirm=True,
                                    payment_method="pm_card_chargeDeclinedInsufficientFunds")
    assert (err.value.code, err.value.http_status) == ("card_declined", 402)
    assert err.value.error.decline_code == "insufficient_funds"
    assert err.value.error.payment_intent.status == "requires_payment_method"


def test_stripe_three_d_secure_next_action_with_and_without_return_url():
    redirect = stripe.PaymentIntent.create(
        amount=700, currency="inr", payment_method="pm_card_authenticationRequired",
        capture_method="manual", confirm=True, return_url="https://shop.example/back")
    assert redirect.status == "requires_action"
    assert redirect.next_action.type == "redirect_to_url"
    assert redirect.next_action.redirect_to_url.return_url == "https://shop.example/back"
    sdk = stripe.PaymentIntent.create(
        amount=700, currency="inr", payment_method="pm_card_authenticationRequired", confirm=True)
    assert sdk.next_action.type == "use_stripe_sdk"
    assert sdk.client_secret.startswith(sdk.id + "_secret_")
    # The customer completes the challenge; the authorization then waits for its capture.
    assert requests.get(redirect.next_action.redirect_to_url.url, timeout=10).status_code == 200
    assert stripe.PaymentIntent.retrieve(redirect.id).status == "requires_capture"


def test_stripe_objects_carry_every_required_field():
    pi = authorized_intent()
    stripe.PaymentIntent.capture(pi.id)
    refund = stripe.Refund.create(payment_intent=pi.id)
    for field in PAYMENT_INTENT_REQUIRED:
        assert field in stripe.PaymentIntent.retrieve(pi.id), field
    for field in REFUND_REQUIRED:
        assert field in refund, field
    events = stripe_events(pi.id, 5)
    assert events, "no webhook arrived"
    for _, raw in events:
        for field in EVENT_REQUIRED:
            assert field in raw, field
        assert raw["api_version"] == stripe.api_version


def test_stripe_webhooks_are_signed_and_typed_after_the_object_they_carry():
    pi = authorized_intent(1200)
    stripe.PaymentIntent.capture(pi.id, amount_to_capture=1000)
    refund = stripe.Refund.create(payment_intent=pi.id, amount=250)
    events = stripe_events(pi.id, 5)
    kinds = [e.type for e, _ in events]
    for kind in ["payment_intent.created", "payment_intent.amount_capturable_updated",
                 "payment_intent.succeeded", "refund.created", "charge.refunded"]:
        assert kind in kinds, kinds
    for event, _ in events:
        obj = event.data.object
        assert obj.object == event.type.split(".")[0], event.type
        # The object as it stood when the event happened.
        if event.type == "payment_intent.amount_capturable_updated":
            assert (obj.status, obj.amount_capturable) == ("requires_capture", 1200)
        if event.type == "payment_intent.succeeded":
            assert (obj.status, obj.amount_received) == ("succeeded", 1000)
        if event.type == "refund.created":
            assert (obj.id, obj.amount) == (refund.id, 250)
        if event.type == "charge.refunded":
            assert obj.amount_refunded == 250
    with pytest.raises(stripe.SignatureVerificationError):
        _, headers, body = next(h for h in HOOKS if h[0] == "/v1/webhooks/stripe")
        stripe.Webhook.construct_event(body, headers["stripe-signature"], "whsec_wrong")


def test_stripe_list_pages_and_cancel():
    ids = [stripe.PaymentIntent.create(amount=100 + i, currency="inr").id for i in range(3)]
    page = stripe.PaymentIntent.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    seen = [pi.id for pi in stripe.PaymentIntent.list(limit=2).auto_paging_iter()]
    assert set(ids) <= set(seen)
    canceled = stripe.PaymentIntent.cancel(ids[0])
    assert canceled.status == "canceled" and canceled.canceled_at is not None
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.PaymentIntent.cancel(ids[0])
    assert err.value.code == "payment_intent_unexpected_state"


def test_stripe_http_basic_auth_version_header_and_error_bodies_everywhere():
    base = SIM + "/sim/stripe"
    basic = requests.post(base + "/v1/payment_intents", auth=(SK, ""),
                          data={"amount": 100, "currency": "inr"}, timeout=10)
    assert basic.status_code == 200 and basic.json()["object"] == "payment_intent"
    assert basic.headers["stripe-version"]
    pinned = stripe.PaymentIntent.retrieve(basic.json()["id"])
    assert pinned.last_response.headers["stripe-version"] == stripe.api_version
    with pytest.raises(stripe.AuthenticationError):
        stripe.PaymentIntent.list(api_key="sk_test_wrong")
    for method, path, status in [("get", "/v1/nothing_here", 404),
                                 ("delete", "/v1/payment_intents", 405),
                                 ("get", "/v1/payment_intents/pi_missing", 404)]:
        answer = requests.request(method, base + path, auth=(SK, ""), timeout=10)
        assert answer.status_code == status, path
        assert answer.json()["error"]["type"] == "invalid_request_error", path
    # The Stripe API is at gateway-sim's root too, for SDKs that take no base path.
    assert requests.get(SIM + "/v1/payment_intents", auth=(SK, ""), timeout=10).status_code == 200


# --- Razorpay -----------------------------------------------------------------------------

def rzp():
    return razorpay.Client(auth=(RZP_ID, RZP_SECRET), base_url=SIM + "/sim/razorpay")


def paid_card_payment(client, amount=5000):
    order = client.order.create({"amount": amount, "currency": "INR"})
    answer = client.payment.createPaymentJson({
        "amount": amount, "currency": "INR", "order_id": order["id"], "method": "card",
        "token": "pm_card_visa", "email": "asha@example.com", "contact": "9999999999"})
    return order, answer


def test_razorpay_order_without_receipt_is_fetched_and_listed():
    client = rzp()
    order = client.order.create({"amount": 5000, "currency": "INR", "notes": {"cart": "42"}})
    assert (order["receipt"], order["status"], order["amount_due"]) == (None, "created", 5000)
    fetched = client.order.fetch(order["id"])
    assert (fetched["id"], fetched["notes"]) == (order["id"], {"cart": "42"})
    listed = client.order.all()
    assert listed["entity"] == "collection"
    assert order["id"] in [o["id"] for o in listed["items"]]
    with_receipt = client.order.create({"amount": 100, "currency": "INR", "receipt": "rcpt-" + key()})
    found = client.order.all({"receipt": with_receipt["receipt"]})
    assert [o["id"] for o in found["items"]] == [with_receipt["id"]]
    with pytest.raises(razorpay.errors.BadRequestError):
        client.order.fetch("order_missing")


def test_razorpay_signature_is_handed_out_and_verifies():
    client = rzp()
    order, answer = paid_card_payment(client)
    params = {"razorpay_order_id": answer["razorpay_order_id"],
              "razorpay_payment_id": answer["razorpay_payment_id"],
              "razorpay_signature": answer["razorpay_signature"]}
    assert params["razorpay_order_id"] == order["id"]
    assert client.utility.verify_payment_signature(params)
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        client.utility.verify_payment_signature(dict(params, razorpay_payment_id="pay_other"))


def test_razorpay_capture_partial_and_full_refunds():
    client = rzp()
    order, answer = paid_card_payment(client, 5000)
    pay_id = answer["razorpay_payment_id"]
    assert client.payment.fetch(pay_id)["status"] == "authorized"
    captured = client.payment.capture(pay_id, 5000)
    assert (captured["status"], captured["captured"]) == ("captured", True)
    assert client.order.fetch(order["id"])["status"] == "paid"
    part = client.payment.refund(pay_id, {"amount": 1500, "speed": "optimum", "receipt": "r-1",
                                          "notes": {"why": "size"}})
    assert (part["amount"], part["speed_requested"], part["receipt"], part["status"]) == (
        1500, "optimum", "r-1", "processed")
    payment = client.payment.fetch(pay_id)
    assert (payment["amount_refunded"], payment["refund_status"], payment["status"]) == (
        1500, "partial", "captured")
    with pytest.raises(razorpay.errors.BadRequestError):
        client.refund.create({"payment_id": pay_id, "amount": 3501})
    rest = client.refund.create({"payment_id": pay_id})  # no amount: the rest
    assert (rest["amount"], rest["payment_id"]) == (3500, pay_id)
    payment = client.payment.fetch(pay_id)
    assert (payment["amount_refunded"], payment["refund_status"], payment["status"]) == (
        5000, "full", "refunded")
    with pytest.raises(razorpay.errors.BadRequestError):
        client.payment.refund(pay_id, {"amount": 100})
    listed = client.payment.fetch_multiple_refund(pay_id)
    assert sorted(r["amount"] for r in listed["items"]) == [1500, 3500]
    assert client.refund.fetch(part["id"])["amount"] == 1500
    assert client.payment.fetch_refund_id(pay_id, rest["id"])["amount"] == 3500
    assert part["id"] in [r["id"] for r in client.refund.all({"count": 100})["items"]]


def test_razorpay_refund_is_replayed_under_its_idempotency_header():
    client = rzp()
    _, answer = paid_card_payment(client, 2000)
    pay_id = answer["razorpay_payment_id"]
    client.payment.capture(pay_id, 2000)
    k = key()
    first = client.payment.refund(pay_id, {"amount": 500}, headers={"X-Refund-Idempotency": k})
    again = client.payment.refund(pay_id, {"amount": 500}, headers={"X-Refund-Idempotency": k})
    assert again["id"] == first["id"]
    assert client.payment.fetch(pay_id)["amount_refunded"] == 500


def test_razorpay_refund_of_an_uncaptured_payment_is_refused():
    client = rzp()
    _, answer = paid_card_payment(client, 1000)
    with pytest.raises(razorpay.errors.BadRequestError):
        client.payment.refund(answer["razorpay_payment_id"], {})


def test_razorpay_authorized_event_arrives_even_after_the_capture():
    client = rzp()
    _, answer = paid_card_payment(client, 3000)
    pay_id = answer["razorpay_payment_id"]
    client.payment.capture(pay_id, 3000)
    client.payment.refund(pay_id, {"amount": 1000})
    events = razorpay_events(pay_id, 3)
    kinds = [e["event"] for e in events]
    assert "payment.authorized" in kinds and "payment.captured" in kinds, kinds
    assert "refund.processed" in kinds, kinds
    authorized = next(e for e in events if e["event"] == "payment.authorized")
    assert authorized["payload"]["payment"]["entity"]["status"] == "authorized"
    refund = next(e for e in events if e["event"] == "refund.processed")
    assert refund["payload"]["refund"]["entity"]["amount"] == 1000


def test_razorpay_upi_collect_authorizes_later_by_webhook():
    client = rzp()
    order = client.order.create({"amount": 2500, "currency": "INR", "receipt": "upi-" + key()})
    answer = client.payment.createPaymentJson({
        "amount": 2500, "currency": "INR", "order_id": order["id"], "method": "upi",
        "upi": {"flow": "collect", "vpa": "success@razorpay"}})
    pay_id = answer["razorpay_payment_id"]
    assert client.payment.fetch(pay_id)["status"] == "created"
    events = razorpay_events(pay_id, 1)
    assert [e["event"] for e in events] == ["payment.authorized"]
    assert client.payment.fetch(pay_id)["status"] == "authorized"
    assert pay_id in [p["id"] for p in client.order.payments(order["id"])["items"]]


def test_razorpay_wrong_key_and_unknown_route_answer_razorpay_errors():
    wrong = razorpay.Client(auth=(RZP_ID, "wrong"), base_url=SIM + "/sim/razorpay")
    with pytest.raises(razorpay.errors.BadRequestError):
        wrong.order.all()
    answer = requests.get(SIM + "/sim/razorpay/v1/nothing", auth=(RZP_ID, RZP_SECRET), timeout=10)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "BAD_REQUEST_ERROR"
