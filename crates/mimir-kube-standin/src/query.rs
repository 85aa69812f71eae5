//! Query strings: percent-decoding and the opaque `continue` token of paged lists.

/// The decoded `key=value` pairs of a query string.
pub(crate) fn parse(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The `continue` token naming the last object of a page.
pub(crate) fn continue_token(ns: &str, name: &str) -> String {
    let mut token = String::with_capacity(2 * (ns.len() + name.len() + 1));
    for b in format!("{ns}/{name}").bytes() {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// The namespace and name a `continue` token names, or None when it is not one of ours.
pub(crate) fn parse_continue(token: &str) -> Option<(String, String)> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes = token.as_bytes();
    let mut raw = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        raw.push(hex(pair[0])? * 16 + hex(pair[1])?);
    }
    let text = String::from_utf8(raw).ok()?;
    let (ns, name) = text.split_once('/')?;
    Some((ns.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_percent_decoded() {
        let q = parse("labelSelector=app%3Dmimir-worker%2Cworktask-id%3Da&limit=500&watch=true");
        assert_eq!(
            q[0],
            (
                "labelSelector".into(),
                "app=mimir-worker,worktask-id=a".into()
            )
        );
        assert_eq!(q[1], ("limit".into(), "500".into()));
        assert_eq!(parse("a=%zz%4")[0].1, "%zz%4");
    }

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_refused() {
        let t = continue_token("ns-1", "job-a");
        assert_eq!(parse_continue(&t), Some(("ns-1".into(), "job-a".into())));
        assert_eq!(parse_continue("xyz"), None);
        assert_eq!(parse_continue("41"), None);
    }
}
