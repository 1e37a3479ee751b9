//! `waymark-ngo`: the ngo agency service. Serves the common Waymark services
//! and this kind's own over gRPC; see `waymark_agency::process` for flags,
//! start-up checks and exit codes (`--help` lists the flags).

/// jemalloc, as in the `waymark` binary: glibc's per-thread arenas kept
/// freed memory resident in this long-lived, many-threaded process.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    waymark_agency::process::main(waymark_types::AgencyKind::Ngo, waymark_ngo::add_to)
}
