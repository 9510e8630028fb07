# Reference walk for docs/tokio-layouts.md (tokio 1.38-1.54, x86-64 Linux, static TLS):
#   gdb -batch -p PID -x gdb-walk-tasks.py
# For every thread: its CONTEXT; for every runtime handle seen there: every task of
# shared.owned (id, header state, trailer offset, poll symbol). Member names only, no offsets.
import gdb
inf = gdb.selected_inferior()
def rd(a, n=8):
    return int.from_bytes(bytes(inf.read_memory(a, n)), 'little')
def field(t, name):
    t = t.strip_typedefs()
    for f in t.fields():
        if f.name == name:
            return f.bitpos // 8, f.type
    raise KeyError('%s has no member %s (has %s)' % (t, name, [f.name for f in t.fields()]))
def path(t, names):
    off = 0
    for n in names.split('.'):
        o, t = field(t, n); off += o
    return off, t
def target(t):
    t = t.strip_typedefs()
    assert t.code == gdb.TYPE_CODE_PTR, t
    return t.target()
ctx_sym = "'tokio::runtime::context::CONTEXT::{constant#0}::{closure#0}::__RUST_STD_INTERNAL_VAL'"
seen = set()
def arc_data(arc_addr_val, arc_t):
    o, pt = path(arc_t, 'ptr.pointer')
    inner_t = target(pt)
    d, dt = field(inner_t, 'data')
    return arc_addr_val + d, dt
def walk_owned(h, ht, label, owned_path):
    o, ot = path(ht, owned_path)
    owned = h + o
    lo, lt = field(ot, 'list')
    if 'lists' in [f.name for f in lt.strip_typedefs().fields()]:
        lso, lst = field(lt, 'lists')
        dp_o, dpt = field(lst, 'data_ptr'); ln_o, _ = field(lst, 'length')
        base = rd(owned + lo + lso + dp_o); n = rd(owned + lo + lso + ln_o)
        mt = target(dpt); msz = mt.sizeof
        ho, _ = path(mt, '__0.data.value.head')
        heads = [rd(base + i * msz + ho) for i in range(n)]
        print('%s: ShardedList shards=%d shard_mask=%d' % (label, n, rd(owned + lo + field(lt, 'shard_mask')[0])))
    else:
        ho, _ = path(lt, 'head')
        heads = [rd(owned + lo + ho)]
    cnt = 0
    for hd in heads:
        p = hd
        while p:
            vt = rd(p + 16)
            vtab_t = gdb.lookup_type('tokio::runtime::task::raw::Vtable')
            toff = rd(vt + field(vtab_t, 'trailer_offset')[0]); idoff = rd(vt + field(vtab_t, 'id_offset')[0])
            poll = rd(vt + field(vtab_t, 'poll')[0])
            tid = rd(p + idoff)
            tr_t = gdb.lookup_type('tokio::runtime::task::core::Trailer')
            no, _ = path(tr_t, 'owned.inner.value.next')
            name = gdb.execute('info symbol 0x%x' % poll, to_string=True).strip()
            state = rd(p)
            print('  task id=%d header=%#x state=%#x trailer_off=%#x %s' % (tid, p, state, toff, name[:150]))
            cnt += 1
            p = rd(p + toff + no)
    print('%s: %d tasks' % (label, cnt))
for th in inf.threads():
    th.switch()
    try:
        v = gdb.parse_and_eval(ctx_sym)
    except gdb.error as e:
        print('thread', th.num, 'no CONTEXT', e); continue
    st = v.type.strip_typedefs()
    a = int(v.address)
    co, ct = path(st, 'val.value')
    ctx = a + co
    ho, hot = path(ct, 'current.handle.value.value')
    tag = rd(ctx + ho)
    print('thread %d %s fs_base=%#x CONTEXT=%#x handle tag=%d' % (th.num, th.name, int(gdb.parse_and_eval('$fs_base')), a, tag))
    if tag in (0, 1):
        var = ['CurrentThread', 'MultiThread'][tag]
        vo, vt = path(hot, 'Some.__0.' + var + '.__0')
        arc = rd(ctx + ho + vo)
        h, ht = arc_data(arc, vt)
        if h in seen: continue
        seen.add(h)
        walk_owned(h, ht, '%s handle %#x' % (var, h), 'shared.owned')
