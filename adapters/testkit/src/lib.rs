//! The conformance suite every Yunshu adapter must pass, run against real clouds
