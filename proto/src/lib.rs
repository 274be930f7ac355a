//! Placeholder: generated protobuf code lands here.
