//! The printed tables, `results.csv` and the SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::engines::{Compiler, Engine};
use crate::harness::{ProgramReport, Stats, geomean};

/// The ratios reported per program and as geometric means: (numerator, denominator).
/// `tessera-interp` is the fast interpreter; `tessera-refint` the reference one.
pub const RUN_RATIOS: [(Engine, Engine); 8] = [
    (Engine::TesseraJit, Engine::RbpfJit),
    (Engine::TesseraJit, Engine::SbpfJit),
    (Engine::TesseraInterp, Engine::SbpfInterp),
    (Engine::TesseraInterp, Engine::RbpfInterp),
    (Engine::TesseraRefInterp, Engine::SbpfInterp),
    (Engine::TesseraInterp, Engine::TesseraRefInterp),
    (Engine::TesseraJit, Engine::TesseraInterp),
    (Engine::RbpfJit, Engine::SbpfJit),
];
pub const COMPILE_RATIOS: [(Compiler, Compiler); 4] = [
    (Compiler::RbpfJit, Compiler::TesseraJit),
    (Compiler::SbpfJit, Compiler::TesseraJit),
    (Compiler::TesseraJit, Compiler::TesseraEmit),
    (Compiler::TesseraDecode, Compiler::TesseraJit),
];

/// Engines compared with native C.
const VS_NATIVE: &[Engine] = match Engine::ALL.split_first() {
    Some((Engine::Native, rest)) => rest,
    _ => panic!("Engine::ALL starts with Native"),
};

/// Microseconds with three significant digits.
fn micros(ns: f64) -> String {
    let us = ns / 1e3;
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}"),
        Some(r) if r >= 10.0 => format!("{r:.1}"),
        Some(r) => format!("{r:.2}"),
        None => "-".into(),
    }
}

fn cell(stats: Option<&Stats>) -> String {
    match stats {
        Some(s) => format!("{} ±{:.0}%", micros(s.median), s.iqr_percent() / 2.0),
        None => "-".into(),
    }
}

/// The three tables (compile, run, ratios), the rejections, and the geometric means.
pub fn render_tables(reports: &[ProgramReport]) -> String {
    let mut out = String::new();
    let w = reports.iter().map(|r| r.name.len()).max().unwrap_or(7).max(7);

    let _ = writeln!(
        out,
        "\ncompile: bytecode to runnable code, validation included (µs per program, ns per instruction slot;\n\
         median ±half the interquartile range). One compilation is:"
    );
    for c in Compiler::ALL {
        let _ = writeln!(out, "  {:13} {}", c.name(), c.includes());
    }
    let _ = write!(out, "{:w$} {:>6}", "program", "slots");
    for c in Compiler::ALL {
        let _ = write!(out, " | {:>20}", format!("{} µs  ns/insn", c.name()));
    }
    for (a, b) in COMPILE_RATIOS {
        let _ = write!(out, " | {:>9}", format!("{}/{}", short(a.name()), short(b.name())));
    }
    out.push('\n');
    for r in reports {
        let _ = write!(out, "{:w$} {:>6}", r.name, r.slots);
        for c in Compiler::ALL {
            let text = match r.compile_of(c) {
                Some(s) => format!("{} {:>7.1}", cell(Some(s)), s.median / r.slots as f64),
                None => "-".into(),
            };
            let _ = write!(out, " | {text:>20}");
        }
        for (a, b) in COMPILE_RATIOS {
            let _ = write!(out, " | {:>9}", ratio(r.compile_ratio(a, b)));
        }
        out.push('\n');
    }

    let _ = writeln!(out, "\nrun time (µs per run, median ±half the interquartile range)");
    let _ = write!(out, "{:w$}", "program");
    for e in Engine::ALL {
        let _ = write!(out, " | {:>14}", e.name());
    }
    let _ = writeln!(out, " | result");
    for r in reports {
        let _ = write!(out, "{:w$}", r.name);
        for e in Engine::ALL {
            let _ = write!(out, " | {:>14}", cell(r.run_of(e)));
        }
        let _ = writeln!(out, " | {:#018x}", r.result);
    }

    let _ = writeln!(out, "\nrun-time ratios (× native, then engine/engine)");
    let _ = write!(out, "{:w$}", "program");
    for &e in VS_NATIVE {
        let _ = write!(out, " | {:>9}", short(e.name()));
    }
    for (a, b) in RUN_RATIOS {
        let _ = write!(out, " | {:>9}", format!("{}/{}", short(a.name()), short(b.name())));
    }
    out.push('\n');
    for r in reports {
        let _ = write!(out, "{:w$}", r.name);
        for &e in VS_NATIVE {
            let _ = write!(out, " | {:>9}", ratio(r.run_ratio(e, Engine::Native)));
        }
        for (a, b) in RUN_RATIOS {
            let _ = write!(out, " | {:>9}", ratio(r.run_ratio(a, b)));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "(names: t = tessera, r = rbpf, s = sbpf; -jit/-int = JIT/interpreter; -emit = compile_into;\n\
         t-int = tessera's fast interpreter, t-refint = its reference interpreter)"
    );

    // Why an engine did not take part, once per program and reason.
    let mut rejected: Vec<(String, Vec<String>, String)> = Vec::new();
    for r in reports {
        let failures = r
            .compile
            .iter()
            .map(|(c, m)| (format!("{} compile", c.name()), m))
            .chain(r.run.iter().map(|(e, m)| (format!("{} run", e.name()), m)));
        for (what, m) in failures {
            if let Err(why) = m {
                match rejected.iter_mut().find(|(p, _, w)| *p == r.name && w == why) {
                    Some((_, whats, _)) => whats.push(what),
                    None => rejected.push((r.name.clone(), vec![what], why.clone())),
                }
            }
        }
    }
    if !rejected.is_empty() {
        let _ = writeln!(out, "\nnot measured:");
        for (program, whats, why) in rejected {
            let _ = writeln!(out, "  {program}: {}: {why}", whats.join(", "));
        }
    }

    let _ = writeln!(out, "\ngeometric means over the programs where both were measured:");
    for &e in VS_NATIVE {
        line(
            &mut out,
            &format!("run {}/native", e.name()),
            reports.iter().filter_map(|r| r.run_ratio(e, Engine::Native)),
        );
    }
    for (a, b) in RUN_RATIOS {
        line(&mut out, &format!("run {}/{}", a.name(), b.name()), reports.iter().filter_map(|r| r.run_ratio(a, b)));
    }
    for (a, b) in COMPILE_RATIOS {
        line(
            &mut out,
            &format!("compile {}/{}", a.name(), b.name()),
            reports.iter().filter_map(|r| r.compile_ratio(a, b)),
        );
    }
    for c in Compiler::ALL {
        line(
            &mut out,
            &format!("compile {} ns per instruction", c.name()),
            reports.iter().filter_map(|r| Some(r.compile_of(c)?.median / r.slots as f64)),
        );
    }
    out
}

/// The three closing lines, and which interpreter the last one measures.
pub fn render_summary(reports: &[ProgramReport]) -> String {
    let mut out = String::new();
    let summary = [
        (
            "compile rbpf-jit/tessera-jit",
            geomean(reports.iter().filter_map(|r| r.compile_ratio(Compiler::RbpfJit, Compiler::TesseraJit))),
        ),
        (
            "run tessera-jit/rbpf-jit",
            geomean(reports.iter().filter_map(|r| r.run_ratio(Engine::TesseraJit, Engine::RbpfJit))),
        ),
        (
            "run tessera-interp/sbpf-interp",
            geomean(reports.iter().filter_map(|r| r.run_ratio(Engine::TesseraInterp, Engine::SbpfInterp))),
        ),
    ];
    for (name, g) in summary {
        let value = g.map(|(g, _)| format!("{g:.3}")).unwrap_or_else(|| "n/a".into());
        let _ = writeln!(out, "geomean {name} = {value}");
    }
    let _ = writeln!(out, "(tessera-interp is the fast interpreter; the reference interpreter is tessera-refint)");
    out
}

fn short(name: &str) -> String {
    name.replace("tessera", "t").replace("rbpf", "r").replace("sbpf", "s").replace("interp", "int")
}

fn line(out: &mut String, what: &str, values: impl Iterator<Item = f64>) {
    match geomean(values) {
        Some((g, n)) => {
            let _ = writeln!(out, "  {what:<44} {:>9} ({n} programs)", ratio(Some(g)));
        }
        None => {
            let _ = writeln!(out, "  {what:<44} {:>9}", "n/a");
        }
    }
}

/// One row per (program, engine or compiler, measure).
pub fn write_csv(path: &Path, reports: &[ProgramReport]) -> std::io::Result<()> {
    let mut csv =
        String::from("program,slots,engine,measure,median_ns,q1_ns,q3_ns,samples,ns_per_slot,x_native,status\n");
    let mut row =
        |r: &ProgramReport, engine: &str, measure: &str, m: &Result<Stats, String>, x_native: Option<f64>| match m {
            Ok(s) => {
                let _ = writeln!(
                    csv,
                    "{},{},{engine},{measure},{:.0},{:.0},{:.0},{},{:.2},{},ok",
                    r.name,
                    r.slots,
                    s.median,
                    s.q1,
                    s.q3,
                    s.samples,
                    s.median / r.slots as f64,
                    x_native.map(|x| format!("{x:.3}")).unwrap_or_default()
                );
            }
            Err(why) => {
                let _ = writeln!(csv, "{},{},{engine},{measure},,,,0,,,\"{}\"", r.name, r.slots, why.replace('"', "'"));
            }
        };
    for r in reports {
        for (c, m) in &r.compile {
            row(r, c.name(), "compile", m, None);
        }
        for (e, m) in &r.run {
            row(r, e.name(), "run", m, r.run_ratio(*e, Engine::Native));
        }
    }
    std::fs::write(path, csv)
}

/// Two panels: run time as a multiple of native per C program and engine, and compile
/// time per instruction per program and compiler (both log scale).
pub fn write_svg(path: &Path, reports: &[ProgramReport]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(500);

    let native: Vec<&ProgramReport> = reports.iter().filter(|r| r.run_of(Engine::Native).is_some()).collect();
    let bars: Vec<Vec<Option<f64>>> =
        native.iter().map(|r| VS_NATIVE.iter().map(|&e| r.run_ratio(e, Engine::Native)).collect()).collect();
    let names: Vec<&str> = native.iter().map(|r| r.name.as_str()).collect();
    let labels: Vec<&str> = VS_NATIVE.iter().map(|e| e.name()).collect();
    let colors: Vec<RGBColor> = VS_NATIVE.iter().map(|&e| engine_color(e)).collect();
    grouped_bars(
        &top,
        "run time as a multiple of native C (log scale, lower is faster)",
        "× native",
        &names,
        &labels,
        &colors,
        &bars,
    )?;

    let compile_bars: Vec<Vec<Option<f64>>> = reports
        .iter()
        .map(|r| Compiler::ALL.iter().map(|&c| Some(r.compile_of(c)?.median / r.slots as f64)).collect())
        .collect();
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    let labels: Vec<&str> = Compiler::ALL.iter().map(|c| c.name()).collect();
    let colors: Vec<RGBColor> = Compiler::ALL
        .iter()
        .map(|c| match c {
            Compiler::TesseraJit => engine_color(Engine::TesseraJit),
            Compiler::RbpfJit => engine_color(Engine::RbpfJit),
            Compiler::SbpfJit => engine_color(Engine::SbpfJit),
            Compiler::TesseraEmit => engine_color(Engine::TesseraRefInterp),
            Compiler::TesseraDecode => engine_color(Engine::TesseraInterp),
        })
        .collect();
    grouped_bars(
        &bottom,
        "compile time per instruction, bytecode to runnable code (log scale, lower is faster; \
         tessera-emit: compile_into, not runnable)",
        "ns per instruction",
        &names,
        &labels,
        &colors,
        &compile_bars,
    )?;
    root.present()?;
    Ok(())
}

/// One hue per project, dark for the JIT, light for the interpreter.
fn engine_color(engine: Engine) -> RGBColor {
    match engine {
        Engine::TesseraJit => RGBColor(0x1f, 0x77, 0xb4),
        Engine::TesseraInterp => RGBColor(0x6b, 0xae, 0xd6),
        Engine::TesseraRefInterp => RGBColor(0xc6, 0xdb, 0xef),
        Engine::RbpfJit => RGBColor(0xd6, 0x27, 0x28),
        Engine::RbpfInterp => RGBColor(0xff, 0x98, 0x96),
        Engine::SbpfJit => RGBColor(0x2c, 0xa0, 0x2c),
        Engine::SbpfInterp => RGBColor(0x98, 0xdf, 0x8a),
        Engine::Native => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// One bar per (group, series); missing values are left out.
fn grouped_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    groups: &[&str],
    series: &[&str],
    colors: &[RGBColor],
    values: &[Vec<Option<f64>>],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let all = values.iter().flatten().flatten().copied().filter(|v| *v > 0.0);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades (labelled at powers of ten) with room below the smallest bar.
    let (lo, hi) =
        if lo <= hi { (10f64.powf((lo * 0.8).log10().floor()), 10f64.powf(hi.log10().ceil())) } else { (0.1, 10.0) };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..groups.len() as f64 - 0.5, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                groups.get(i as usize).map(|s| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()?;
    let width = 0.8 / series.len() as f64;
    for (k, name) in series.iter().enumerate() {
        let color = colors[k];
        let rects = values.iter().enumerate().filter_map(|(g, row)| {
            let v = row.get(k).copied().flatten()?;
            let x0 = g as f64 - 0.4 + k as f64 * width;
            Some(Rectangle::new([(x0, lo), (x0 + width * 0.9, v)], color.filled()))
        });
        chart
            .draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
