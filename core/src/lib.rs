//! picoq-core: everything picoq's programs share.
//!
//! `#![no_std]` and no allocator: every buffer is a fixed-size array or a
//! heapless collection whose bound is a named constant. The programs in
//! `bins/` are thin: they read their configuration, call into this crate,
//! and map outcomes to exit codes.
//!
//! `unsafe` lives only in [`sys`]; every other module forbids it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod sys;

// The programs use these through core, so every crate sees one version.
pub use heapless;
pub use rustix;

#[forbid(unsafe_code)]
pub mod addr;
#[forbid(unsafe_code)]
pub mod bytes;
#[forbid(unsafe_code)]
pub mod cdb;
#[forbid(unsafe_code)]
pub mod control;
#[forbid(unsafe_code)]
pub mod die;
#[forbid(unsafe_code)]
pub mod dsn;
#[forbid(unsafe_code)]
pub mod envelope;
#[forbid(unsafe_code)]
pub mod errtext;
#[forbid(unsafe_code)]
pub mod io;
#[forbid(unsafe_code)]
pub mod maildir;
#[forbid(unsafe_code)]
pub mod net;
#[forbid(unsafe_code)]
pub mod netstring;
#[forbid(unsafe_code)]
pub mod num;
#[forbid(unsafe_code)]
pub mod qmqp;
#[forbid(unsafe_code)]
pub mod qq;
#[forbid(unsafe_code)]
pub mod queue;
#[forbid(unsafe_code)]
pub mod received;
#[forbid(unsafe_code)]
pub mod routes;
#[forbid(unsafe_code)]
pub mod smtp;
#[forbid(unsafe_code)]
pub mod smtpclient;
#[forbid(unsafe_code)]
pub mod smtpd;
#[forbid(unsafe_code)]
pub mod spill;
#[forbid(unsafe_code)]
pub mod spool;
#[cfg(test)]
#[forbid(unsafe_code)]
mod testutil;
#[forbid(unsafe_code)]
pub mod tmpfile;

/// The compiled-in home directory (`make install PREFIX=...` sets it;
/// default `/var/qmail`). Unprivileged programs honour `$PICOQ_HOME`.
pub const HOME: &core::ffi::CStr = include!(concat!(env!("OUT_DIR"), "/home.rs"));
