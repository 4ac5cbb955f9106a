use super::*;

fn ph() -> Placeholders<'static> {
    Placeholders {
        pod: "web-2",
        namespace: "shop",
        statefulset: "web",
        ordinal: 2,
        revision: "web-7c9d",
    }
}

#[test]
fn placeholders_are_filled_and_escaped() {
    let q = r#"sum(rate(http_requests_total{namespace="$NAMESPACE",pod="$POD",code=~"5.."}[1m])) > 0 and on() vector($ORDINAL) >= 0 # $STATEFULSET $REVISION"#;
    assert_eq!(
        expand(q, &ph()),
        r#"sum(rate(http_requests_total{namespace="shop",pod="web-2",code=~"5.."}[1m])) > 0 and on() vector(2) >= 0 # web web-7c9d"#
    );
    let odd = Placeholders {
        pod: "a\"b\\c\nd",
        ..ph()
    };
    assert_eq!(expand("x{pod=\"$POD\"}", &odd), r#"x{pod="a\"b\\c\nd"}"#);
    assert_eq!(expand("no placeholders", &ph()), "no placeholders");
}

#[test]
fn vector_answers_are_read() {
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"pod":"web-2","code":"500"},"value":[1733570000.123,"0.5"]},
        {"metric":{},"value":[1733570000.123,"1"]}]}}"#;
    let samples = parse_response(200, body).unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].value, "0.5");
    assert_eq!(samples[0].text(), r#"{code="500", pod="web-2"} 0.5"#);
    assert_eq!(samples[1].text(), "{} 1");
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    assert_eq!(parse_response(200, empty).unwrap(), vec![]);
}

#[test]
fn errors_are_told_apart() {
    let bad = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
    match parse_response(400, bad) {
        Err(QueryError::Invalid(m)) => assert!(m.contains("parse error"), "{m}"),
        r => panic!("{r:?}"),
    }
    let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
    assert_eq!(
        parse_response(503, timeout),
        Err(QueryError::Unavailable("timeout: query timed out".into()))
    );
    match parse_response(502, b"<html>Bad Gateway</html>\nmore") {
        Err(QueryError::Unavailable(m)) => assert_eq!(m, "HTTP 502: <html>Bad Gateway</html>"),
        r => panic!("{r:?}"),
    }
    let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
    match parse_response(200, scalar) {
        Err(QueryError::Invalid(m)) => assert!(m.contains("not an instant vector"), "{m}"),
        r => panic!("{r:?}"),
    }
}

fn outcome(kind: QueryKind, result: Result<Vec<Sample>, QueryError>) -> QueryOutcome {
    QueryOutcome {
        kind,
        expanded: format!("{kind:?} query"),
        result,
    }
}

fn sample(v: &str) -> Sample {
    Sample {
        labels: BTreeMap::from([("pod".into(), "web-2".into())]),
        value: v.into(),
    }
}

#[test]
fn alerting_semantics() {
    let at = "2026-12-07T08:00:00Z";
    // A comparison that is false returns nothing: a healthy pod's --fail-if is empty.
    let healthy = [
        outcome(QueryKind::FailIf, Ok(vec![])),
        outcome(QueryKind::Require, Ok(vec![sample("1")])),
    ];
    assert_eq!(judge(&healthy, at), Verdict::Pass);
    // A require that returns a sample with value 0 still holds: any sample counts.
    let zero = [outcome(QueryKind::Require, Ok(vec![sample("0")]))];
    assert_eq!(judge(&zero, at), Verdict::Pass);
    let fired = [
        outcome(QueryKind::Require, Ok(vec![])),
        outcome(QueryKind::FailIf, Ok(vec![sample("0.5")])),
    ];
    match judge(&fired, at) {
        Verdict::Fail(f) => {
            assert_eq!(f.kind, QueryKind::FailIf);
            assert_eq!(f.samples, vec![sample("0.5")]);
            assert_eq!(
                f.reason(),
                "--fail-if `FailIf query` returned 1 sample(s) at 2026-12-07T08:00:00Z"
            );
            assert_eq!(
                f.diagnosis(),
                vec![
                    "query: FailIf query".to_string(),
                    r#"sample: {pod="web-2"} 0.5"#.into(),
                    "evaluated at 2026-12-07T08:00:00Z".into()
                ]
            );
        }
        v => panic!("a fired --fail-if wins over a holding --require: {v:?}"),
    }
    match judge(&[outcome(QueryKind::Require, Ok(vec![]))], at) {
        Verdict::Hold(f) => assert_eq!(
            f.reason(),
            "--require `Require query` returned no sample at 2026-12-07T08:00:00Z"
        ),
        v => panic!("{v:?}"),
    }
    let down = [outcome(
        QueryKind::FailIf,
        Err(QueryError::Unavailable("connection refused".into())),
    )];
    match judge(&down, at) {
        Verdict::Fail(f) => assert!(
            f.reason().contains("could not be evaluated") && f.reason().contains("refused"),
            "{}",
            f.reason()
        ),
        v => panic!("an unreachable Prometheus never passes: {v:?}"),
    }
}

#[test]
fn a_pod_passes_after_passes_in_a_row() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut book = MetricBook::new(Cadence {
        interval: s(10),
        passes: 3,
    });
    assert!(book.due(2, t0), "first evaluation at once");
    assert_eq!(book.describe(2), "metrics 0/3");
    book.record(2, t0, &Verdict::Pass);
    assert!(!book.due(2, t0 + s(9)));
    assert_eq!(book.until_due(2, t0 + s(4)), s(6));
    assert!(book.due(2, t0 + s(10)));
    book.record(2, t0 + s(10), &Verdict::Pass);
    assert!(!book.passed(2));
    assert_eq!(book.describe(2), "metrics 2/3");
    let hold = match judge(&[outcome(QueryKind::Require, Ok(vec![]))], "t") {
        Verdict::Hold(f) => Verdict::Hold(f),
        v => panic!("{v:?}"),
    };
    book.record(2, t0 + s(20), &hold);
    assert_eq!(
        book.describe(2),
        "metrics 0/3: --require returned no sample"
    );
    assert!(book
        .why_not(2)
        .unwrap()
        .contains("--require `Require query` returned no sample (last of 3 evaluation(s)"));
    for i in 3..6 {
        assert!(!book.passed(2));
        book.record(2, t0 + s(10 * i), &Verdict::Pass);
    }
    assert!(book.passed(2), "three in a row after the hold");
    assert_eq!(book.why_not(2), None);
    assert!(book.why_not(1).unwrap().contains("never evaluated"));
    book.forget(2);
    assert!(!book.passed(2) && book.due(2, t0));
}
