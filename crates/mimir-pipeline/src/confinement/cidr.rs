//! IP address blocks such as `169.254.0.0/16`.

use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 block: an address and how many leading bits matter. A
/// single address is a block of one (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fe80::/10`, `127.0.0.1` or `[::1]`. Host bits
    /// after the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let bare = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        let ip: IpAddr = bare
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let ip = ip.to_canonical();
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => {
                    return Err(format!(
                        "{text:?}: the prefix length must be a number from 0 to {bits}"
                    ));
                }
            },
        };
        Ok(Cidr {
            network: mask(ip, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address
    /// (`::ffff:169.254.169.254`) counts as the IPv4 address it maps.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let link_local = Cidr::parse("169.254.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        assert!(link_local.contains(ip("169.254.169.254")));
        assert!(link_local.contains(ip("::ffff:169.254.169.254")));
        assert!(!link_local.contains(ip("169.255.0.1")));
        assert!(!link_local.contains(ip("fe80::1")));
        let v6 = Cidr::parse("fe80::/10").unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("fe80::1")));
        assert!(v6.contains(ip("febf::1")));
        assert!(!v6.contains(ip("fec0::1")));
        let one = Cidr::parse("fd00:ec2::254").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("fd00:ec2::254")));
        assert!(!one.contains(ip("fd00:ec2::253")));
        let all = Cidr::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("8.8.8.8")));
        assert_eq!(
            Cidr::parse("10.1.2.3/8").map(|c| c.to_string()),
            Ok("10.0.0.0/8".to_string())
        );
        assert_eq!(
            Cidr::parse("[::1]").map(|c| c.to_string()),
            Ok("::1".to_string())
        );
    }

    #[test]
    fn bad_blocks_say_why() {
        for text in ["10.0.0.0/33", "::/129", "10.0.0.0/x", "example.com", ""] {
            assert!(Cidr::parse(text).is_err(), "{text}");
        }
    }
}
