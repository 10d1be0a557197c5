//! Rate budgets in memory: the same GCRA step as `rate.lua`, on the process's clock.

use super::MemoryStore;
use super::now_us;
use crate::ratelimit::{Decision, Rule, gcra};
use crate::store::StoreResult;

pub(super) fn rate(store: &MemoryStore, key: &str, rule: Rule) -> StoreResult<Decision> {
    let now_us = now_us();
    let now = now_us / 1000;
    let mut inner = store.lock();
    inner.purge(now);
    let tat = inner
        .rates
        .get(key)
        .filter(|(_, exp)| *exp > now)
        .map(|(tat, _)| *tat);
    let d = gcra(now_us, tat, rule);
    if let Decision::Allow { new_tat } = d {
        inner.rates.insert(
            key.to_string(),
            (new_tat, now + (new_tat - now_us) / 1000 + 1),
        );
    }
    Ok(d)
}
