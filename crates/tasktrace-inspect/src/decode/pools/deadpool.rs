//! deadpool's managed pool (`deadpool` 0.10–0.12; deadpool-postgres, deadpool-redis and the
//! other `deadpool-*` crates are this pool with their own manager).
//!
//! `Pool<M>` is an `Arc<PoolInner<M>>`; an `Object<M>` (what `Pool::get` returns) keeps a
//! `WeakPool` to it (`pool.inner`, a `Weak`). `PoolInner.semaphore` is a tokio `Semaphore` with
//! one permit per object: `Pool::timeout_get` waits in its `Acquire`, and forgets the permit
//! it gets (the object's return adds it back). The size is `PoolInner.config.max_size`.

use super::{PoolKind, PoolShape, Step};

/// deadpool's layout.
pub(super) const SHAPE: PoolShape = PoolShape {
    kind: PoolKind::Deadpool,
    holders: &[(
        "deadpool::managed::object::Object<",
        &[Step::Field("pool"), Step::Field("inner")],
    )],
    to_key: &[Step::Field("semaphore"), Step::Field("ll_sem")],
    key: super::Key::Semaphore,
    to_size: &[Step::Field("config"), Step::Field("max_size")],
};
