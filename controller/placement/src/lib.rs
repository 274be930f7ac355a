//! Placeholder: the scheduling loop lands here.
