//! Minimal server-rendered pages (no scripts) for people who open links in a browser.

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page: `heading` is escaped, `body_html` is inserted as is (callers escape).
pub fn page(heading: &str, body_html: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{h}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}\
table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;word-break:break-all}}\
button{{font-size:1.1rem;padding:.6rem 1.2rem}}\
code,pre{{background:#f4f4f4;padding:.1rem .3rem;white-space:pre-wrap;word-break:break-all}}</style>\
</head><body><h1>{h}</h1>\n{body_html}\n</body></html>\n",
        h = escape(heading)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
