// The shop's progressive parts; every page works without them. The live quote as the cart,
// address or coupon changes; the state picker shown only for India; the hold's countdown;
// the order page following its order until it ends; and Stripe's card field when Stripe is
// configured.
"use strict";

function sendForm(form, action) {
  return fetch(action, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(new FormData(form)),
    credentials: "same-origin",
  });
}

function liveQuote() {
  const form = document.getElementById("checkout");
  const quote = document.getElementById("quote");
  if (!form || !quote) return;
  let timer = null;
  let asked = 0;
  const refresh = () => {
    const ticket = ++asked;
    sendForm(form, "/shop/quote")
      .then((r) => r.text())
      .then((html) => { if (ticket === asked) quote.innerHTML = html; })
      .catch(() => {});
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(refresh, 300); };
  form.addEventListener("change", later);
  for (const name of ["coupon", "postal_code"]) {
    const field = form.elements[name];
    if (field) field.addEventListener("input", later);
  }
  const apply = document.getElementById("apply-coupon");
  if (apply) apply.addEventListener("click", (e) => { e.preventDefault(); refresh(); });
}

function statePicker() {
  const country = document.getElementById("country");
  const indian = document.getElementById("state-field");
  const other = document.getElementById("region-field");
  if (!country || !indian || !other) return;
  const show = () => {
    const india = country.value === "IN";
    indian.hidden = !india;
    other.hidden = india;
    document.getElementById("state").required = india;
  };
  country.addEventListener("change", show);
  show();
}

function countdown() {
  for (const el of document.querySelectorAll("[data-expires]")) {
    const end = Date.parse(el.dataset.expires);
    const tick = () => {
      const left = Math.max(0, Math.round((end - Date.now()) / 1000));
      const m = Math.floor(left / 60), s = left % 60;
      el.textContent = m + ":" + String(s).padStart(2, "0");
      if (left > 0) setTimeout(tick, 1000);
    };
    tick();
  }
}

function watchOrder() {
  const main = document.querySelector("[data-watch]");
  if (!main) return;
  const poll = () => {
    fetch(main.dataset.watch, { credentials: "same-origin", cache: "no-store" })
      .then((r) => r.json())
      .then((now) => {
        if (now.state !== main.dataset.state) location.reload();
        else setTimeout(poll, 1000);
      })
      .catch(() => setTimeout(poll, 2000));
  };
  setTimeout(poll, 1000);
}

// With Stripe configured: Stripe's card field, turned into a PaymentMethod id on submit.
function stripeCard() {
  const form = document.querySelector("form[data-stripe-key]");
  if (!form || !window.Stripe) return;
  const stripe = window.Stripe(form.dataset.stripeKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  form.addEventListener("submit", (e) => {
    if (form.elements.source.value) return;
    e.preventDefault();
    stripe.createPaymentMethod({ type: "card", card }).then((result) => {
      if (result.error) {
        document.getElementById("card-errors").textContent = result.error.message;
        return;
      }
      form.elements.source.value = result.paymentMethod.id;
      form.submit();
    });
  });
}

liveQuote();
stripeCard();
statePicker();
countdown();
watchOrder();
