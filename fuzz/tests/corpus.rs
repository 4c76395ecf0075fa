//! The committed seed corpus is what `ylambda_fuzz::seeds` makes, every seed passes its target,
//! and a short mutation run of every target finds nothing.
use std::collections::BTreeSet;
use std::path::Path;

use ylambda_fuzz::mutate::{self, Budget};
use ylambda_fuzz::{panics, seeds, targets};

fn corpus_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))
}

#[test]
fn the_committed_corpus_is_what_the_generator_makes() {
    let seeds = seeds::all();
    let mut expected = BTreeSet::new();
    for seed in &seeds {
        let path = corpus_dir().join(seed.target).join(&seed.name);
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `ylambda-fuzz seeds fuzz/corpus`)",
                path.display()
            )
        });
        assert!(
            committed == seed.bytes,
            "{} differs from the generator's (run `ylambda-fuzz seeds fuzz/corpus`)",
            path.display()
        );
        expected.insert(path);
    }
    for target in targets::TARGETS {
        assert!(
            seeds.iter().any(|s| s.target == target.name),
            "no seeds for {}",
            target.name
        );
        for entry in std::fs::read_dir(corpus_dir().join(target.name)).expect("corpus dir") {
            let path = entry.expect("entry").path();
            assert!(
                expected.contains(&path),
                "{} is not generated",
                path.display()
            );
        }
    }
}

#[test]
fn every_seed_passes_its_target() {
    panics::install_quiet_hook();
    for seed in seeds::all() {
        let target = targets::find(seed.target).expect("a target");
        if let Err(message) = panics::run_caught(|| (target.run)(&seed.bytes)) {
            panic!("{}/{}: {message}", seed.target, seed.name);
        }
    }
}

#[test]
fn a_short_mutation_run_of_every_target_finds_nothing() {
    for target in targets::TARGETS {
        // Debug builds are slow on yrs: a few hundred inputs of the slow targets, more of the rest.
        let executions = match target.name {
            "update" | "on_message" => 300,
            _ => 3000,
        };
        let report = mutate::run(
            target,
            &corpus_of(target.name),
            Budget::Executions(executions),
            1,
        );
        assert_eq!(report.executions, executions);
        assert!(
            report.crashes.is_empty(),
            "{}: {:?}",
            target.name,
            report.crashes
        );
    }
}

fn corpus_of(target: &str) -> Vec<Vec<u8>> {
    seeds::all()
        .into_iter()
        .filter(|s| s.target == target)
        .map(|s| s.bytes)
        .collect()
}

#[test]
fn the_seeds_reach_past_the_first_check() {
    use ylambda_shared::auth::Verifier;
    use ylambda_shared::doc::{validate_update, Validated};
    use ylambda_shared::protocol::pieces::parse_piece;
    use ylambda_shared::protocol::{signaling, ywebsocket};
    let verifier = Verifier::hs256(targets::JWT_SECRET);
    for seed in seeds::all() {
        let name = format!("{}/{}", seed.target, seed.name);
        let text = String::from_utf8_lossy(&seed.bytes);
        match seed.target {
            "ywebsocket" => {
                assert!(ywebsocket::decode_messages(&seed.bytes).is_ok(), "{name}")
            }
            "update" if !seed.name.starts_with("empty") => assert_eq!(
                validate_update(&seed.bytes[1..]),
                Ok(Validated::Content),
                "{name}"
            ),
            "signaling" => assert!(signaling::decode(&text).is_ok(), "{name}"),
            "pieces" if seed.name != "bad-headers" => assert!(
                text.lines()
                    .filter(|l| !l.starts_with('#'))
                    .any(|l| parse_piece(l.trim_start_matches('!'), 8).is_ok())
                    || text.starts_with('#'),
                "{name}"
            ),
            "jwt" if seed.name == "token-room" || seed.name == "token-read-only" => {
                assert!(
                    futures::executor::block_on(verifier.verify(Some(&text), targets::JWT_ROOM))
                        .is_ok(),
                    "{name}"
                )
            }
            _ => {}
        }
    }
}
