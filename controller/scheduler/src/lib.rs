//! Placeholder: pure placement lands here.
