//! The hosts `http.request` may call: allow and deny lists of host names,
//! addresses and CIDR blocks.

use super::{Cidr, ConfinementError};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// The deny list unless one is configured: link-local addresses (IPv4
/// `169.254.0.0/16`, where cloud metadata services answer, and IPv6
/// `fe80::/10`) and AWS's IPv6 metadata address `fd00:ec2::254`. Loopback
/// stays reachable, since pipelines often call services on the same machine.
pub const DEFAULT_HTTP_DENY: &[&str] = &["169.254.0.0/16", "fe80::/10", "fd00:ec2::254"];

/// The hosts `http.request` may call, as configured (`pipelines.http`).
///
/// Each entry is a host name (`api.example.com`), every subdomain of one
/// (`*.example.com`), an IP address or a CIDR block (`10.0.0.0/8`). `deny`
/// wins over `allow`; an empty `allow` allows every host not denied.
/// Defaults to an empty `allow` and [`DEFAULT_HTTP_DENY`]; a `deny` list that
/// is set replaces the default, so keep its entries in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpPolicy {
    /// When not empty, the only hosts requests may go to.
    pub allow: Vec<String>,
    /// Hosts requests never go to.
    pub deny: Vec<String>,
}

impl Default for HttpPolicy {
    fn default() -> HttpPolicy {
        HttpPolicy {
            allow: Vec::new(),
            deny: DEFAULT_HTTP_DENY.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One allow or deny entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// Exactly this host name (lowercase, without a trailing dot).
    Name(String),
    /// Every subdomain of this name (`*.example.com`), not the name itself.
    Subdomains(String),
    /// Addresses in this block.
    Addresses(Cidr),
}

impl HostRule {
    /// Parses a host name, `*.` and a name, an IP address or a CIDR block.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an entry is empty".into());
        }
        let looks_like_address =
            text.contains(':') || text.contains('/') || text.parse::<IpAddr>().is_ok();
        if looks_like_address {
            return Cidr::parse(text).map(HostRule::Addresses);
        }
        let (subdomains, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let name = normalize_name(name);
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "{text:?} is not a host name, *.name, IP address or CIDR block"
            ));
        }
        Ok(if subdomains {
            HostRule::Subdomains(name)
        } else {
            HostRule::Name(name)
        })
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            HostRule::Name(rule) => rule == name,
            HostRule::Subdomains(rule) => name
                .strip_suffix(rule.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            HostRule::Addresses(_) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        match self {
            HostRule::Addresses(block) => block.contains(ip),
            HostRule::Name(_) | HostRule::Subdomains(_) => false,
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Name(name) => f.write_str(name),
            HostRule::Subdomains(name) => write!(f, "*.{name}"),
            HostRule::Addresses(block) => write!(f, "{block}"),
        }
    }
}

fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Why a request may not go where it was headed; the text names the host or
/// address and the entry that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// An [`HttpPolicy`], parsed and ready to check destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRules {
    allow: Vec<HostRule>,
    deny: Vec<HostRule>,
}

const DENY_LIST: &str = "the HTTP deny list (pipelines.http.deny)";
const ALLOW_LIST: &str = "the HTTP allow list (pipelines.http.allow)";

impl HttpRules {
    /// Parses every entry of `policy`; an error names the first bad one.
    pub fn new(policy: &HttpPolicy) -> Result<HttpRules, ConfinementError> {
        let parse = |list: &'static str, entries: &[String]| {
            let mut rules = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let rule = HostRule::parse(entry).map_err(|reason| ConfinementError::HttpRule {
                    list,
                    index,
                    reason,
                })?;
                rules.push(rule);
            }
            Ok(rules)
        };
        Ok(HttpRules {
            allow: parse("allow", &policy.allow)?,
            deny: parse("deny", &policy.deny)?,
        })
    }

    /// Checks a URL before any connection: its host name against the name
    /// entries of the deny list, or its literal IP address against both
    /// lists. Addresses a name resolves to are checked by
    /// [`HttpRules::check_address`] when they are known.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let Some(host) = url.host_str() else {
            return Err(Refused(format!("{url} names no host")));
        };
        // The URL parser has already turned every IPv4 spelling
        // (`2852039166`, `0xa9fea9fe`) into dotted form.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check_address(None, ip),
            Err(_) => self.check_name(host),
        }
    }

    /// Checks a host name against the name entries of the deny list.
    pub fn check_name(&self, name: &str) -> Result<(), Refused> {
        let name = normalize_name(name);
        if let Some(rule) = self.deny.iter().find(|r| r.matches_name(&name)) {
            return Err(Refused(format!(
                "host {name} is denied by \"{rule}\" in {DENY_LIST}"
            )));
        }
        Ok(())
    }

    /// Checks an address a request would connect to: `ip` itself when the
    /// URL has a literal address (`name` is `None`), else one of the
    /// addresses `name` resolved to.
    pub fn check_address(&self, name: Option<&str>, ip: IpAddr) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        let name = name.map(normalize_name);
        let what = match &name {
            Some(name) => format!("host {name} resolves to {ip}, which"),
            None => ip.to_string(),
        };
        if let Some(name) = &name {
            self.check_name(name)?;
        }
        if let Some(rule) = self.deny.iter().find(|r| r.matches_ip(ip)) {
            return Err(Refused(format!(
                "{what} is denied by \"{rule}\" in {DENY_LIST}"
            )));
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        let allowed = self.allow.iter().any(|rule| {
            rule.matches_ip(ip) || name.as_deref().is_some_and(|n| rule.matches_name(n))
        });
        if allowed {
            Ok(())
        } else {
            Err(Refused(format!("{what} is not in {ALLOW_LIST}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> HttpRules {
        let policy = HttpPolicy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        HttpRules::new(&policy).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_default_denies_link_local_and_metadata_addresses_only() {
        let rules = HttpRules::new(&HttpPolicy::default()).unwrap_or_else(|e| panic!("{e}"));
        for denied in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            // The URL parser reads these as 169.254.169.254 too.
            "http://2852039166/",
            "http://0xa9fea9fe/",
        ] {
            let error = rules.check_url(&url(denied)).expect_err(denied);
            assert!(error.0.contains("pipelines.http.deny"), "{error}");
        }
        for allowed in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "https://example.com/",
            "http://[::1]/",
            "http://10.0.0.1/",
        ] {
            assert_eq!(rules.check_url(&url(allowed)), Ok(()), "{allowed}");
        }
        assert!(
            rules
                .check_address(Some("metadata.example"), ip("169.254.169.254"))
                .is_err()
        );
    }

    #[test]
    fn deny_wins_over_allow_and_allow_refuses_the_rest() {
        let rules = rules(&["*.example.com", "10.0.0.0/8"], &["secret.example.com"]);
        assert_eq!(
            rules.check_address(Some("api.example.com"), ip("93.184.216.34")),
            Ok(())
        );
        assert_eq!(
            rules.check_address(Some("db.internal"), ip("10.1.2.3")),
            Ok(())
        );
        let error = rules
            .check_url(&url("https://SECRET.example.com./x"))
            .expect_err("denied by name");
        assert_eq!(
            error.0,
            "host secret.example.com is denied by \"secret.example.com\" in the HTTP deny list (pipelines.http.deny)"
        );
        let error = rules
            .check_address(Some("example.com"), ip("93.184.216.34"))
            .expect_err("the bare name is not a subdomain");
        assert_eq!(
            error.0,
            "host example.com resolves to 93.184.216.34, which is not in the HTTP allow list (pipelines.http.allow)"
        );
        assert!(rules.check_address(None, ip("127.0.0.1")).is_err());
    }

    #[test]
    fn entries_are_names_subdomains_addresses_or_blocks() {
        assert_eq!(
            HostRule::parse("Example.COM."),
            Ok(HostRule::Name("example.com".into()))
        );
        assert_eq!(
            HostRule::parse("*.example.com"),
            Ok(HostRule::Subdomains("example.com".into()))
        );
        assert!(matches!(
            HostRule::parse("127.0.0.0/8"),
            Ok(HostRule::Addresses(_))
        ));
        assert!(matches!(HostRule::parse("::1"), Ok(HostRule::Addresses(_))));
        for bad in [
            "",
            "exa mple.com",
            "*.",
            "a..b",
            "http://example.com",
            "1.2.3.4/40",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
