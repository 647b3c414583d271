//! The pricing store: every statement on `coupons`, `coupon_uses` and `tax_codes`, and the
//! seller's tax settings. The only I/O in `pricing`; the rest of the module is pure.
//!
//! A coupon use is reserved in the order's own transaction with one conditional update
//! (`reserved + confirmed < max_uses`), which also holds the coupon's row lock to the end
//! of that transaction, so the per-customer count that follows sees every other
//! reservation of the coupon. It then leaves `reserved` once, by compare-and-set, for
//! `confirmed` or `released`; the counters follow only when that row changed.

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::coupon::{Coupon, Kind};
use super::{Place, Rate, TaxCode};
use crate::db;
use crate::error::{corrupt, Result};
use crate::ids::{OrderId, Sku};

/// A coupon with its limits and how many uses it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouponRecord {
    pub coupon: Coupon,
    pub max_uses: Option<i64>,
    pub max_uses_per_customer: Option<i64>,
    pub reserved: i64,
    pub confirmed: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The seller's tax settings (`PUT /v1/settings/tax`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSettings {
    pub origin: Place,
    pub prices_include_tax: bool,
    pub gstin: Option<String>,
    pub legal_name: Option<String>,
    pub address: Option<String>,
}

/// Where a reserved use goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseEnd {
    Confirmed,
    Released,
}

const TAX_SETTINGS: &str = "tax";

/// Creates or replaces a coupon's terms; its use counters stay as they are.
pub async fn upsert_coupon(
    conn: &mut AnyConnection,
    c: &Coupon,
    max_uses: Option<i64>,
    max_uses_per_customer: Option<i64>,
    now: i64,
) -> Result<()> {
    let (kind, percent_off, max_discount, amount_off) = match c.kind {
        Kind::Percent {
            percent_off,
            max_discount,
        } => ("percent", Some(percent_off), max_discount, None),
        Kind::Fixed { amount_off } => ("fixed", None, None, Some(amount_off)),
    };
    let skus: Vec<&str> = c.skus.iter().map(Sku::as_str).collect();
    sqlx::query(
        "INSERT INTO coupons (code, kind, percent_off, max_discount, amount_off, min_subtotal, skus,
           starts_at, ends_at, active, max_uses, max_uses_per_customer, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
         ON CONFLICT (code) DO UPDATE SET kind = excluded.kind, percent_off = excluded.percent_off,
           max_discount = excluded.max_discount, amount_off = excluded.amount_off,
           min_subtotal = excluded.min_subtotal, skus = excluded.skus, starts_at = excluded.starts_at,
           ends_at = excluded.ends_at, active = excluded.active, max_uses = excluded.max_uses,
           max_uses_per_customer = excluded.max_uses_per_customer, updated_at = excluded.updated_at",
    )
    .bind(&c.code)
    .bind(kind)
    .bind(percent_off)
    .bind(max_discount)
    .bind(amount_off)
    .bind(c.min_subtotal)
    .bind(serde_json::to_string(&skus).map_err(|e| crate::error::Error::Internal(e.into()))?)
    .bind(c.starts_at)
    .bind(c.ends_at)
    .bind(i64::from(c.active))
    .bind(max_uses)
    .bind(max_uses_per_customer)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_coupon(conn: &mut AnyConnection, code: &str) -> Result<Option<CouponRecord>> {
    type Row = (
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        String,
        Option<i64>,
        Option<i64>,
        i64,
        Option<i64>,
        Option<i64>,
        i64,
        i64,
        i64,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT code, kind, percent_off, max_discount, amount_off, min_subtotal, skus, starts_at,
           ends_at, active, max_uses, max_uses_per_customer, reserved, confirmed, created_at, updated_at
         FROM coupons WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((
        code,
        kind,
        percent_off,
        max_discount,
        amount_off,
        min_subtotal,
        skus,
        starts_at,
        ends_at,
        active,
        max_uses,
        max_uses_per_customer,
        reserved,
        confirmed,
        created_at,
        updated_at,
    )) = row
    else {
        return Ok(None);
    };
    let kind = match (kind.as_str(), percent_off, amount_off) {
        ("percent", Some(percent_off), _) => Kind::Percent {
            percent_off,
            max_discount,
        },
        ("fixed", _, Some(amount_off)) => Kind::Fixed { amount_off },
        _ => return Err(corrupt("coupons.kind", &kind)),
    };
    let skus: Vec<String> =
        serde_json::from_str(&skus).map_err(|_| corrupt("coupons.skus", &skus))?;
    let skus = skus
        .iter()
        .map(|s| Sku::try_from(s.as_str()).map_err(|_| corrupt("coupons.skus", s)))
        .collect::<Result<Vec<Sku>>>()?;
    Ok(Some(CouponRecord {
        coupon: Coupon {
            code,
            kind,
            min_subtotal,
            skus,
            starts_at,
            ends_at,
            active: active != 0,
        },
        max_uses,
        max_uses_per_customer,
        reserved,
        confirmed,
        created_at,
        updated_at,
    }))
}

/// Reserves one use of `code` for a new order, in the order's transaction. Returns false
/// when the coupon has no use left (overall, or for `customer_id`); the caller then rolls
/// its transaction back, which undoes the reservation counted here.
pub async fn reserve_use(
    conn: &mut AnyConnection,
    code: &str,
    order_id: &OrderId,
    customer_id: Option<&str>,
    now: i64,
) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE coupons SET reserved = reserved + 1, updated_at = $1
         WHERE code = $2 AND (max_uses IS NULL OR reserved + confirmed < max_uses)",
    )
    .bind(now)
    .bind(code)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if taken == 0 {
        return Ok(false);
    }
    if let Some(customer_id) = customer_id {
        if customer_uses_exceeded(conn, code, customer_id, 1).await? {
            return Ok(false);
        }
    }
    sqlx::query(
        "INSERT INTO coupon_uses (order_id, code, customer_id, state, created_at, updated_at)
         VALUES ($1, $2, $3, 'reserved', $4, $4)",
    )
    .bind(order_id.as_str())
    .bind(code)
    .bind(customer_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Whether the customer's uses of `code` (reserved or confirmed), plus `more` about to be
/// taken, would pass its per-customer limit. Read under the coupon's row lock.
async fn customer_uses_exceeded(
    conn: &mut AnyConnection,
    code: &str,
    customer_id: &str,
    more: i64,
) -> Result<bool> {
    let (limit, used): (Option<i64>, i64) = sqlx::query_as(
        "SELECT c.max_uses_per_customer,
           (SELECT COUNT(*) FROM coupon_uses u WHERE u.code = c.code AND u.customer_id = $2
              AND u.state IN ('reserved', 'confirmed'))
         FROM coupons c WHERE c.code = $1",
    )
    .bind(code)
    .bind(customer_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(limit.is_some_and(|limit| used + more > limit))
}

/// Moves the order's reserved use (if it has one) to `end`, once; the coupon's counters
/// follow only when the use moved. Returns whether it moved.
pub async fn settle_use(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    end: UseEnd,
    now: i64,
) -> Result<bool> {
    let (state, counters) = match end {
        UseEnd::Confirmed => (
            "confirmed",
            "reserved = reserved - 1, confirmed = confirmed + 1",
        ),
        UseEnd::Released => ("released", "reserved = reserved - 1"),
    };
    let code: Option<String> = sqlx::query_scalar(
        "UPDATE coupon_uses SET state = $1, updated_at = $2
         WHERE order_id = $3 AND state = 'reserved' RETURNING code",
    )
    .bind(state)
    .bind(now)
    .bind(order_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(code) = code else {
        return Ok(false);
    };
    sqlx::query(&format!(
        "UPDATE coupons SET {counters}, updated_at = $1 WHERE code = $2"
    ))
    .bind(now)
    .bind(&code)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Takes a released use back, confirmed, for an ended order that a late capture confirms
/// after all — only while the coupon has a use left. Returns whether the order holds a
/// confirmed use now (true too when it never had a coupon).
pub async fn retake_use(conn: &mut AnyConnection, order_id: &OrderId, now: i64) -> Result<bool> {
    let held: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT code, state, customer_id FROM coupon_uses WHERE order_id = $1")
            .bind(order_id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let Some((code, state, customer_id)) = held else {
        return Ok(true);
    };
    match state.as_str() {
        "confirmed" => return Ok(true),
        "reserved" => return settle_use(conn, order_id, UseEnd::Confirmed, now).await,
        "released" => {}
        other => return Err(corrupt("coupon_uses.state", other)),
    }
    let taken = sqlx::query(
        "UPDATE coupons SET confirmed = confirmed + 1, updated_at = $1
         WHERE code = $2 AND (max_uses IS NULL OR reserved + confirmed < max_uses)",
    )
    .bind(now)
    .bind(&code)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if taken == 0 {
        return Ok(false);
    }
    // The customer may have used the coupon again since: its own limit holds too (the
    // caller rolls back on false, undoing the count above).
    if let Some(customer_id) = customer_id {
        if customer_uses_exceeded(conn, &code, &customer_id, 1).await? {
            return Ok(false);
        }
    }
    let moved = sqlx::query(
        "UPDATE coupon_uses SET state = 'confirmed', updated_at = $1
         WHERE order_id = $2 AND state = 'released'",
    )
    .bind(now)
    .bind(order_id.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

pub async fn put_tax_settings(conn: &mut AnyConnection, settings: &TaxSettings) -> Result<()> {
    let text =
        serde_json::to_string(settings).map_err(|e| crate::error::Error::Internal(e.into()))?;
    db::set_setting(conn, TAX_SETTINGS, &text).await?;
    Ok(())
}

pub async fn get_tax_settings(conn: &mut AnyConnection) -> Result<Option<TaxSettings>> {
    let Some(text) = db::setting(conn, TAX_SETTINGS).await? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|_| corrupt("settings.tax", &text))
}

pub async fn put_tax_code(
    conn: &mut AnyConnection,
    code: &str,
    tax: &TaxCode,
    now: i64,
) -> Result<()> {
    let rates =
        serde_json::to_string(&tax.rates).map_err(|e| crate::error::Error::Internal(e.into()))?;
    sqlx::query(
        "INSERT INTO tax_codes (code, hsn, rates, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (code) DO UPDATE SET hsn = excluded.hsn, rates = excluded.rates,
           updated_at = excluded.updated_at",
    )
    .bind(code)
    .bind(&tax.hsn)
    .bind(rates)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_tax_code(conn: &mut AnyConnection, code: &str) -> Result<Option<TaxCode>> {
    let row: Option<(Option<String>, String)> =
        sqlx::query_as("SELECT hsn, rates FROM tax_codes WHERE code = $1")
            .bind(code)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((hsn, rates)) = row else {
        return Ok(None);
    };
    let rates: Vec<Rate> =
        serde_json::from_str(&rates).map_err(|_| corrupt("tax_codes.rates", &rates))?;
    Ok(Some(TaxCode { hsn, rates }))
}

/// Coupon codes in order, `limit` of them after `after`.
pub async fn coupon_codes(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT code FROM coupons WHERE code > $1 ORDER BY code LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Tax codes in order, `limit` of them after `after`.
pub async fn tax_code_names(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT code FROM tax_codes WHERE code > $1 ORDER BY code LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?,
    )
}
