//! The checkout saga, orchestrated and durable: lock → pay → finalize, with compensations.
//!
//! Each step is a local transaction; no transaction is open while a gateway is called.
//! Everything in flight is recorded in the database, so the workers (`workers`) can drive
//! any order or payment to its end after a restart.

pub mod batch;
pub mod compensate;
pub mod create;
pub mod documents;
pub mod emit;
pub mod events;
pub mod finalize;
pub mod pay;
pub mod reconcile;
pub mod recover;
pub mod routes;
pub mod seed;
pub mod store;
pub mod trail;
pub mod views;
pub mod webhooks;
pub mod workers;

pub use compensate::{cancel_order, expire_order, process_refund, refund_order};
pub use create::{create_order, quote, OrderInput};
pub use documents::{credit_note_document, credit_note_pdf, invoice_document, invoice_pdf};
pub use pay::{apply_outcome, start_payment, PaymentInput};
pub use views::{order_view, OrderView, QuoteView};
