//! HTTP routes of pricing (API key only): coupons, the seller's tax settings and tax codes.
//! `POST /v1/quotes` prices a cart and is the saga's (`checkout::routes`).
//!
//! Over 400 lines: the request and answer types of three resources, each with the checks
//! docs/api.md states for it.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::coupon::{self, Coupon, Kind};
use super::store::{self, CouponRecord, TaxSettings};
use super::{gstin, Place, Rate, TaxCode};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::{Error, Result};
use crate::http::extract::{not_null, parse_json, Caller, RawBody};
use crate::ids::{check_client_id, Sku};
use crate::money::{Currency, PRICE_MINOR_MAX};
use crate::state::AppState;

/// SKUs one coupon may name.
const COUPON_SKUS_MAX: usize = 100;
/// Rates one tax code may hold.
const RATES_MAX: usize = 100;
/// The highest tax rate: 100%.
const RATE_BPS_MAX: i64 = 10_000;
/// Free text of the seller's settings.
const TEXT_MAX: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/coupons/{code}", put(put_coupon).get(get_coupon))
        .route("/v1/settings/tax", put(put_settings).get(get_settings))
        .route("/v1/tax_codes/{tax_code}", put(put_code).get(get_code))
}

/// An amount in the store currency.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct AmountBody {
    #[schema(minimum = 0)]
    amount: i64,
    currency: String,
}

/// A coupon's terms: `kind` and its value; every other field optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponBody {
    /// `percent` (with `percent_off`) or `fixed` (with `amount_off`).
    #[schema(pattern = "^(percent|fixed)$")]
    kind: String,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 1, maximum = 100)]
    percent_off: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 0)]
    max_discount: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    amount_off: Option<AmountBody>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 0)]
    min_subtotal: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 1)]
    max_uses: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, minimum = 1)]
    max_uses_per_customer: Option<i64>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, max_items = 100)]
    skus: Option<Vec<String>>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, format = DateTime)]
    starts_at: Option<String>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, format = DateTime)]
    ends_at: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    active: Option<bool>,
}

/// How many uses a coupon has: kept by paid orders, and held by pending ones.
#[derive(Serialize, ToSchema)]
pub struct UsesView {
    confirmed: i64,
    reserved: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CouponView {
    code: String,
    /// Always `coupon`.
    #[schema(value_type = String, pattern = "^coupon$")]
    object: &'static str,
    #[schema(pattern = "^(percent|fixed)$")]
    kind: &'static str,
    #[schema(required = true)]
    percent_off: Option<i64>,
    #[schema(required = true)]
    max_discount: Option<i64>,
    #[schema(required = true)]
    amount_off: Option<AmountBody>,
    #[schema(required = true)]
    min_subtotal: Option<i64>,
    #[schema(required = true)]
    max_uses: Option<i64>,
    #[schema(required = true)]
    max_uses_per_customer: Option<i64>,
    skus: Vec<String>,
    #[schema(required = true)]
    starts_at: Option<String>,
    #[schema(required = true)]
    ends_at: Option<String>,
    active: bool,
    uses: UsesView,
    created_at: String,
    updated_at: String,
}

fn coupon_view(r: CouponRecord, currency: Currency) -> CouponView {
    let c = r.coupon;
    let (kind, percent_off, max_discount, amount_off) = match c.kind {
        Kind::Percent {
            percent_off,
            max_discount,
        } => ("percent", Some(percent_off), max_discount, None),
        Kind::Fixed { amount_off } => (
            "fixed",
            None,
            None,
            Some(AmountBody {
                amount: amount_off,
                currency: currency.code().to_string(),
            }),
        ),
    };
    CouponView {
        code: c.code,
        object: "coupon",
        kind,
        percent_off,
        max_discount,
        amount_off,
        min_subtotal: c.min_subtotal,
        max_uses: r.max_uses,
        max_uses_per_customer: r.max_uses_per_customer,
        skus: c.skus.iter().map(|s| s.as_str().to_string()).collect(),
        starts_at: c.starts_at.map(rfc3339),
        ends_at: c.ends_at.map(rfc3339),
        active: c.active,
        uses: UsesView {
            confirmed: r.confirmed,
            reserved: r.reserved,
        },
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// A coupon code from a path: case-insensitive, stored upper case.
fn coupon_code(code: &str) -> Result<String> {
    let upper = code.to_ascii_uppercase();
    if !coupon::valid_code(&upper) {
        return Err(Error::invalid("coupon code must be 1-32 of A-Z 0-9 - _"));
    }
    Ok(upper)
}

fn money_field(name: &str, value: Option<i64>) -> Result<Option<i64>> {
    match value {
        Some(v) if !(0..=PRICE_MINOR_MAX).contains(&v) => Err(Error::invalid(format!(
            "{name} must be 0-{PRICE_MINOR_MAX}"
        ))),
        other => Ok(other),
    }
}

fn limit_field(name: &str, value: Option<i64>) -> Result<Option<i64>> {
    match value {
        Some(v) if !(1..=i64::from(i32::MAX)).contains(&v) => {
            Err(Error::invalid(format!("{name} must be 1 or more")))
        }
        other => Ok(other),
    }
}

fn time_field(name: &str, value: Option<&String>) -> Result<Option<i64>> {
    value
        .map(|text| {
            parse_rfc3339(text)
                .ok_or_else(|| Error::invalid(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

/// The coupon, its limits, from a request body, checked.
fn parse_coupon(
    code: String,
    body: CouponBody,
    currency: Currency,
) -> Result<(Coupon, Option<i64>, Option<i64>)> {
    let kind = match body.kind.as_str() {
        "percent" => {
            if body.amount_off.is_some() {
                return Err(Error::invalid("a percent coupon takes no amount_off"));
            }
            let percent_off = body
                .percent_off
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| Error::invalid("percent_off must be 1-100"))?;
            Kind::Percent {
                percent_off,
                max_discount: money_field("max_discount", body.max_discount)?,
            }
        }
        "fixed" => {
            if body.percent_off.is_some() || body.max_discount.is_some() {
                return Err(Error::invalid(
                    "a fixed coupon takes amount_off, not percent_off or max_discount",
                ));
            }
            let amount_off = body
                .amount_off
                .ok_or_else(|| Error::invalid("a fixed coupon needs amount_off"))?;
            if Currency::parse(&amount_off.currency) != Some(currency) {
                return Err(Error::invalid(format!(
                    "amount_off must be in the store currency, {currency}"
                )));
            }
            Kind::Fixed {
                amount_off: money_field("amount_off.amount", Some(amount_off.amount))?
                    .unwrap_or_default(),
            }
        }
        _ => return Err(Error::invalid("kind must be percent or fixed")),
    };
    let skus = body.skus.unwrap_or_default();
    if skus.len() > COUPON_SKUS_MAX {
        return Err(Error::invalid(format!(
            "skus may name at most {COUPON_SKUS_MAX}"
        )));
    }
    let mut scoped: Vec<Sku> = Vec::with_capacity(skus.len());
    for s in &skus {
        let sku = Sku::try_from(s.as_str()).map_err(Error::InvalidRequest)?;
        if !scoped.contains(&sku) {
            scoped.push(sku);
        }
    }
    let starts_at = time_field("starts_at", body.starts_at.as_ref())?;
    let ends_at = time_field("ends_at", body.ends_at.as_ref())?;
    if let (Some(s), Some(e)) = (starts_at, ends_at) {
        if e < s {
            return Err(Error::invalid("ends_at must not be before starts_at"));
        }
    }
    let coupon = Coupon {
        code,
        kind,
        min_subtotal: money_field("min_subtotal", body.min_subtotal)?,
        skus: scoped,
        starts_at,
        ends_at,
        active: body.active.unwrap_or(true),
    };
    Ok((
        coupon,
        limit_field("max_uses", body.max_uses)?,
        limit_field("max_uses_per_customer", body.max_uses_per_customer)?,
    ))
}

async fn put_coupon(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<CouponView>> {
    caller.require_merchant()?;
    let code = coupon_code(&code)?;
    let body: CouponBody = parse_json(&body)?;
    let (coupon, max_uses, per_customer) = parse_coupon(code, body, state.currency)?;
    let mut conn = state.db.pool.acquire().await?;
    store::upsert_coupon(&mut conn, &coupon, max_uses, per_customer, state.now_ms()).await?;
    let saved = store::get_coupon(&mut conn, &coupon.code)
        .await?
        .ok_or(Error::NotFound("coupon"))?;
    Ok(Json(coupon_view(saved, state.currency)))
}

async fn get_coupon(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<CouponView>> {
    caller.require_merchant()?;
    let code = coupon_code(&code).map_err(|_| Error::NotFound("coupon"))?;
    let mut conn = state.db.pool.acquire().await?;
    let record = store::get_coupon(&mut conn, &code)
        .await?
        .ok_or(Error::NotFound("coupon"))?;
    Ok(Json(coupon_view(record, state.currency)))
}

/// A place: ISO 3166-1 alpha-2 country and, optionally, a state or region code.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    #[schema(pattern = "^[A-Za-z]{2}$", example = "IN")]
    country: String,
    /// Absent when none.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, pattern = "^[A-Za-z0-9]{1,3}$", example = "KA")]
    region: Option<String>,
}

fn place(body: PlaceBody) -> Result<Place> {
    let country = body.country.to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::invalid(
            "country must be a two-letter ISO 3166-1 code",
        ));
    }
    let region = body
        .region
        .map(|r| r.to_ascii_uppercase())
        .map(|r| {
            if (1..=3).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(r)
            } else {
                Err(Error::invalid("region must be 1-3 letters or digits"))
            }
        })
        .transpose()?;
    Ok(Place { country, region })
}

/// The seller, for tax: where it ships from and how its prices are written.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxSettingsBody {
    origin: PlaceBody,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    prices_include_tax: Option<bool>,
    /// India's GST number: 15 characters, checked.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, example = "29ABCDE1234F1ZW")]
    gstin: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    legal_name: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    address: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TaxSettingsView {
    /// Always `tax_settings`.
    #[schema(value_type = String, pattern = "^tax_settings$")]
    object: &'static str,
    origin: PlaceBody,
    prices_include_tax: bool,
    #[schema(required = true)]
    gstin: Option<String>,
    #[schema(required = true)]
    legal_name: Option<String>,
    #[schema(required = true)]
    address: Option<String>,
}

fn tax_settings_view(t: TaxSettings) -> TaxSettingsView {
    TaxSettingsView {
        object: "tax_settings",
        origin: PlaceBody {
            country: t.origin.country,
            region: t.origin.region,
        },
        prices_include_tax: t.prices_include_tax,
        gstin: t.gstin,
        legal_name: t.legal_name,
        address: t.address,
    }
}

fn text_field(name: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(v) if v.trim().is_empty() || v.chars().count() > TEXT_MAX => Err(Error::invalid(
            format!("{name} must be 1-{TEXT_MAX} characters"),
        )),
        other => Ok(other),
    }
}

async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<TaxSettingsView>> {
    caller.require_merchant()?;
    let body: TaxSettingsBody = parse_json(&body)?;
    let gstin = body.gstin.map(|g| g.to_ascii_uppercase());
    if let Some(g) = &gstin {
        gstin::check(g).map_err(Error::InvalidRequest)?;
    }
    let settings = TaxSettings {
        origin: place(body.origin)?,
        prices_include_tax: body.prices_include_tax.unwrap_or(false),
        gstin,
        legal_name: text_field("legal_name", body.legal_name)?,
        address: text_field("address", body.address)?,
    };
    let mut conn = state.db.pool.acquire().await?;
    store::put_tax_settings(&mut conn, &settings).await?;
    Ok(Json(tax_settings_view(settings)))
}

async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TaxSettingsView>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    let settings = store::get_tax_settings(&mut conn)
        .await?
        .ok_or(Error::NotFound("tax settings"))?;
    Ok(Json(tax_settings_view(settings)))
}

/// One rate of a tax code: for a country, or a region of it.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    #[schema(pattern = "^[A-Za-z]{2}$", example = "IN")]
    country: String,
    /// Absent when the rate is for the whole country.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, pattern = "^[A-Za-z0-9]{1,3}$")]
    region: Option<String>,
    /// Basis points: 1800 is 18%.
    #[schema(minimum = 0, maximum = 10000, example = 1800)]
    rate_bps: i64,
    /// The tax line's name outside India (`VAT`); absent when none.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    name: Option<String>,
}

/// A tax code: its HSN code and its rates.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxCodeBody {
    /// India's Harmonized System of Nomenclature code: 2-8 digits.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, pattern = "^[0-9]{2,8}$", example = "6109")]
    hsn: Option<String>,
    #[schema(max_items = 100)]
    rates: Vec<RateBody>,
}

#[derive(Serialize, ToSchema)]
pub struct TaxCodeView {
    code: String,
    /// Always `tax_code`.
    #[schema(value_type = String, pattern = "^tax_code$")]
    object: &'static str,
    #[schema(required = true)]
    hsn: Option<String>,
    rates: Vec<RateBody>,
}

fn tax_code_view(code: String, t: TaxCode) -> TaxCodeView {
    TaxCodeView {
        code,
        object: "tax_code",
        hsn: t.hsn,
        rates: t
            .rates
            .into_iter()
            .map(|r| RateBody {
                country: r.country,
                region: r.region,
                rate_bps: r.rate_bps,
                name: r.name,
            })
            .collect(),
    }
}

async fn put_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<TaxCodeView>> {
    caller.require_merchant()?;
    check_client_id("tax code", &code).map_err(Error::InvalidRequest)?;
    let body: TaxCodeBody = parse_json(&body)?;
    if let Some(hsn) = &body.hsn {
        if !(2..=8).contains(&hsn.len()) || !hsn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("hsn must be 2-8 digits"));
        }
    }
    if body.rates.len() > RATES_MAX {
        return Err(Error::invalid(format!(
            "rates may hold at most {RATES_MAX}"
        )));
    }
    let mut rates: Vec<Rate> = Vec::with_capacity(body.rates.len());
    for r in body.rates {
        if !(0..=RATE_BPS_MAX).contains(&r.rate_bps) {
            return Err(Error::invalid(format!("rate_bps must be 0-{RATE_BPS_MAX}")));
        }
        let at = place(PlaceBody {
            country: r.country,
            region: r.region,
        })?;
        if rates
            .iter()
            .any(|x| x.country == at.country && x.region == at.region)
        {
            return Err(Error::invalid(format!(
                "two rates for {}{}",
                at.country,
                at.region
                    .as_deref()
                    .map(|r| format!("-{r}"))
                    .unwrap_or_default()
            )));
        }
        rates.push(Rate {
            country: at.country,
            region: at.region,
            rate_bps: r.rate_bps,
            name: text_field("name", r.name)?,
        });
    }
    let tax = TaxCode {
        hsn: body.hsn,
        rates,
    };
    let mut conn = state.db.pool.acquire().await?;
    store::put_tax_code(&mut conn, &code, &tax, state.now_ms()).await?;
    Ok(Json(tax_code_view(code, tax)))
}

async fn get_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<TaxCodeView>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    let tax = store::get_tax_code(&mut conn, &code)
        .await?
        .ok_or(Error::NotFound("tax code"))?;
    Ok(Json(tax_code_view(code, tax)))
}
