-- What Stripe.js needs to take a customer through a step itself (`use_stripe_sdk`): the
-- PaymentIntent's client secret, which Stripe hands out for the customer's browser.
ALTER TABLE payments ADD COLUMN action_secret TEXT;
