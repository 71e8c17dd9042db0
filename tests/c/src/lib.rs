//! Placeholder: see tests/.
