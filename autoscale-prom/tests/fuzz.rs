//! Arbitrary response bodies never panic the decoder, the reader or the client: the answer is always a value
//! or a typed error, and a value is never NaN (nor infinite unless the check accepts that).

mod support;

use std::time::Duration;

use autoscale_core::Timestamp;
use autoscale_prom::response::{Envelope, evaluate, parse};
use autoscale_prom::{
    NonFinite, OnEmpty, PrometheusClient, PrometheusConfig, QueryOptions, RangeReduce, RangeWindow,
    Reduce,
};
use proptest::prelude::*;
use support::{Reply, Server};

fn option_sets() -> Vec<QueryOptions> {
    let window = RangeWindow::new(Duration::from_secs(60), Duration::from_secs(15)).unwrap();
    vec![
        QueryOptions::new(),
        QueryOptions::new()
            .reduce(Reduce::Avg)
            .on_empty(OnEmpty::Zero)
            .non_finite(NonFinite::Accept),
        QueryOptions::new().reduce(Reduce::Sum),
        QueryOptions::new().range(window),
        QueryOptions::new()
            .range(window.reduce(RangeReduce::Last))
            .reduce(Reduce::Min)
            .non_finite(NonFinite::Accept),
    ]
}

/// Decode and read `body` every way a check might; check the invariants of every value.
fn read_every_way(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(Envelope::Success(answer)) = parse(body) {
        for options in option_sets() {
            if let Ok(v) = evaluate(&answer.data, &options, OnEmpty::Error) {
                prop_assert!(!v.is_nan());
                if options.non_finite_policy() == NonFinite::Error {
                    prop_assert!(v.is_finite());
                }
            }
        }
    }
    Ok(())
}

fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        Just("NaN".to_owned()),
        Just("+Inf".to_owned()),
        Just("-Inf".to_owned()),
        Just("1e309".to_owned()),
        Just("-0".to_owned()),
        "[-+.e0-9a-zA-Z]{0,6}",
    ]
}

fn point() -> impl Strategy<Value = String> {
    (any::<u32>(), value_text()).prop_map(|(t, v)| format!("[{t},{}]", serde_json::json!(v)))
}

fn labels() -> impl Strategy<Value = String> {
    proptest::collection::btree_map("[a-z_]{1,4}", "[ -~]{0,6}", 0..3)
        .prop_map(|m| serde_json::json!(m).to_string())
}

/// Envelopes close to Prometheus's shape, so the fuzzing reaches the reader and not only the JSON parser.
fn envelope() -> impl Strategy<Value = String> {
    let sample = (labels(), point()).prop_map(|(m, p)| format!(r#"{{"metric":{m},"value":{p}}}"#));
    let series = (labels(), proptest::collection::vec(point(), 0..4))
        .prop_map(|(m, ps)| format!(r#"{{"metric":{m},"values":[{}]}}"#, ps.join(",")));
    let result = prop_oneof![
        proptest::collection::vec(sample, 0..4)
            .prop_map(|s| format!(r#""resultType":"vector","result":[{}]"#, s.join(","))),
        proptest::collection::vec(series, 0..4)
            .prop_map(|s| format!(r#""resultType":"matrix","result":[{}]"#, s.join(","))),
        point().prop_map(|p| format!(r#""resultType":"scalar","result":{p}"#)),
        point().prop_map(|p| format!(r#""resultType":"string","result":{p}"#)),
        "[a-z]{0,8}".prop_map(|t| format!(r#""resultType":"{t}","result":[]"#)),
    ];
    (
        prop_oneof![
            Just("success".to_owned()),
            Just("error".to_owned()),
            "[a-z]{0,7}"
        ],
        result,
        proptest::option::of(proptest::collection::vec("[ -~]{0,10}", 0..3)),
    )
        .prop_map(|(status, data, warnings)| {
            let warnings = warnings
                .map(|w| format!(r#","warnings":{}"#, serde_json::json!(w)))
                .unwrap_or_default();
            format!(
                r#"{{"status":"{status}","data":{{{data}}},"errorType":"x","error":"y"{warnings}}}"#
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_every_way(&body)?;
    }

    #[test]
    fn arbitrary_envelopes_give_a_value_or_a_typed_error(body in envelope()) {
        read_every_way(body.as_bytes())?;
        // Truncating anywhere is still a clean error or value.
        for cut in [body.len() / 3, body.len() / 2, body.len().saturating_sub(1)] {
            read_every_way(&body.as_bytes()[..cut])?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The same through the whole client and a real socket.
    #[test]
    fn the_client_turns_any_body_into_a_value_or_a_typed_error(
        body in prop_oneof![envelope(), "[ -~]{0,64}"],
        status in prop_oneof![Just(200u16), Just(400), Just(422), Just(500)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let server = Server::start(vec![Reply::Json(status, body)]).await;
            let client = PrometheusClient::new(
                PrometheusConfig::new(&server.url).unwrap().timeout(Duration::from_secs(3)),
            )
            .unwrap();
            match client.query("q", Timestamp::from_secs(1), &QueryOptions::new()).await {
                Ok(v) => {
                    prop_assert_eq!(status, 200);
                    prop_assert!(v.is_finite());
                }
                Err(e) => {
                    // Every failure converts to a core error of the same kind, with the target named.
                    let kind = e.kind();
                    prop_assert!(e.target().is_some());
                    let core: autoscale_core::Error = e.into();
                    prop_assert_eq!(core.kind(), kind);
                }
            }
            Ok(())
        })?;
    }
}
