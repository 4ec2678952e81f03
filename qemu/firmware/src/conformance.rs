//! The conformance suite on the target: every case through the reference interpreter, the
//! fast interpreter (decoded into a caller buffer) and (with the `jit` feature) generated
//! code, each checked against the file's expectation and the fast interpreter and the JIT
//! against the reference interpreter. Prints one `N passed, M failed` line per mode, and
//! every failure with its details.

use crate::engine::{self, Error};
use crate::suite::{self, Case, Expect};

/// Context memory for one run (the suite's largest `-- mem` is 74 bytes).
type ContextBuffer = heapless::Vec<u8, 512>;

/// Which image this is, in every summary line.
const IMAGE: &str = if cfg!(feature = "heap") {
    "heap"
} else if cfg!(feature = "jit") {
    "no-heap"
} else {
    "interp-only"
};

#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn record(&mut self, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// Checks a result against the file's expectation; logs and returns false on a mismatch.
fn meets_expectation(case: &Case, mode: &str, got: &Result<u64, Error>) -> bool {
    match (case.expect, got) {
        (Expect::Error(want), Err(e)) => {
            let mut text = heapless::String::<256>::new();
            let _ = core::fmt::write(&mut text, format_args!("{e:?}"));
            if text == want {
                return true;
            }
            defmt::error!("{=str} ({=str}): expected {=str}, got {=str}", case.name, mode, want, text.as_str());
            false
        }
        (Expect::Result(want), Ok(v)) if want == *v => true,
        (Expect::Result(want), _) => {
            defmt::error!("{=str} ({=str}): expected {=u64:#x}, got {}", case.name, mode, want, got);
            false
        }
        (Expect::Error(want), Ok(v)) => {
            defmt::error!("{=str} ({=str}): expected {=str}, got {=u64:#x}", case.name, mode, want, v);
            false
        }
        (Expect::Nothing, _) => {
            defmt::error!("{=str} ({=str}): the file has no expectation; got {}", case.name, mode, got);
            false
        }
    }
}

fn context_for(case: &Case) -> Result<ContextBuffer, ()> {
    ContextBuffer::from_slice(case.memory).map_err(|()| {
        defmt::error!("{=str}: {=usize} bytes of memory exceed the buffer", case.name, case.memory.len());
    })
}

fn interpret(case: &Case, mut context: ContextBuffer) -> Result<u64, Error> {
    engine::load(case.program)?.interpret(&mut context, &mut engine::Stack::new())
}

fn interpret_fast(case: &Case, mut context: ContextBuffer) -> Result<u64, Error> {
    let loaded = engine::load(case.program)?;
    let mut slots = engine::SlotBuffer::new();
    loaded.decode(&mut slots)?.run(&mut context, &mut engine::Stack::new())
}

/// Checks a mode's result against the expectation and against the reference interpreter's.
fn meets_expectation_and_reference(
    case: &Case,
    mode: &str,
    got: &Result<u64, Error>,
    interpreted: &Result<u64, Error>,
) -> bool {
    if !meets_expectation(case, mode, got) {
        return false;
    }
    if got != interpreted {
        defmt::error!("{=str}: {=str} {} != interpreter {}", case.name, mode, got, interpreted);
        return false;
    }
    true
}

#[cfg(feature = "jit")]
fn jit(case: &Case, mut context: ContextBuffer, region: &mut engine::CodeRegion) -> Result<u64, Error> {
    let loaded = engine::load(case.program)?;
    loaded.compile(region)?.run(&mut context, &mut engine::Stack::new())
}

/// Runs the suite; returns the exit status (0 when every case passed in every mode).
pub fn run() -> u32 {
    let arch = crate::arch::ARCH;
    let total = suite::len();
    defmt::println!("conformance {=str} {=str}: {=u32} programs", arch, IMAGE, total);
    #[cfg(feature = "jit")]
    let Some(mut region) = engine::CodeRegion::take() else {
        defmt::error!("the code region was already taken");
        return 1;
    };
    #[cfg(feature = "jit")]
    defmt::println!("code region: {=usize} KiB at the linker's .jit_code", region.capacity() / 1024);

    let (mut interp_tally, mut fast_tally, mut seen) = (Tally::default(), Tally::default(), 0u32);
    #[cfg(feature = "jit")]
    let mut jit_tally = Tally::default();
    for case in suite::cases() {
        seen += 1;
        let context = context_for(&case);
        if !case.assembled {
            defmt::error!("{=str}: the host assembler rejected the program", case.name);
        }
        let Some(context) = context.ok().filter(|_| case.assembled) else {
            interp_tally.record(false);
            fast_tally.record(false);
            #[cfg(feature = "jit")]
            jit_tally.record(false);
            continue;
        };
        let interpreted = interpret(&case, context.clone());
        interp_tally.record(meets_expectation(&case, "interpreter", &interpreted));
        let fast = interpret_fast(&case, context.clone());
        fast_tally.record(meets_expectation_and_reference(&case, "fast-interpreter", &fast, &interpreted));
        #[cfg(feature = "jit")]
        {
            let compiled = jit(&case, context, &mut region);
            jit_tally.record(meets_expectation_and_reference(&case, "jit", &compiled, &interpreted));
        }
    }
    if seen != total {
        defmt::error!("the embedded suite is malformed: read {=u32} of {=u32} cases", seen, total);
        interp_tally.failed += total - seen;
        fast_tally.failed += total - seen;
    }
    for (mode, tally) in [("interpreter", &interp_tally), ("fast-interpreter", &fast_tally)] {
        defmt::println!(
            "conformance {=str} {=str} {=str}: {=u32} passed, {=u32} failed",
            arch,
            IMAGE,
            mode,
            tally.passed,
            tally.failed
        );
    }
    #[cfg(not(feature = "jit"))]
    let failed = interp_tally.failed + fast_tally.failed;
    #[cfg(feature = "jit")]
    let failed = {
        jit_tally.failed += total - seen;
        defmt::println!(
            "conformance {=str} {=str} jit: {=u32} passed, {=u32} failed",
            arch,
            IMAGE,
            jit_tally.passed,
            jit_tally.failed
        );
        interp_tally.failed + fast_tally.failed + jit_tally.failed
    };
    #[cfg(feature = "heap")]
    defmt::println!("heap: {=usize} bytes at most in use during the suite", crate::heap::peak());
    u32::from(failed != 0)
}
