//! sqlx's pool (`sqlx-core` 0.7–0.8, tokio runtime).
//!
//! `Pool<DB>` is an `Arc<PoolInner<DB>>`; a `PoolConnection<DB>` keeps that `Arc` in its
//! `pool` field, and a `Transaction` begun on a pool holds one in its `connection` field
//! (`MaybePoolConnection::PoolConnection`). `PoolInner.semaphore` is sqlx's `AsyncSemaphore`,
//! whose `inner` is a tokio `Semaphore` under the tokio runtime: `PoolInner::acquire` waits in
//! its `Acquire`. The permit is kept for as long as the connection is out, and the pool's size
//! is `PoolInner.options.max_connections`.

use super::{PoolKind, PoolShape, Step};

/// sqlx's layout.
pub(super) const SHAPE: PoolShape = PoolShape {
    kind: PoolKind::Sqlx,
    holders: &[
        (
            "sqlx_core::pool::connection::PoolConnection<",
            &[Step::Field("pool")],
        ),
        (
            "sqlx_core::transaction::Transaction<",
            &[
                Step::Field("connection"),
                Step::Variant(Some("PoolConnection")),
                Step::Field("pool"),
            ],
        ),
    ],
    to_key: &[
        Step::Field("semaphore"),
        Step::Field("inner"),
        Step::Field("ll_sem"),
    ],
    key: super::Key::Semaphore,
    to_size: &[Step::Field("options"), Step::Field("max_connections")],
};
