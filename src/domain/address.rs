//! Which network addresses a server-side fetch may reach. Remote import refuses loopback,
//! private, link-local (incl. cloud metadata), CGNAT, multicast and other special ranges —
//! also when they hide inside IPv6 (v4-mapped, v4-compatible, NAT64, 6to4) — unless an
//! operator allow-lists them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range like `10.0.0.0/8` or `fd00::/8`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        let bad = || super::ParseError::new(format!("'{raw}' is not an address or CIDR range"));
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| bad())?, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (raw.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network: addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(u32::from(net)) << 96, u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

/// An IPv6 address that carries an IPv4 one is judged as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let s = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if bits >> 32 == 0 && bits > 1 {
        return Some(low32); // ::a.b.c.d (v4-compatible, deprecated)
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(low32); // 64:ff9b::a.b.c.d (NAT64)
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8)); // 6to4
    }
    None
}

/// True for addresses a remote fetch must not reach unless allow-listed.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_unspecified()
                || a == 0                                   // "this network"
                || v4.is_loopback()                         // 127/8
                || v4.is_private()                          // 10/8, 172.16/12, 192.168/16
                || v4.is_link_local()                       // 169.254/16, incl. 169.254.169.254 metadata
                || (a == 100 && (64..128).contains(&b))     // CGNAT 100.64/10
                || (a == 192 && b == 0 && c == 0)           // IETF protocol assignments 192.0.0/24
                || (a == 198 && (b == 18 || b == 19))       // benchmarking 198.18/15
                || v4.is_multicast()
                || a >= 240 // reserved and broadcast
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_loopback()
                || (first & 0xfe00) == 0xfc00               // unique local fc00::/7 (incl. fd00:ec2::254)
                || (first & 0xffc0) == 0xfe80               // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0               // site-local fec0::/10
                || v6.is_multicast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_ranges_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "192.0.0.170",
        ] {
            assert!(is_forbidden(ip(bad)), "{bad} must be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "2002:5db8:d822::1",
        ] {
            assert!(!is_forbidden(ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn cidrs_contain_what_they_should() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains(ip("127.1.2.3")) && lo.contains(ip("::ffff:127.0.0.1")));
        assert!(!lo.contains(ip("128.0.0.1")));
        let one = Cidr::parse("10.0.0.5").unwrap();
        assert!(one.contains(ip("10.0.0.5")) && !one.contains(ip("10.0.0.6")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
