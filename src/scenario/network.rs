//! Validation of the broker's network keys: several broker URLs and source-address pools.

use std::net::IpAddr;

use crate::scenario::context::{loc, Validator};
use crate::scenario::error::{ErrorKind, ScenarioError};
use crate::scenario::model::{BrokerAssign, BrokerSettings};
use crate::scenario::raw::{RawBroker, Scalar};
use crate::scenario::units::parse_broker_url;

/// Most source addresses a pool may expand to.
pub const MAX_SOURCE_ADDRESSES: usize = 65_536;

type Result<T> = std::result::Result<T, ScenarioError>;

/// Expand `a.b.c.d` or `a.b.c.d-a.b.c.e` (IPv4 ranges; single IPv6 addresses).
pub fn parse_address_range(text: &str) -> std::result::Result<Vec<IpAddr>, String> {
    let text = text.trim();
    let parse = |s: &str| -> std::result::Result<IpAddr, String> {
        s.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("`{s}` is not an IP address"))
    };
    match text.split_once('-') {
        None => Ok(vec![parse(text)?]),
        Some((a, b)) => match (parse(a)?, parse(b)?) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (lo, hi) = (u32::from(a), u32::from(b));
                if hi < lo {
                    return Err(format!("the range `{text}` ends before it starts"));
                }
                if (hi - lo) as usize >= MAX_SOURCE_ADDRESSES {
                    return Err(format!(
                        "the range `{text}` has more than {MAX_SOURCE_ADDRESSES} addresses"
                    ));
                }
                Ok((lo..=hi).map(|n| IpAddr::V4(n.into())).collect())
            }
            _ => Err(format!(
                "`{text}`: ranges are supported for IPv4 only; list IPv6 addresses one by one"
            )),
        },
    }
}

impl Validator<'_> {
    pub(super) fn network(&self, b: &RawBroker, out: &mut BrokerSettings) -> Result<()> {
        if let Some(list) = &b.urls {
            let hint =
                "list broker URLs such as `urls: [mqtt://127.0.0.1:1883, mqtt://127.0.0.1:1884]`";
            if b.url.is_some() {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    loc(&list.referenced),
                    Some("broker.urls".into()),
                    "`url` and `urls` cannot both be set",
                    Some("keep `urls` for several brokers, or `url` for one".into()),
                ));
            }
            if list.value.is_empty() {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    loc(&list.referenced),
                    Some("broker.urls".into()),
                    "`urls` is empty",
                    Some(hint.into()),
                ));
            }
            for (i, v) in list.value.iter().enumerate() {
                let path = format!("broker.urls[{i}]");
                let s = self.text(v, &path, hint)?;
                out.urls
                    .push(parse_broker_url(&s).map_err(|m| self.invalid(v, &path, m, hint))?);
            }
            out.url = out.urls.first().cloned();
        }
        if let Some(v) = &b.assign {
            let hint = "`round_robin` (device i goes to broker i mod n) or `by_group` (group g goes to broker g mod n)";
            out.assign = match self.text(v, "broker.assign", hint)?.trim() {
                "round_robin" => BrokerAssign::RoundRobin,
                "by_group" => BrokerAssign::ByGroup,
                other => {
                    return Err(self.invalid(
                        v,
                        "broker.assign",
                        format!(
                            "unknown assignment `{}`",
                            crate::scenario::error::shorten(other, 40)
                        ),
                        hint,
                    ))
                }
            };
        }
        if let Some(list) = &b.source_addresses {
            let hint = "list local addresses or IPv4 ranges, e.g. `source_addresses: [\"127.0.0.2-127.0.0.200\"]`";
            for (i, v) in list.value.iter().enumerate() {
                let path = format!("broker.source_addresses[{i}]");
                let text = self.text(v, &path, hint)?;
                let addrs =
                    parse_address_range(&text).map_err(|m| self.invalid(v, &path, m, hint))?;
                out.source_addresses.extend(addrs);
                if out.source_addresses.len() > MAX_SOURCE_ADDRESSES {
                    return Err(self.invalid(
                        v,
                        &path,
                        format!("more than {MAX_SOURCE_ADDRESSES} source addresses"),
                        hint,
                    ));
                }
            }
            check_families(self, list.value.first(), out)?;
        }
        Ok(())
    }
}

/// Source addresses must be of the brokers' address family where the broker is an IP literal.
fn check_families(v: &Validator<'_>, first: Option<&Scalar>, out: &BrokerSettings) -> Result<()> {
    let Some(first) = first else {
        return Ok(());
    };
    let any_v4 = out.source_addresses.iter().any(IpAddr::is_ipv4);
    let any_v6 = out.source_addresses.iter().any(IpAddr::is_ipv6);
    for u in out.targets() {
        if let Ok(ip) = u.host.parse::<IpAddr>() {
            if (ip.is_ipv4() && !any_v4) || (ip.is_ipv6() && !any_v6) {
                return Err(v.invalid(
                    first,
                    "broker.source_addresses",
                    format!("no source address can reach {u} (wrong address family)"),
                    "use IPv4 source addresses for IPv4 brokers and IPv6 ones for IPv6 brokers",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand() {
        assert_eq!(parse_address_range("127.0.0.2-127.0.0.4").unwrap().len(), 3);
        assert_eq!(parse_address_range("::1").unwrap().len(), 1);
        assert!(parse_address_range("127.0.0.4-127.0.0.2").is_err());
        assert!(parse_address_range("10.0.0.0-10.2.0.0").is_err());
        assert!(parse_address_range("nope").is_err());
        assert!(parse_address_range("::1-::2").is_err());
    }
}
