//! The cart: SKUs and quantities in a cookie (`till_cart`), so it needs no account and no
//! table, and survives a declined payment for the next try. Only what the catalog still
//! sells is priced: the checkout prices every line from the catalog, never from the cookie.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ids::Sku;
use crate::web::csrf;

const COOKIE: &str = "till_cart";
/// The most lines a cart keeps: a cookie stays well under browsers' 4 KiB per cookie.
pub const LINES_MAX: usize = 20;
/// The most units of one line the shop's form takes (an order allows up to 1000).
pub const QTY_MAX: i64 = 99;
/// A cart is kept for 30 days.
const MAX_AGE_SECS: u32 = 30 * 24 * 3600;

/// The cart's lines, in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cart {
    pub lines: Vec<(Sku, i64)>,
}

impl Cart {
    /// The request's cart; a cookie that does not parse is an empty cart.
    pub fn of(headers: &HeaderMap) -> Cart {
        let Some(text) = csrf::cookie(headers, COOKIE) else {
            return Cart::default();
        };
        let lines: Option<Vec<(Sku, i64)>> = text
            .split('|')
            .map(|line| {
                let (sku, qty) = line.split_once(':')?;
                let qty: i64 = qty.parse().ok()?;
                let sku = Sku::try_from(sku).ok()?;
                (1..=QTY_MAX).contains(&qty).then_some((sku, qty))
            })
            .collect();
        let mut lines = lines.unwrap_or_default();
        lines.truncate(LINES_MAX);
        Cart { lines }
    }

    /// Sets a line's quantity (0 removes it), or adds to it.
    fn change(&mut self, sku: Sku, qty: i64, add: bool) -> Result<()> {
        let at = self.lines.iter().position(|(s, _)| *s == sku);
        let now = at.map_or(0, |i| self.lines[i].1);
        let wanted = if add { now + qty } else { qty };
        if !(0..=QTY_MAX).contains(&wanted) {
            return Err(Error::invalid(format!("a quantity must be 0 to {QTY_MAX}")));
        }
        match (at, wanted) {
            (Some(i), 0) => {
                self.lines.remove(i);
            }
            (Some(i), _) => self.lines[i].1 = wanted,
            (None, 0) => {}
            (None, _) if self.lines.len() >= LINES_MAX => {
                return Err(Error::invalid(format!(
                    "a cart holds at most {LINES_MAX} products"
                )))
            }
            (None, _) => self.lines.push((sku, wanted)),
        }
        Ok(())
    }

    /// The `Set-Cookie` value that stores this cart (an empty one removes the cookie).
    pub fn cookie(&self) -> HeaderValue {
        let text: Vec<String> = self
            .lines
            .iter()
            .map(|(sku, qty)| format!("{}:{qty}", sku.as_str()))
            .collect();
        let age = if self.lines.is_empty() {
            0
        } else {
            MAX_AGE_SECS
        };
        let value = format!(
            "{COOKIE}={}; Path=/shop; Max-Age={age}; HttpOnly; SameSite=Lax",
            text.join("|")
        );
        HeaderValue::from_str(&value).expect("SKUs and digits are valid in a header")
    }
}

/// The add-to-cart and quantity forms.
#[derive(Deserialize)]
struct CartForm {
    csrf: String,
    sku: String,
    qty: i64,
    /// `add` adds `qty` to the line; otherwise `qty` replaces it.
    #[serde(default)]
    add: Option<String>,
}

/// `POST /shop/cart`: changes one line, then shows the cart.
pub async fn update(headers: HeaderMap, body: Bytes) -> Response {
    let changed = (|| {
        let form: CartForm = serde_urlencoded::from_bytes(&body)
            .map_err(|_| Error::invalid("the form is incomplete"))?;
        csrf::check(&headers, &form.csrf)?;
        let sku = Sku::try_from(form.sku.as_str()).map_err(Error::InvalidRequest)?;
        let mut cart = Cart::of(&headers);
        cart.change(sku, form.qty, form.add.is_some())?;
        Ok::<_, Error>(cart)
    })();
    match changed {
        Ok(cart) => {
            let mut response = crate::web::see_other("/shop/cart");
            response
                .headers_mut()
                .append(header::SET_COOKIE, cart.cookie());
            response
        }
        Err(err) => super::error_page(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cart_of(cookie: &str) -> Cart {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        Cart::of(&headers)
    }

    #[test]
    fn a_cart_round_trips_through_its_cookie_and_refuses_nonsense() {
        let mut cart = Cart::default();
        cart.change(Sku::try_from("TEE-1").unwrap(), 2, true)
            .unwrap();
        cart.change(Sku::try_from("MUG.2").unwrap(), 1, true)
            .unwrap();
        cart.change(Sku::try_from("TEE-1").unwrap(), 1, true)
            .unwrap();
        let set = cart.cookie().to_str().unwrap().to_string();
        let pair = set.split(';').next().unwrap();
        assert_eq!(pair, "till_cart=TEE-1:3|MUG.2:1");
        assert_eq!(cart_of(pair), cart);
        cart.change(Sku::try_from("TEE-1").unwrap(), 0, false)
            .unwrap();
        assert_eq!(cart.lines.len(), 1);
        assert!(cart
            .change(Sku::try_from("MUG.2").unwrap(), 99, true)
            .is_err());
        for bad in [
            "till_cart=TEE-1:0",
            "till_cart=TEE-1:x",
            "till_cart=a b:1",
            "till_cart=X:100",
        ] {
            assert_eq!(cart_of(bad), Cart::default(), "{bad}");
        }
    }
}
