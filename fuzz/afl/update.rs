//! afl entry point of the `update` target (`ylambda_fuzz::targets::update`); see scripts/fuzz.sh.
fn main() {
    // Panics yrs raises and `doc::guard` catches are not crashes: keep them quiet. A panic
    // that escapes the target reaches afl's own catch and aborts: a crash.
    ylambda_fuzz::panics::install_quiet_hook();
    afl::fuzz_nohook!(|data: &[u8]| {
        ylambda_fuzz::targets::update(data);
    });
}
