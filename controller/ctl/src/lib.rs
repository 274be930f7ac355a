//! Placeholder: yunshuctl lands here.
