//! JWTs from a cookie (`auth.cookie_name`), for browsers that *navigate* to the gateway and so
//! cannot attach an `Authorization` header. The bearer header still wins when both are sent.
//!
//! A cookie travels with cross-site requests too (a link or form on another site), so a
//! request authenticated by cookie must come from this gateway's own origin or from one of
//! `cors.allowed_origins`, judged by `Sec-Fetch-Site` and the initiating origin (`Origin`, else
//! `Referer`). Anything else is `403 cross_site_request`. Without those headers (older browsers,
//! non-browser clients) the request is allowed: only browsers carry ambient cookies.

use actix_web::http::header::{HeaderMap, ORIGIN, REFERER};
use actix_web::HttpRequest;
use secrecy::SecretString;

/// Cookie credentials and the origins allowed to use them.
#[derive(Debug, Clone, Default)]
pub struct CookiePolicy {
    /// Cookie holding the JWT; `None` = cookies are not read.
    pub cookie_name: Option<String>,
    /// Origins (`scheme://host[:port]`) allowed besides the gateway's own.
    pub allowed_origins: Vec<String>,
    /// The gateway's own origin (from `server.public_base_url`).
    pub own_origin: String,
}

/// Why a cookie-authenticated request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossSite;

fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Whether a request names more than one origin: several `Origin` fields, or one listing
/// several (RFC 6454 allows a space-separated list; a serialized origin has no space or comma).
pub fn several_origins(headers: &HeaderMap) -> bool {
    headers.get_all(ORIGIN).count() > 1
        || headers.get(ORIGIN).is_some_and(|v| {
            v.as_bytes()
                .iter()
                .any(|b| matches!(b, b' ' | b',' | b'\t'))
        })
}

impl CookiePolicy {
    /// The JWT from the cookie, if cookies are on and the request carries one.
    pub fn token(&self, req: &HttpRequest) -> Option<SecretString> {
        let name = self.cookie_name.as_deref()?;
        let cookie = req.cookie(name)?;
        let value = cookie.value().trim();
        (!value.is_empty()).then(|| SecretString::from(value.to_string()))
    }

    fn allowed(&self, origin: &str) -> bool {
        origin == self.own_origin || self.allowed_origins.iter().any(|o| o == origin)
    }

    /// Checks where a cookie-authenticated request comes from.
    ///
    /// Errors: [`CrossSite`] for a cross-site (or same-site but foreign-origin) request whose
    /// initiating origin is unknown or not allowed.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), CrossSite> {
        // One initiator only: two `Origin` (or `Referer`, `Sec-Fetch-Site`) fields, or an
        // `Origin` listing several origins, cannot be judged by one of them.
        if several_origins(headers)
            || headers.get_all(REFERER).count() > 1
            || headers.get_all("sec-fetch-site").count() > 1
        {
            return Err(CrossSite);
        }
        // `Origin: null` (sandboxed frames, cross-origin redirects, data: pages) is an opaque
        // origin: never trusted, whatever else the request says.
        if headers.get(ORIGIN).is_some_and(|v| v.as_bytes() == b"null") {
            return Err(CrossSite);
        }
        let initiator = headers
            .get(ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                headers
                    .get(REFERER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(origin_of)
            });
        let fetch_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        match fetch_site.as_deref() {
            // Typed URL, bookmark, or this very origin.
            Some("none") | Some("same-origin") => Ok(()),
            // Another site or a sibling origin: only allowed origins may use the cookie.
            Some(_) => match initiator {
                Some(origin) if self.allowed(&origin) => Ok(()),
                _ => Err(CrossSite),
            },
            // No Fetch Metadata: judge by Origin / Referer when present.
            None => match initiator {
                Some(origin) if !self.allowed(&origin) => Err(CrossSite),
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn policy() -> CookiePolicy {
        CookiePolicy {
            cookie_name: Some("session".into()),
            allowed_origins: vec!["https://app.example".into()],
            own_origin: "https://gw.example".into(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn fetch_metadata_and_origins() {
        let p = policy();
        assert_eq!(p.check(&headers(&[])), Ok(()));
        assert_eq!(
            p.check(&headers(&[("sec-fetch-site", "same-origin")])),
            Ok(())
        );
        assert_eq!(p.check(&headers(&[("sec-fetch-site", "none")])), Ok(()));
        assert_eq!(
            p.check(&headers(&[("sec-fetch-site", "cross-site")])),
            Err(CrossSite)
        );
        assert_eq!(
            p.check(&headers(&[
                ("sec-fetch-site", "cross-site"),
                ("referer", "https://evil.example/x")
            ])),
            Err(CrossSite)
        );
        assert_eq!(
            p.check(&headers(&[
                ("sec-fetch-site", "cross-site"),
                ("referer", "https://app.example/page?a=1")
            ])),
            Ok(())
        );
        assert_eq!(
            p.check(&headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://app.example")
            ])),
            Ok(())
        );
        assert_eq!(
            p.check(&headers(&[("origin", "https://evil.example")])),
            Err(CrossSite)
        );
        assert_eq!(
            p.check(&headers(&[("origin", "https://gw.example")])),
            Ok(())
        );
        assert_eq!(
            p.check(&headers(&[("referer", "https://evil.example/")])),
            Err(CrossSite)
        );
        assert_eq!(
            p.check(&headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "null")
            ])),
            Err(CrossSite)
        );
        assert_eq!(p.check(&headers(&[("origin", "null")])), Err(CrossSite));
        assert_eq!(
            p.check(&headers(&[(
                "origin",
                "https://app.example https://evil.example"
            )])),
            Err(CrossSite)
        );
        assert_eq!(
            p.check(&headers(&[(
                "origin",
                "https://app.example, https://evil.example"
            )])),
            Err(CrossSite)
        );
        let mut two = headers(&[("origin", "https://app.example")]);
        two.append(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert_eq!(p.check(&two), Err(CrossSite));
        assert_eq!(
            p.check(&headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "null"),
                ("referer", "https://app.example/p")
            ])),
            Err(CrossSite)
        );
    }
}
