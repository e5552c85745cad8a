//! The client's IP address: the socket peer, unless the peer is a trusted proxy
//! (`server.trusted_proxies`), in which case the one header those proxies write
//! (`server.client_ip_header`: `X-Forwarded-For` or RFC 7239 `Forwarded`) is read right to left
//! and the first address that is not a trusted proxy is the client. The other header is ignored:
//! a client could send it through a proxy that passes it on untouched.

use actix_web::HttpRequest;
use ipnet::IpNet;
use std::net::IpAddr;

fn trusted(ip: &IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(ip))
}

/// Parses one `for=` value of `Forwarded`: `192.0.2.1`, `"192.0.2.1:8080"`,
/// `"[2001:db8::1]:4711"`. Obfuscated identifiers (`_hidden`, `unknown`) give `None`.
fn parse_forwarded_for(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.rsplit_once(':').and_then(|(host, _)| host.parse().ok()))
}

/// The forwarding chain, client first, as the trusted header states it.
fn forwarded_chain(req: &HttpRequest, header: ClientIpHeader) -> Vec<Option<IpAddr>> {
    if header == ClientIpHeader::XForwardedFor {
        return req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(parse_forwarded_for)
            .collect();
    }
    req.headers()
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_forwarded_for(v))
            })
        })
        .map(Option::flatten)
        .collect()
}

pub use crate::config::ClientIpHeader;

/// The client IP for rate limiting and the webhook allow-list (IPv4-mapped IPv6 addresses are
/// shown as IPv4).
pub fn client_ip(req: &HttpRequest, proxies: &[IpNet], header: ClientIpHeader) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted(&peer, proxies) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_chain(req, header).into_iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if trusted(&ip, proxies) => client = ip,
            Some(ip) => return Some(ip),
            // An unreadable hop: stop at the last address we could vouch for.
            None => return Some(client),
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn req(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(format!("{peer}:5000").parse().unwrap());
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    const XFF: ClientIpHeader = ClientIpHeader::XForwardedFor;

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers() {
        let r = req("203.0.113.9", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(&r, &nets(&["10.0.0.0/8"]), XFF),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_proxy_chain_is_read_right_to_left() {
        let proxies = nets(&["10.0.0.0/8"]);
        let chain = [("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.1")];
        assert_eq!(
            client_ip(&req("10.0.0.2", &chain), &proxies, XFF),
            ip("198.51.100.7")
        );
        let forwarded = [(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        )];
        let r = req("10.0.0.2", &forwarded);
        assert_eq!(
            client_ip(&r, &proxies, ClientIpHeader::Forwarded),
            ip("2001:db8:cafe::17")
        );
        let r = req("10.0.0.2", &[("x-forwarded-for", "garbage")]);
        assert_eq!(client_ip(&r, &proxies, XFF), ip("10.0.0.2"));
        assert_eq!(
            client_ip(&req("10.0.0.2", &[]), &proxies, XFF),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn only_the_configured_header_counts() {
        let proxies = nets(&["10.0.0.0/8"]);
        let both = [
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=52.78.194.237"),
        ];
        assert_eq!(
            client_ip(&req("10.0.0.2", &both), &proxies, XFF),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(&req("10.0.0.2", &both), &proxies, ClientIpHeader::Forwarded),
            ip("52.78.194.237")
        );
    }
}
