//! Keeping a long-running node's resident memory near its working set.
//!
//! An upload or download moves many buffers of a few hundred KiB between the encoder (or
//! decoder) thread and the runtime's worker threads. With glibc's defaults every thread
//! that frees such a buffer may own a malloc arena (up to 8 per core), and free chunks
//! stay in the arenas: a node that had moved 300 MiB sat at 66 MiB resident while idle and
//! peaked at 99 MiB during a 1 GiB upload whose live buffers are about 27 MiB
//! (`bash bench/grid/run.sh --tahoe-modes "" --sizes 100 --big-mib 1024`). Two arenas and
//! a trim after each transfer bring that to 13 MiB idle and a 1 GiB upload peak under
//! 48 MiB, at the same throughput. Allocating the hot buffers from pools would make this
//! unnecessary; until then this is the measured fix. Other C libraries: no-ops.

/// Limit malloc arenas; call once at process start, before the runtime starts threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; M_ARENA_MAX is a documented option.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Give free heap pages back to the kernel; called when a large transfer ends.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only returns unused pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
