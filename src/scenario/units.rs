//! Parsers for the small value languages of scenario files: durations, rates and broker URLs.

use std::time::Duration;

use crate::scenario::model::{BrokerUrl, Transport};

const DURATION_FORMAT: &str =
    "expected a number followed by a unit (ms, s, m or h), e.g. `250ms`, `30s`, `1.5s`, `5m`, `2m30s`, `1h`";

/// Parse a duration such as `250ms`, `30s`, `1.5s`, `5m`, `2m30s`, `1h`.
///
/// Units: `us`, `ms`, `s`, `m`, `h` (also `min`, `sec`). Components may be chained (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {DURATION_FORMAT}"));
    }
    let bad = || format!("invalid duration `{}`; {DURATION_FORMAT}", shown(text));
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(bad());
        }
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_secs = match unit {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" if tail.is_empty() && rest.len() == text.len() => {
                return Err(format!(
                    "duration `{}` has no unit; write e.g. `{num}s` or `{num}ms`",
                    shown(text)
                ))
            }
            _ => return Err(bad()),
        };
        let value: f64 = num.parse().map_err(|_| bad())?;
        let part = Duration::try_from_secs_f64(value * unit_secs)
            .map_err(|_| format!("duration `{}` is too large", shown(text)))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration `{}` is too large", shown(text)))?;
        rest = tail;
    }
    Ok(total)
}

const RATE_FORMAT: &str =
    "expected a number per time unit, e.g. `500/s`, `30000/min` or `2/h` (a plain number means per second)";

/// Parse a rate such as `500/s`, `30000/min`, `2/h` or a plain number (per second); returns per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let text = s.trim();
    let bad = || format!("invalid rate `{}`; {RATE_FORMAT}", shown(text));
    let (num, per) = match text.split_once('/') {
        Some((n, u)) => (n.trim(), u.trim()),
        None => (text, "s"),
    };
    let per_secs = match per {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(bad()),
    };
    if num.is_empty()
        || !num
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    if !value.is_finite() {
        return Err(bad());
    }
    if value < 0.0 {
        return Err(format!("rate `{}` is negative; {RATE_FORMAT}", shown(text)));
    }
    Ok(value / per_secs)
}

/// Parse `mqtt://host:port` or `tcp://host:port` (default port 1883, IPv6 in brackets).
pub fn parse_broker_url(s: &str) -> Result<BrokerUrl, String> {
    let text = s.trim();
    let example = "write e.g. `mqtt://127.0.0.1:1883`, `mqtts://broker.local:8883`, `ws://host:8080/mqtt` or `wss://host/mqtt`";
    let Some((scheme, _)) = text.split_once("://") else {
        return Err(format!(
            "broker URL `{}` has no scheme; {example}",
            shown(text)
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let (transport, default_port) = match scheme.as_str() {
        "mqtt" | "tcp" => (Transport::Tcp, 1883),
        "mqtts" | "ssl" | "tls" => (Transport::Tls, 8883),
        "ws" => (Transport::Ws, 80),
        "wss" => (Transport::Wss, 443),
        _ => {
            return Err(format!(
                "unknown broker URL scheme `{}`; {example}",
                shown(&scheme)
            ))
        }
    };
    let url = url::Url::parse(text)
        .map_err(|e| format!("malformed broker URL `{}`: {e}; {example}", shown(text)))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "broker URL `{}` contains credentials; put them in `broker.username` / `broker.password` instead",
            shown(text)
        ));
    }
    let websocket = matches!(transport, Transport::Ws | Transport::Wss);
    let bare_path = url.path().is_empty() || url.path() == "/";
    if (!websocket && !bare_path)
        || url.fragment().is_some()
        || (!websocket && url.query().is_some())
    {
        return Err(format!(
            "broker URL `{}` must be just scheme, host and port (no path, query or fragment; only ws:// and wss:// take a path); {example}",
            shown(text)
        ));
    }
    // The WebSocket path (with its query, if any): default `/mqtt`, the path most brokers serve.
    let path = match (websocket, bare_path) {
        (false, _) => String::new(),
        (true, true) if url.query().is_none() => "/mqtt".to_owned(),
        (true, _) => match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        },
    };
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => {
            return Err(format!(
                "broker URL `{}` has no host; {example}",
                shown(text)
            ))
        }
    };
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err(format!(
            "broker URL `{}` has port 0; {example}",
            shown(text)
        ));
    }
    Ok(BrokerUrl {
        scheme,
        transport,
        host: host.to_owned(),
        port,
        path,
    })
}

/// A broker URL as messages show it: shortened, and any password in it masked (`user:****@host`).
fn shown(s: &str) -> String {
    crate::scenario::error::shorten(&crate::scenario::error::mask_url_credentials(s), 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("30").unwrap_err().contains("30s"));
        assert!(parse_duration("10 seconds").unwrap_err().contains("e.g."));
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("500/s"), Ok(500.0));
        assert_eq!(parse_rate("30000/min"), Ok(500.0));
        assert_eq!(parse_rate("7"), Ok(7.0));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("nan/s").is_err());
    }

    #[test]
    fn urls() {
        let u = parse_broker_url("mqtt://[::1]:1884").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        assert_eq!(u.to_string(), "mqtt://[::1]:1884");
        assert_eq!(parse_broker_url("tcp://h").unwrap().port, 1883);
        let u = parse_broker_url("mqtts://h").unwrap();
        assert_eq!((u.transport, u.port), (Transport::Tls, 8883));
        let u = parse_broker_url("ws://h").unwrap();
        assert_eq!(
            (u.transport, u.port, u.path.as_str()),
            (Transport::Ws, 80, "/mqtt")
        );
        assert_eq!(u.to_string(), "ws://h:80/mqtt");
        let u = parse_broker_url("wss://h:8443/custom?x=1").unwrap();
        assert_eq!(
            (u.transport, u.port, u.path.as_str()),
            (Transport::Wss, 8443, "/custom?x=1")
        );
        assert_eq!(parse_broker_url("wss://h").unwrap().port, 443);
        assert!(parse_broker_url("mqtts://h/path")
            .unwrap_err()
            .contains("no path"));
        assert!(parse_broker_url("quic://h")
            .unwrap_err()
            .contains("unknown"));
    }
}
