//! DNS resolution that drops the addresses the HTTP policy refuses, so a
//! name cannot lead a request to a denied address.

use super::{HttpRules, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::sync::Arc;

/// Resolves with the system resolver, then keeps only the addresses
/// [`HttpRules::check_address`] accepts. A name left with none fails with a
/// [`Refused`] naming it, its addresses and the entries that refused them.
#[derive(Debug, Clone)]
pub(crate) struct ConfinedResolver {
    rules: Arc<HttpRules>,
}

impl ConfinedResolver {
    pub(crate) fn new(rules: Arc<HttpRules>) -> ConfinedResolver {
        ConfinedResolver { rules }
    }
}

impl Resolve for ConfinedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut kept = Vec::new();
            let mut refused: Vec<Refused> = Vec::new();
            for address in resolved {
                match rules.check_address(Some(&host), address.ip()) {
                    Ok(()) => kept.push(address),
                    Err(reason) => refused.push(reason),
                }
            }
            if kept.is_empty()
                && let Some(first) = refused.into_iter().next()
            {
                return Err(Box::new(first) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}
