//! `ylambda-fuzz`: the mutation driver and corpus tools (no AFL++ needed).
//!
//! ```text
//! ylambda-fuzz list
//! ylambda-fuzz seeds DIR                     write the seed corpus to DIR/<target>/
//! ylambda-fuzz run TARGET [--seconds N | --execs N] [--corpus DIR] [--crashes DIR] [--seed N]
//! ylambda-fuzz replay TARGET PATH...         run files (or every file of directories) once
//! ```
//!
//! `run` and `replay` exit with status 1 if an input's panic escaped the target.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ylambda_fuzz::mutate::{self, Budget};
use ylambda_fuzz::targets::{self, Target};
use ylambda_fuzz::{panics, seeds};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ylambda-fuzz: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let (command, rest) = args
        .split_first()
        .ok_or("usage: ylambda-fuzz list|seeds|run|replay")?;
    match command.as_str() {
        "list" => {
            for target in targets::TARGETS {
                println!("{}", target.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        "seeds" => {
            let dir = PathBuf::from(rest.first().ok_or("seeds DIR")?);
            for seed in seeds::all() {
                let path = dir.join(seed.target).join(&seed.name);
                std::fs::create_dir_all(path.parent().expect("a parent"))
                    .and_then(|()| std::fs::write(&path, &seed.bytes))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        "run" => fuzz(rest),
        "replay" => replay(rest),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn target(name: Option<&String>) -> Result<&'static Target, String> {
    let name = name.ok_or("a target name (see `ylambda-fuzz list`)")?;
    targets::find(name).ok_or_else(|| format!("no target {name:?} (see `ylambda-fuzz list`)"))
}

fn fuzz(args: &[String]) -> Result<ExitCode, String> {
    let target = target(args.first())?;
    let mut budget = Budget::Time(Duration::from_secs(15));
    let mut corpus_dir = None;
    let mut crashes_dir = None;
    let mut seed = 0x5eed_u64;
    let mut options = args[1..].iter();
    while let Some(option) = options.next() {
        let mut value = || options.next().ok_or(format!("{option} needs a value"));
        let number = |v: &String| v.parse::<u64>().map_err(|e| format!("{option} {v}: {e}"));
        match option.as_str() {
            "--seconds" => budget = Budget::Time(Duration::from_secs(number(value()?)?)),
            "--execs" => budget = Budget::Executions(number(value()?)?),
            "--corpus" => corpus_dir = Some(PathBuf::from(value()?)),
            "--crashes" => crashes_dir = Some(PathBuf::from(value()?)),
            "--seed" => seed = number(value()?)?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let corpus = match &corpus_dir {
        Some(dir) => read_inputs(std::slice::from_ref(dir))?,
        None => seeds::all()
            .into_iter()
            .filter(|s| s.target == target.name)
            .map(|s| s.bytes)
            .collect(),
    };
    let report = mutate::run(target, &corpus, budget, seed);
    let secs = report.elapsed.as_secs_f64();
    println!(
        "target={} execs={} seconds={secs:.1} execs_per_sec={:.0} corpus={} caught_panics={} crashes={}",
        target.name,
        report.executions,
        report.executions as f64 / secs.max(1e-9),
        corpus.len(),
        report.caught_panics,
        report.crashes.len()
    );
    for (i, crash) in report.crashes.iter().enumerate() {
        println!("crash {i}: {}", crash.message);
        if let Some(dir) = &crashes_dir {
            let path = dir.join(target.name).join(format!("crash-{seed}-{i}"));
            std::fs::create_dir_all(path.parent().expect("a parent"))
                .and_then(|()| std::fs::write(&path, &crash.input))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            println!("  input saved to {}", path.display());
        }
    }
    Ok(if report.crashes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn replay(args: &[String]) -> Result<ExitCode, String> {
    let target = target(args.first())?;
    let paths: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
    let files = list_files(&paths)?;
    panics::install_quiet_hook();
    let mut crashed = 0;
    for file in &files {
        let input = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if let Err(message) = panics::run_caught(|| (target.run)(&input)) {
            crashed += 1;
            println!("CRASH {}: {message}", file.display());
        }
    }
    println!(
        "target={} replayed={} crashes={crashed}",
        target.name,
        files.len()
    );
    Ok(if crashed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut inner: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && !is_hidden(p))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n == "README.txt")
}

fn read_inputs(dirs: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    list_files(dirs)?
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| format!("{}: {e}", f.display())))
        .collect()
}
