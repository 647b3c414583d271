//! The checkout form: the customer's contact and shipping address (India's states in a
//! picker, other countries allowed) and the coupon, as the form sends them and as the order
//! they ask for.

use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::cart::Cart;
use super::regions::{is_country, is_indian_state, COUNTRIES, INDIAN_STATES};
use crate::checkout::{routes::check_text, OrderInput};
use crate::error::{Error, Result};
use crate::web::layout;

/// What the checkout form sends; every field may be empty until the order is placed.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Details {
    pub csrf: String,
    email: String,
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
    state: String,
    region: String,
    pub coupon: String,
}

impl Details {
    pub fn parse(body: &[u8]) -> Result<Details> {
        serde_urlencoded::from_bytes(body).map_err(|_| Error::invalid("the form did not parse"))
    }

    fn country(&self) -> &str {
        match self.country.trim() {
            "" => "IN",
            c => c,
        }
    }

    pub fn coupon(&self) -> Option<String> {
        Some(self.coupon.trim().to_string()).filter(|c| !c.is_empty())
    }

    /// The shipping address as the API takes it: the state from the picker for India, the
    /// free-text region elsewhere; empty fields left out.
    fn ship_to(&self) -> Result<Value> {
        let country = self.country().to_ascii_uppercase();
        if !(is_country(&country)
            || (country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())))
        {
            return Err(Error::invalid("choose a country"));
        }
        let region = if country == "IN" {
            self.state.trim()
        } else {
            self.region.trim()
        };
        if country == "IN" && !region.is_empty() && !is_indian_state(region) {
            return Err(Error::invalid("choose a state from the list"));
        }
        let mut address = Map::new();
        address.insert("country".into(), json!(country));
        for (key, value) in [
            ("region", region),
            ("postal_code", self.postal_code.trim()),
            ("city", self.city.trim()),
            ("line1", self.line1.trim()),
        ] {
            if !value.is_empty() {
                address.insert(key.into(), json!(value));
            }
        }
        Ok(Value::Object(address))
    }

    /// The order this form asks for, without its coupon (`for_order`: the contact fields
    /// must be filled).
    pub fn input(&self, cart: &Cart, for_order: bool) -> Result<OrderInput> {
        let email = self.email.trim();
        if for_order && !email.contains('@') {
            return Err(Error::invalid("enter an email address"));
        }
        let texts = [
            self.email.trim(),
            self.name.trim(),
            self.line1.trim(),
            self.city.trim(),
            self.postal_code.trim(),
            self.region.trim(),
        ]
        .map(str::to_string);
        let labels = ["email", "name", "address", "city", "postal code", "region"];
        let pairs: Vec<(&str, Option<&String>)> = labels
            .iter()
            .zip(texts.iter())
            .map(|(l, t)| (*l, Some(t).filter(|t| !t.is_empty())))
            .collect();
        check_text(&pairs)?;
        let mut customer = Map::new();
        if !email.is_empty() {
            customer.insert("email".into(), json!(email));
            // The pending-order cap counts per customer: here, per email address.
            customer.insert("id".into(), json!(format!("shop:{}", email.to_lowercase())));
        }
        if !self.name.trim().is_empty() {
            customer.insert("name".into(), json!(self.name.trim()));
        }
        let customer = (!customer.is_empty()).then_some(Value::Object(customer));
        OrderInput::new(None, cart.lines.clone(), customer, Some(self.ship_to()?))
    }
}

/// The form's fields, as sent (or empty), with the seller's own state chosen at first.
pub fn form(d: &Details, token: &str, origin: Option<&str>) -> Markup {
    let country = d.country();
    let state = if d.state.is_empty() {
        origin.unwrap_or("")
    } else {
        d.state.as_str()
    };
    html! {
        form #checkout .card method="post" action="/shop/checkout" {
            (layout::csrf_field(token))
            fieldset {
                legend { "Contact" }
                label for="email" { "Email" }
                input #email type="email" name="email" value=(d.email) autocomplete="email" required;
                label for="name" { "Full name" }
                input #name type="text" name="name" value=(d.name) autocomplete="name";
            }
            fieldset {
                legend { "Shipping address" }
                label for="line1" { "Address" }
                input #line1 type="text" name="line1" value=(d.line1) autocomplete="address-line1";
                div.row {
                    div { label for="city" { "City" } input #city type="text" name="city" value=(d.city) autocomplete="address-level2"; }
                    div { label for="postal_code" { "PIN / postal code" } input #postal_code type="text" name="postal_code" value=(d.postal_code) autocomplete="postal-code"; }
                }
                label for="country" { "Country" }
                select #country name="country" autocomplete="country" {
                    @for (code, name) in COUNTRIES {
                        option value=(code) selected[*code == country] { (name) }
                    }
                }
                div #state-field {
                    label for="state" { "State (India)" }
                    select #state name="state" autocomplete="address-level1" {
                        option value="" { "Choose a state" }
                        @for (code, name) in INDIAN_STATES {
                            option value=(code) selected[*code == state] { (name) }
                        }
                    }
                }
                div #region-field {
                    label for="region" { "State or region (outside India)" }
                    input #region type="text" name="region" value=(d.region);
                }
            }
        }
    }
}
