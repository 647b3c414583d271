//! Till's API contract (docs/api.md) over real HTTP, each test run on SQLite and on PostgreSQL.

mod helpers;

mod amqp;
mod bad_input;
mod catalog;
mod chaos;
mod checkout;
mod concurrency;
mod crash;
mod db_faults;
mod documents;
mod edges;
mod events;
mod gateway_routing;
mod gateway_sim;
mod idempotency;
mod invoices;
mod mail;
mod merchant_webhooks;
mod payments;
mod pricing;
mod races;
mod razorpay;
mod restart;
mod scale;
mod seed;
mod service;
mod slow_clients;
mod smtp;
mod storage;
mod stores;
mod stripe;
mod timeline;
mod tls;
