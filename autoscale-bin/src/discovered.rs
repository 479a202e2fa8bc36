//! Service discovery's types, as the Docker backend defines them: what a `[[discover]]` section finds on its
//! endpoint. The configuration turns a found service into a `ServiceConfig`; the daemon asks for them.

use std::time::Duration;

pub use autoscale_docker::{
    DiscoverKind, DiscoveredService, Discovery, Selector, SkippedService, endpoint,
};
use autoscale_docker::{EngineEndpoint, Error};

/// List the services of `kind` whose labels match `selector` on `endpoint`.
pub async fn discover(
    endpoint: &EngineEndpoint,
    kind: DiscoverKind,
    selector: &Selector,
    timeout: Duration,
) -> Result<Discovery, Error> {
    endpoint.discover(kind, selector, timeout).await
}
