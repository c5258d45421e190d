//! Where links point when no public URL is configured.

use std::net::{IpAddr, SocketAddr};

/// A listen address no client can use in a link (port 0, or all interfaces): only the running
/// server knows what it resolved to.
#[derive(Debug, thiserror::Error)]
#[error(
    "the listen address {0} names no address a client can use for a link; set FERRY_PUBLIC_URL \
     (or public_url in the config file) to the address clients reach the server at"
)]
pub struct NoLinkAddress(pub SocketAddr);

/// The base of links when no public URL is set: the bound address, or for a server bound to
/// all interfaces this machine's own address (never `0.0.0.0`, which no client can reach).
pub fn links_for(bound: SocketAddr) -> String {
    let ip = if bound.ip().is_unspecified() { machine_address(bound.ip()) } else { bound.ip() };
    format!("http://{}", SocketAddr::new(ip, bound.port()))
}

/// The address this machine is reached at on its network: the local side of a UDP socket
/// "connected" towards a documentation address (connecting sends no packet), else loopback.
/// IPv4 first, also for `[::]` (which takes IPv4 too): most devices on a LAN speak it, and a
/// v6 address may be a temporary one that changes while signed URLs still name it.
fn machine_address(unspecified: IpAddr) -> IpAddr {
    let probe = |local: &str, toward: &str| {
        std::net::UdpSocket::bind(local)
            .and_then(|socket| {
                socket.connect(toward)?;
                socket.local_addr()
            })
            .map(|address| address.ip())
            .ok()
            .filter(|ip| !ip.is_unspecified())
    };
    let v4 = probe("0.0.0.0:0", "192.0.2.1:9");
    match unspecified {
        IpAddr::V4(_) => v4.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        IpAddr::V6(_) => {
            v4.or_else(|| probe("[::]:0", "[2001:db8::1]:9")).unwrap_or(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_the_bound_address_never_an_unspecified_one() {
        assert_eq!(links_for("127.0.0.1:5000".parse().unwrap()), "http://127.0.0.1:5000");
        for all in ["0.0.0.0:5000", "[::]:5000"] {
            let url = links_for(all.parse().unwrap());
            let named: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
            assert!(!named.ip().is_unspecified() && named.port() == 5000, "{all} → {url}");
        }
    }
}
