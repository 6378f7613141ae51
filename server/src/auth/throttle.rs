//! Failed-login throttling, and the client address it is keyed on.
//!
//! Failures are counted in the database (every instance sees them) under three keys, each
//! locked for `auth.login_lockout_secs` once its count within that window reaches its limit:
//!
//! - a user name tried from one address (`auth.login_max_failures`): a guesser is stopped, and
//!   the same account from any other address is not;
//! - an address, whatever the user names (`auth.login_max_failures_per_address`): one password
//!   tried against every account (spraying) is stopped;
//! - a user name from all addresses together (`auth.login_max_failures_per_user`): a ceiling
//!   for guessing one account from many addresses.
//!
//! A locked key refuses the attempt before the password is checked (429 with `Retry-After`),
//! and refused attempts are not counted, so one address cannot lock an account for others
//! before the per-user ceiling. IPv6 addresses are counted by their /64, which one client
//! usually holds whole.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::config::AuthConfig;
use crate::state::AppState;

/// The address of the client: the peer of the connection, or, when the peer is one of
/// `limits.trusted_proxies`, the nearest address in `X-Forwarded-For` that is not a trusted
/// proxy. `None` only where no connection is known (a router driven without a listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
        let trusted = &state.config.limits.trusted_proxies;
        let Some(mut client) = peer else {
            return Ok(ClientAddr(None));
        };
        if trusted.contains(&client) {
            // Right to left: each trusted proxy appended the address it received from.
            let hops = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect::<Vec<_>>();
            for hop in hops.into_iter().rev() {
                let Ok(addr) = hop.parse::<IpAddr>() else {
                    break;
                };
                client = addr.to_canonical();
                if !trusted.contains(&client) {
                    break;
                }
            }
        }
        Ok(ClientAddr(Some(client)))
    }
}

/// The throttle keys of one login attempt, each with its failure limit.
pub fn keys(config: &AuthConfig, username: &str, client: ClientAddr) -> Vec<(String, u32)> {
    let addr = match client.0 {
        Some(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        Some(v4) => v4.to_string(),
        None => "unknown".to_owned(),
    };
    vec![
        (
            format!("user-at:{addr} {username}"),
            config.login_max_failures,
        ),
        (
            format!("addr:{addr}"),
            config.login_max_failures_per_address,
        ),
        (
            format!("user:{username}"),
            config.login_max_failures_per_user,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_prefix() {
        let config = AuthConfig::default();
        let a = keys(
            &config,
            "u",
            ClientAddr(Some("2001:db8:1:2:3:4:5:6".parse().unwrap())),
        );
        let b = keys(
            &config,
            "u",
            ClientAddr(Some("2001:db8:1:2:ffff::1".parse().unwrap())),
        );
        assert_eq!(a, b);
        assert_eq!(a[1].0, "addr:2001:db8:1:2::/64");
        let v4 = keys(&config, "u", ClientAddr(Some("10.1.2.3".parse().unwrap())));
        assert_eq!(v4[0].0, "user-at:10.1.2.3 u");
    }
}
