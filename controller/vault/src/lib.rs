//! `yunshu-vault`: secrets at rest, sealed with envelope encryption.
//!
//! Adapters keep what they create for departments — S3 keys, application
//! credentials — through [`yunshu_core::adapter::SecretVault`]. [`Vault`]
//! implements it over Yunshu's own [`yunshu_core::store::Store`], so secrets
//! live next to the objects that need them, in etcd or the embedded store,
//! and never in plain text:
//!
//! - **Envelope encryption.** Each record gets a fresh random data key; the
//!   value is sealed with it (AES-256-GCM) and the data key is wrapped with
//!   the primary master key (AES-256-GCM). A master key thus only ever
//!   encrypts 32-byte data keys, and rotating it rewrites a few dozen bytes
//!   per record rather than every value ([`record`]).
//! - **Bound to the name.** The associated data of both seals names the
//!   record, so a record copied or moved to another name does not open.
//! - **Master keys from a Secret or a file.** [`KeyRing`] loads a directory
//!   of key files plus a `primary` file — the shape of a mounted Kubernetes
//!   Secret — or one key file. A KMS can be plugged in later as another way
//!   to build the ring or to wrap data keys; the record format names the key
//!   id and algorithm so either can change.
//! - **Rotation.** Add a key and make it primary ([`KeyRing::rotate_dir`] or
//!   by editing the Secret), [`Vault::replace_keyring`], then
//!   [`Vault::rewrap_all`]; once [`Vault::key_usage`] shows the old key wraps
//!   nothing, remove it from the ring.
//!
//! Nothing here logs, formats or returns key material or plaintext: `Debug`
//! shows key ids only, and errors name the record or file and the rule.

pub mod keyring;
pub mod record;
pub mod vault;

pub use keyring::KeyRing;
pub use vault::{PREFIX, RewrapReport, Vault, store_key};
