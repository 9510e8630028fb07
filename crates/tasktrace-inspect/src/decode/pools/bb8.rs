//! bb8's pool (`bb8` 0.8–0.9).
//!
//! `Pool<M>` holds a `PoolInner<M>`, whose `inner` is an `Arc<SharedPool<M>>`; a
//! `PooledConnection` keeps the `PoolInner` in its `pool` field, a `Cow` (borrowed from the
//! pool for `get`, owned for `get_owned`). A task that finds no idle connection and may not
//! open one waits in `PoolInner::get` on `SharedPool.notify` (an `Arc<Notify>`: its leaf is
//! that `Notify`'s `Notified`). The size is `SharedPool.statics.max_size` (the `Builder`).

use super::{PoolKind, PoolShape, Step};

/// bb8's layout.
pub(super) const SHAPE: PoolShape = PoolShape {
    kind: PoolKind::Bb8,
    holders: &[(
        "bb8::api::PooledConnection<",
        &[
            Step::Field("pool"),
            Step::Variant(None),
            Step::Field("inner"),
        ],
    )],
    to_key: &[Step::Field("notify")],
    key: super::Key::Notify,
    to_size: &[Step::Field("statics"), Step::Field("max_size")],
};
