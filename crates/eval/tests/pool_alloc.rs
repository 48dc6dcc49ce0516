//! The pooled allocator as this test binary's global allocator: evaluation,
//! growth of vectors across size classes and frees from other threads.

use ferrix_eval::{print::print_value, Eval};

#[global_allocator]
static ALLOC: ferrix_eval::alloc::PoolAlloc = ferrix_eval::alloc::PoolAlloc;

#[test]
fn evaluates_with_the_pool_allocator() {
    let ev = Eval::default();
    let v = ev
        .eval_string(
            "let l = builtins.genList (x: { a = x; s = \"n${toString x}\"; }) 2000; in builtins.foldl' (acc: e: acc + e.a + builtins.stringLength e.s) 0 l",
            "/",
        )
        .and_then(|v| ev.force_deep(&v))
        .expect("evaluates");
    assert_eq!(print_value(&v), "2007890");
}

#[test]
fn grows_and_shrinks_across_classes() {
    let mut v: Vec<u8> = Vec::new();
    for i in 0..10_000u32 {
        v.push(i as u8);
    }
    assert_eq!(v.len(), 10_000);
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10u8).collect::<Vec<_>>());
    let boxes: Vec<Box<[u64; 3]>> = (0..1000).map(|i| Box::new([i; 3])).collect();
    let handle = std::thread::spawn(move || boxes.iter().map(|b| b[0]).sum::<u64>());
    assert_eq!(handle.join().expect("thread"), 499_500);
}

/// Many chunks' worth of small blocks of every class, and blocks just past
/// the pool's largest (the system allocator's): each stays distinct, keeps
/// its contents and its alignment.
#[test]
fn small_blocks_span_many_chunks() {
    let sizes = [8usize, 24, 40, 128, 136, 200, 256, 264, 512];
    let mut blocks: Vec<Vec<u64>> = Vec::new();
    let mut total = 0usize;
    let mut i = 0u64;
    while total < 40 << 20 {
        let words = sizes[i as usize % sizes.len()] / 8;
        blocks.push(vec![i; words]);
        total += words * 8;
        i += 1;
    }
    for (k, b) in blocks.iter().enumerate() {
        assert!(b.iter().all(|&w| w == k as u64), "block {k} kept its contents");
        assert_eq!(b.as_ptr() as usize % 8, 0);
    }
    let aligned: Vec<Box<std::mem::MaybeUninit<u128>>> = (0..100_000).map(|_| Box::new_uninit()).collect();
    assert!(aligned.iter().all(|b| (b.as_ref() as *const _ as usize).is_multiple_of(16)));
}
