//! The userland stress load (issue 9) under the hypervisor: fork/exec loops,
//! a 150 MiB memory churn, a console flood and lines typed every 2 s, for
//! [`LOAD`], once under icount and once under plain TCG. The checks are
//! those of `integration::stress_load`, listed in docs/stress.md;
//! `scripts/stress` runs the same load for an hour.
use integration::root;
use integration::stress_load::{run, Boot, Config, Timing};
use std::time::Duration;

/// Load per run: the two runs go in parallel, each ~4 minutes with the boot.
const LOAD: Duration = Duration::from_secs(150);

fn stress(timing: Timing) {
    let mut cfg = Config { boot: Boot::Hypervisor, timing, load: LOAD, log: Default::default(), progress: None };
    cfg.log = root().join("target/stress").join(format!("{}.log", cfg.label()));
    let outcome = run(&cfg);
    assert!(outcome.passed(), "{outcome}");
    eprint!("{outcome}");
}

#[test]
fn linux_survives_the_stress_load_under_icount() {
    stress(Timing::Icount);
}

#[test]
fn linux_survives_the_stress_load_under_plain_tcg() {
    stress(Timing::Tcg);
}
