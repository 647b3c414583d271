//! Tax documents: the GST tax invoice of a confirmed order and the credit note of a refund,
//! as JSON (`InvoiceDoc`, `CreditNoteDoc`) and as PDF (`pdf.rs`), with the amount in words
//! (`words.rs`). A document is written once, when it is issued, and never changes: its JSON
//! is kept whole in `store.rs` (the `documents` table), so a later edit of the seller's tax
//! settings or a product's name leaves every issued document as it was.
//!
//! This module knows documents, not orders or refunds: the saga (`checkout::documents`)
//! fills them from the order, the seller's settings and the refund, and issues them in the
//! transaction that confirms the order or records the refund's success.

mod font;
pub mod format;
mod pdf;
mod sheet;
pub mod store;
pub mod words;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{corrupt, Result};
use crate::money::TaxLine;

pub use format::amount;
pub use sheet::{credit_note as credit_note_pdf, invoice as invoice_pdf};
pub use words::amount_in_words;

/// The `n`-th credit note of a financial year: `CN/2026-27/000001`.
pub fn credit_note_number(year: &str, n: i64) -> String {
    format!("CN/{year}/{n:06}")
}

/// The counter row of a financial year's credit notes.
pub fn credit_note_series(year: &str) -> String {
    format!("credit_note/{year}")
}

/// What a stored document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invoice,
    CreditNote,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invoice => "invoice",
            Kind::CreditNote => "credit_note",
        }
    }
}

impl TryFrom<&str> for Kind {
    type Error = crate::error::Error;
    fn try_from(s: &str) -> Result<Kind> {
        match s {
            "invoice" => Ok(Kind::Invoice),
            "credit_note" => Ok(Kind::CreditNote),
            other => Err(corrupt("documents.kind", other)),
        }
    }
}

/// The supplier, as its tax settings stood when the document was issued.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Seller {
    /// The seller's GSTIN, when set.
    #[schema(required = true)]
    pub gstin: Option<String>,
    #[schema(required = true)]
    pub legal_name: Option<String>,
    #[schema(required = true)]
    pub address: Option<String>,
    /// ISO 3166 country of the seller's origin.
    #[schema(required = true)]
    pub country: Option<String>,
    /// The seller's state (for India its state code, `KA`).
    #[schema(required = true)]
    pub state: Option<String>,
}

/// The recipient: the order's customer and where the goods go.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Buyer {
    /// The merchant's own id of the customer.
    #[schema(required = true)]
    pub id: Option<String>,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub phone: Option<String>,
    /// The buyer's GSTIN (`customer.gstin` of the order: a business buyer), else null.
    #[schema(required = true)]
    pub gstin: Option<String>,
    #[schema(required = true)]
    pub ship_to: Option<DocAddress>,
}

/// An address on a document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DocAddress {
    pub country: String,
    #[schema(required = true)]
    pub region: Option<String>,
    #[schema(required = true)]
    pub postal_code: Option<String>,
    #[schema(required = true)]
    pub city: Option<String>,
    #[schema(required = true)]
    pub line1: Option<String>,
    #[schema(required = true)]
    pub line2: Option<String>,
}

/// One line of a tax invoice. Minor units throughout.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    pub sku: String,
    /// The product's name when the invoice was issued.
    pub name: String,
    /// The HSN code of the product's tax code, else null.
    #[schema(required = true)]
    pub hsn: Option<String>,
    pub qty: i64,
    pub unit_amount: i64,
    /// `unit_amount × qty`.
    pub amount: i64,
    /// The coupon's share of the line.
    pub discount: i64,
    /// The value the line's taxes are computed on: `amount − discount`, less the tax when
    /// prices include it.
    pub taxable_amount: i64,
    /// The sum of `tax_lines`.
    pub tax: i64,
    pub tax_lines: Vec<TaxLine>,
    /// `taxable_amount + tax`: what the line costs.
    pub total: i64,
}

/// A GST tax invoice, as it was issued. Minor units of `currency` throughout.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoiceDoc {
    /// Always `invoice`.
    #[schema(pattern = "^invoice$")]
    pub object: String,
    /// `INV/2026-27/000001`: consecutive per Indian financial year.
    pub number: String,
    /// RFC 3339: when the order was confirmed and the invoice issued.
    pub issued_at: String,
    pub order_id: String,
    /// ISO 4217.
    pub currency: String,
    pub seller: Seller,
    pub buyer: Buyer,
    /// Where the supply is made: the state code the goods go to in India (`KA`), the
    /// country code for an export, the seller's own state when the order has no address.
    #[schema(required = true)]
    pub place_of_supply: Option<String>,
    /// Whether the line amounts include their tax.
    pub prices_include_tax: bool,
    pub lines: Vec<InvoiceLine>,
    /// The lines' `amount`s.
    pub subtotal: i64,
    pub discount: i64,
    /// The lines' `taxable_amount`s.
    pub taxable_amount: i64,
    pub tax: i64,
    /// The lines' taxes summed by name and rate.
    pub tax_lines: Vec<TaxLine>,
    /// `taxable_amount + tax`: what the order cost.
    pub total: i64,
    /// `total` in words, e.g. "Rupees One Hundred Six and Paise Twenty Only".
    pub total_in_words: String,
}

/// What a credit note gives back of one invoice line. Minor units.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditNoteLine {
    pub sku: String,
    pub name: String,
    #[schema(required = true)]
    pub hsn: Option<String>,
    /// The share of the line's taxable value given back.
    pub taxable_amount: i64,
    /// The sum of `tax_lines`.
    pub tax: i64,
    /// The share of each of the line's taxes given back.
    pub tax_lines: Vec<TaxLine>,
    /// `taxable_amount + tax`.
    pub total: i64,
}

/// A credit note: a refund of an invoiced order, reversing its share of each line's
/// taxable value and tax. Minor units of `currency` throughout.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditNoteDoc {
    /// Always `credit_note`.
    #[schema(pattern = "^credit_note$")]
    pub object: String,
    /// `CN/2026-27/000001`: a series of its own, consecutive per financial year.
    pub number: String,
    /// RFC 3339: when the refund succeeded.
    pub issued_at: String,
    pub refund_id: String,
    pub order_id: String,
    /// The invoice it reduces.
    pub invoice_number: String,
    pub invoice_issued_at: String,
    pub currency: String,
    pub seller: Seller,
    pub buyer: Buyer,
    #[schema(required = true)]
    pub place_of_supply: Option<String>,
    pub lines: Vec<CreditNoteLine>,
    pub taxable_amount: i64,
    pub tax: i64,
    pub tax_lines: Vec<TaxLine>,
    /// `taxable_amount + tax`: the refund's amount.
    pub total: i64,
    pub total_in_words: String,
}
