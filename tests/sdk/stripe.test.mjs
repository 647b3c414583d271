// Conformance: the official Stripe Node SDK against `till gateway-sim`, started by
// tests/sdk/run.sh, which passes its address and key (TILL_SDK_*). The Node SDK takes a host
// and port but no base path, so it reaches the Stripe API at gateway-sim's root (`/v1/...`).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import Stripe from 'stripe';

const sim = new URL(process.env.TILL_SDK_SIM_URL);
const stripe = new Stripe(process.env.TILL_SDK_STRIPE_KEY, {
  host: sim.hostname,
  port: Number(sim.port),
  protocol: 'http',
  maxNetworkRetries: 0,
});

async function rejects(promise, type, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.type, type, err.message);
    if (code) assert.equal(err.code, code, err.message);
    return true;
  });
}

async function authorized(amount) {
  const pi = await stripe.paymentIntents.create({
    amount, currency: 'INR', payment_method: 'pm_card_visa', capture_method: 'manual',
    confirm: true, return_url: 'https://shop.example/back',
  });
  assert.equal(pi.status, 'requires_capture');
  assert.equal(pi.amount_capturable, amount);
  return pi;
}

test('confirm=false waits in requires_confirmation until confirmed', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 1800, currency: 'inr', payment_method: 'pm_card_visa', confirm: false,
  });
  assert.equal(pi.status, 'requires_confirmation');
  assert.equal(pi.currency, 'inr');
  assert.ok(pi.client_secret.startsWith(`${pi.id}_secret_`));
  const done = await stripe.paymentIntents.confirm(pi.id, { return_url: 'https://shop.example/back' });
  assert.equal(done.status, 'succeeded');
  assert.equal(done.amount_received, 1800);
});

test('a PaymentIntent without a payment method requires one', async () => {
  const pi = await stripe.paymentIntents.create({ amount: 900, currency: 'usd' });
  assert.equal(pi.status, 'requires_payment_method');
  await rejects(stripe.paymentIntents.confirm(pi.id), 'StripeInvalidRequestError',
    'payment_intent_unexpected_state');
  const done = await stripe.paymentIntents.confirm(pi.id, { payment_method: 'pm_card_visa' });
  assert.equal(done.status, 'succeeded');
});

test('partial capture, replayed under its key; refunds take the rest', async () => {
  const pi = await authorized(2000);
  const idempotencyKey = `node-${randomUUID()}`;
  const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 1200 }, { idempotencyKey });
  assert.equal(captured.status, 'succeeded');
  assert.equal(captured.amount_received, 1200);
  const again = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 1200 }, { idempotencyKey });
  assert.equal(again.lastResponse.headers['idempotent-replayed'], 'true');
  await rejects(stripe.paymentIntents.capture(pi.id, { amount_to_capture: 100 }, { idempotencyKey }),
    'StripeIdempotencyError');
  const part = await stripe.refunds.create({ payment_intent: pi.id, amount: 200 });
  assert.equal(part.amount, 200);
  const rest = await stripe.refunds.create({ charge: captured.latest_charge });
  assert.equal(rest.amount, 1000);
  assert.equal(rest.payment_intent, pi.id);
  await rejects(stripe.refunds.create({ payment_intent: pi.id }), 'StripeInvalidRequestError',
    'charge_already_refunded');
});

test('refund errors have distinct codes', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 500, currency: 'inr', payment_method: 'pm_card_visa', confirm: true,
    return_url: 'https://shop.example/back',
  });
  await rejects(stripe.refunds.create({ payment_intent: pi.id, amount: 501 }),
    'StripeInvalidRequestError', 'amount_too_large');
  await rejects(stripe.refunds.create({ payment_intent: 'pi_nope' }),
    'StripeInvalidRequestError', 'resource_missing');
  const uncaptured = await authorized(300);
  await rejects(stripe.refunds.create({ payment_intent: uncaptured.id }),
    'StripeInvalidRequestError', 'charge_not_refundable');
  const idempotencyKey = `node-${randomUUID()}`;
  const first = await stripe.refunds.create({ payment_intent: pi.id, amount: 100 }, { idempotencyKey });
  await rejects(stripe.refunds.create({ payment_intent: pi.id, amount: 150 }, { idempotencyKey }),
    'StripeIdempotencyError');
  const list = await stripe.refunds.list({ payment_intent: pi.id });
  assert.deepEqual(list.data.map((r) => r.id), [first.id]);
});

test('a decline raises StripeCardError carrying the intent', async () => {
  await assert.rejects(
    stripe.paymentIntents.create({
      amount: 500, currency: 'inr', payment_method: 'pm_card_chargeDeclined', confirm: true,
    }),
    (err) => {
      assert.equal(err.type, 'StripeCardError');
      assert.equal(err.code, 'card_declined');
      assert.equal(err.statusCode, 402);
      assert.equal(err.raw.payment_intent.status, 'requires_payment_method');
      return true;
    },
  );
});

test('3-D Secure without a return_url is left to Stripe.js', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 700, currency: 'inr', payment_method: 'pm_card_authenticationRequired', confirm: true,
  });
  assert.equal(pi.status, 'requires_action');
  assert.equal(pi.next_action.type, 'use_stripe_sdk');
  const canceled = await stripe.paymentIntents.cancel(pi.id);
  assert.equal(canceled.status, 'canceled');
});

test('lists page with auto-pagination; a wrong key is an authentication error', async () => {
  for (let i = 0; i < 3; i += 1) {
    await stripe.paymentIntents.create({ amount: 100 + i, currency: 'inr' });
  }
  const page = await stripe.paymentIntents.list({ limit: 2 });
  assert.equal(page.data.length, 2);
  assert.equal(page.has_more, true);
  let seen = 0;
  for await (const pi of stripe.paymentIntents.list({ limit: 2 })) {
    assert.equal(pi.object, 'payment_intent');
    seen += 1;
  }
  assert.ok(seen >= 3);
  const wrong = new Stripe('sk_test_wrong', {
    host: sim.hostname, port: Number(sim.port), protocol: 'http', maxNetworkRetries: 0,
  });
  await rejects(wrong.paymentIntents.list(), 'StripeAuthenticationError');
});
