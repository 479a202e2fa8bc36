//! The [`MetricSource`] of one check.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use autoscale_core::{MetricSource, Timestamp};

use crate::client::PrometheusClient;
use crate::options::QueryOptions;

/// A check's metric source: a shared [`PrometheusClient`] and the check's [`QueryOptions`].
///
/// Checks on the same server share the client (and so its connections and its round cache); each check
/// has its own source.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    client: Arc<PrometheusClient>,
    options: QueryOptions,
}

impl PrometheusSource {
    /// A source asking `client`, reading answers by `options`.
    pub fn new(client: Arc<PrometheusClient>, options: QueryOptions) -> Self {
        PrometheusSource { client, options }
    }

    /// The client.
    pub fn client(&self) -> &Arc<PrometheusClient> {
        &self.client
    }

    /// The check's options.
    pub fn options(&self) -> &QueryOptions {
        &self.options
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn fetch(&self, query: &str, at: Timestamp) -> autoscale_core::Result<f64> {
        self.client
            .query(query, at, &self.options)
            .await
            .map_err(Into::into)
    }

    /// A `query_range` over `[start, end]` (see [`PrometheusClient::query_range`]), several series combined by
    /// the check's `reduce`, infinities kept only if the check accepts them.
    async fn fetch_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> autoscale_core::Result<Vec<(Timestamp, f64)>> {
        self.client
            .query_range(query, start, end, step, &self.options)
            .await
            .map_err(Into::into)
    }
}
