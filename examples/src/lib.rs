//! Runnable examples of embedding autoscale: see the `[[example]]` targets.
