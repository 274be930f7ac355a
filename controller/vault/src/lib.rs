//! Envelope encryption of secrets at rest: a data key per record, AES-GCM, master keys from a file or a Secret, with rotation
