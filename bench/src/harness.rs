//! Timing: warm-up, repetitions in interleaved rounds (every engine once per round, the
//! starting engine rotating) so that machine noise hits all engines alike, median and
//! interquartile range. Every run's result is checked.

use crate::engines::{self, Compiler, Engine, Runner};
use crate::programs::Program;

/// Median and quartiles of a sample, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub samples: usize,
}

impl Stats {
    /// `None` for an empty sample.
    pub fn of(mut sample: Vec<f64>) -> Option<Stats> {
        if sample.is_empty() {
            return None;
        }
        sample.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (sample.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sample[lo] + (sample[hi] - sample[lo]) * (pos - lo as f64)
        };
        Some(Stats { median: at(0.5), q1: at(0.25), q3: at(0.75), samples: sample.len() })
    }

    /// The interquartile range as a percentage of the median.
    pub fn iqr_percent(&self) -> f64 {
        if self.median > 0.0 { 100.0 * (self.q3 - self.q1) / self.median } else { 0.0 }
    }
}

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub warmup_rounds: usize,
    pub run_rounds: usize,
    pub compile_rounds: usize,
}

impl Settings {
    /// About ten seconds for the whole suite on the development machine.
    pub const FULL: Settings = Settings { warmup_rounds: 5, run_rounds: 101, compile_rounds: 201 };
    pub const QUICK: Settings = Settings { warmup_rounds: 1, run_rounds: 5, compile_rounds: 11 };
}

/// A measurement, or why the engine could not take part.
pub type Measured = Result<Stats, String>;

/// Everything measured for one program.
pub struct ProgramReport {
    pub name: String,
    pub about: String,
    pub slots: usize,
    /// r0, the same in every engine that ran the program.
    pub result: u64,
    pub compile: Vec<(Compiler, Measured)>,
    pub run: Vec<(Engine, Measured)>,
}

impl ProgramReport {
    pub fn run_of(&self, engine: Engine) -> Option<&Stats> {
        self.run.iter().find(|(e, _)| *e == engine).and_then(|(_, m)| m.as_ref().ok())
    }

    pub fn compile_of(&self, compiler: Compiler) -> Option<&Stats> {
        self.compile.iter().find(|(c, _)| *c == compiler).and_then(|(_, m)| m.as_ref().ok())
    }

    /// Median run time of `a` over that of `b`.
    pub fn run_ratio(&self, a: Engine, b: Engine) -> Option<f64> {
        Some(self.run_of(a)?.median / self.run_of(b)?.median)
    }

    pub fn compile_ratio(&self, a: Compiler, b: Compiler) -> Option<f64> {
        Some(self.compile_of(a)?.median / self.compile_of(b)?.median)
    }
}

/// The engines' results disagree (or an engine that accepted the program failed to run it).
#[derive(Debug)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// r0 of one run, checked against the reference result.
fn checked_run(
    program: &Program,
    engine: Engine,
    runner: &mut dyn Runner,
    expected: u64,
) -> Result<std::time::Duration, Mismatch> {
    match runner.run(&program.input) {
        (Ok(r0), elapsed) if r0 == expected => Ok(elapsed),
        (Ok(r0), _) => Err(Mismatch(format!(
            "{}: {} returned {r0:#x}, the reference returned {expected:#x}",
            program.name,
            engine.name()
        ))),
        (Err(e), _) => Err(Mismatch(format!("{}: {} failed to run it: {e}", program.name, engine.name()))),
    }
}

/// Runs `program` once in every engine that accepts it and checks that they agree: the
/// reference is native C where there is a C source, else tessera's interpreter. Returns
/// the prepared runners (or the rejection reasons) and the agreed result.
#[allow(clippy::type_complexity)]
pub fn prepare_and_check<'p>(
    program: &'p Program,
    engines: &[Engine],
) -> Result<(Vec<(Engine, Result<Box<dyn Runner + 'p>, String>)>, u64), Mismatch> {
    let mut runners: Vec<_> = engines.iter().map(|&e| (e, engines::prepare(e, program))).collect();
    let reference = if program.native.is_some() { Engine::Native } else { Engine::TesseraRefInterp };
    let expected = match runners.iter_mut().find(|(e, _)| *e == reference) {
        Some((_, Ok(runner))) => match runner.run(&program.input).0 {
            Ok(r0) => r0,
            Err(e) => return Err(Mismatch(format!("{}: reference {} failed: {e}", program.name, reference.name()))),
        },
        Some((_, Err(e))) => {
            return Err(Mismatch(format!("{}: reference {} rejects it: {e}", program.name, reference.name())));
        }
        None => return Err(Mismatch(format!("{}: reference engine {} not selected", program.name, reference.name()))),
    };
    // rbpf's JIT code has no bounds checks: it runs only after the checked engines agreed.
    let unchecked_last = |e: &Engine| *e == Engine::RbpfJit;
    for last in [false, true] {
        for (engine, runner) in &mut runners {
            if let Ok(runner) = runner
                && unchecked_last(engine) == last
            {
                checked_run(program, *engine, runner.as_mut(), expected)?;
            }
        }
    }
    Ok((runners, expected))
}

/// Measures compile and run times of `program` in every engine.
pub fn measure(program: &Program, settings: &Settings) -> Result<ProgramReport, Mismatch> {
    // Compilation first, in rounds over the compilers.
    let mut scratch = vec![0u8; 16 << 20];
    let mut compile: Vec<(Compiler, Result<Vec<f64>, String>)> = Compiler::ALL
        .iter()
        .map(|&c| (c, engines::compile_once(c, program, &mut scratch).map(|_| Vec::new())))
        .collect();
    for round in 0..settings.warmup_rounds + settings.compile_rounds {
        let n = compile.len();
        for i in 0..n {
            let (compiler, samples) = &mut compile[(round + i) % n];
            if let Ok(samples) = samples {
                match engines::compile_once(*compiler, program, &mut scratch) {
                    Ok(ns) if round >= settings.warmup_rounds => samples.push(ns as f64),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Mismatch(format!("{}: {} failed on a repeat: {e}", program.name, compiler.name())));
                    }
                }
            }
        }
    }

    let (mut runners, result) = prepare_and_check(program, &Engine::ALL)?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    for round in 0..settings.warmup_rounds + settings.run_rounds {
        let n = runners.len();
        for i in 0..n {
            let k = (round + i) % n;
            let (engine, runner) = &mut runners[k];
            if let Ok(runner) = runner {
                let elapsed = checked_run(program, *engine, runner.as_mut(), result)?;
                if round >= settings.warmup_rounds {
                    samples[k].push(elapsed.as_nanos() as f64);
                }
            }
        }
    }

    let stats = |s: Vec<f64>| Stats::of(s).ok_or_else(|| "no samples".to_string());
    Ok(ProgramReport {
        name: program.name.clone(),
        about: program.about.clone(),
        slots: program.slots(),
        result,
        compile: compile.into_iter().map(|(c, s)| (c, s.and_then(stats))).collect(),
        run: runners.into_iter().zip(samples).map(|((e, r), s)| (e, r.and_then(|_| stats(s)))).collect(),
    })
}

/// Geometric mean of the values, with how many there were (`None` when there are none).
pub fn geomean(values: impl IntoIterator<Item = f64>) -> Option<(f64, usize)> {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (n > 0).then(|| ((sum / n as f64).exp(), n))
}
