//! An agency process of any kind for the end-to-end tests: the same code as
//! `waymark serve` and the `services/*` binaries, built inside this package
//! so the tests can start it by path (`CARGO_BIN_EXE_waymark-test-agency`).

fn main() -> std::process::ExitCode {
    waymark_federation::serve_main()
}
