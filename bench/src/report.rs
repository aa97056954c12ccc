//! Turns result lines into the comparison: medians per scenario and broker,
//! moth's ratios to Mosquitto and rumqttd, as a terminal table, Markdown and
//! an SVG chart (drawn by hand: no plotting dependency for one picture).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::unit;

const BROKERS: [&str; 3] = ["moth", "mosquitto", "rumqttd"];
/// Rows in table order; the `-v5` rows are the same scenarios with MQTT 5
/// clients, each beside its 3.1.1 row. `-persistent`: every client has a
/// persistent session, brokers in memory; `-disk-batch` and `-disk-always`:
/// the same against moth with persistence (`sync: batch`, `always`) and
/// Mosquitto with `persistence true` (rumqttd has none).
const ORDER: [&str; 42] = [
    "fanin-qos0",
    "fanin-qos0-v5",
    "fanin-qos1",
    "fanin-qos1-v5",
    "fanout-qos0",
    "fanout-qos0-v5",
    "fanout-qos1",
    "fanout-qos1-v5",
    "pairs-qos1",
    "pairs-qos1-v5",
    "fanin-qos0-cpu",
    "fanin-qos0-v5-cpu",
    "fanin-qos1-cpu",
    "fanin-qos1-v5-cpu",
    "fanout-qos0-cpu",
    "fanout-qos0-v5-cpu",
    "fanout-qos1-cpu",
    "fanout-qos1-v5-cpu",
    "pairs-qos1-cpu",
    "pairs-qos1-v5-cpu",
    "fanin-qos1-persistent",
    "fanin-qos1-disk-batch",
    "fanin-qos1-disk-always",
    "pairs-qos1-persistent",
    "pairs-qos1-disk-batch",
    "pairs-qos1-disk-always",
    "latency",
    "latency-v5",
    "latency-p999",
    "latency-v5-p999",
    "latency-cpu",
    "latency-v5-cpu",
    "connect",
    "connect-cpu",
    "idle",
    "idle-v5",
    "connect-auth",
    "connect-auth-http",
    "connect-auth-http-warm",
    "restart",
    "restart-rss",
    "restart-store",
];

#[derive(Default)]
struct Cell {
    values: Vec<f64>,
    gen_cpu: Vec<f64>,
    broker_cpu: Vec<f64>,
    errors: Vec<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One `key=value` of a result line's extras (`a=1;b=2`).
fn extra(extras: &str, key: &str) -> Option<f64> {
    extras.split(';').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// CPU microseconds per event from a CPU share (percent of one core) over
/// `secs` and the number of events.
fn cpu_us_per(cpu_pct: f64, secs: f64, events: f64) -> f64 {
    cpu_pct / 100.0 * secs * 1e6 / events
}

/// moth relative to another broker, "better" > 1 whichever the direction.
fn advantage(moth: f64, other: f64, higher_better: bool) -> f64 {
    if higher_better { moth / other } else { other / moth }
}

/// Rows of their own, derived from a scenario's line (`scenario`, the
/// broker's CPU share, the messages received, the extras): the latency
/// scenario's p99.9, and the broker's CPU per message, delivery or CONNECT
/// (what the broker spends, which a rate shared with the generator on two
/// cores hides).
fn derived_rows(scenario: &str, broker_cpu: f64, received: f64, extras: &str) -> Vec<(String, f64)> {
    let secs = extra(extras, "secs").unwrap_or(f64::NAN);
    match scenario {
        s @ ("latency" | "latency-v5") => vec![
            (format!("{s}-p999"), extra(extras, "p999_us").unwrap_or(f64::NAN)),
            (format!("{s}-cpu"), cpu_us_per(broker_cpu, secs, received)),
        ],
        "connect" => vec![("connect-cpu".to_string(), cpu_us_per(broker_cpu, secs, received))],
        "connect-auth-http" => {
            vec![("connect-auth-http-warm".to_string(), extra(extras, "second_s").unwrap_or(f64::NAN))]
        }
        // What the broker spends per message delivered, over the whole
        // run: the v5 rows against their 3.1.1 rows, whatever share of the
        // two cores the generator took.
        s if ["fanin", "fanout", "pairs"].iter().any(|p| s.starts_with(p)) => {
            let wall = extra(extras, "wall").unwrap_or(f64::NAN);
            vec![(format!("{s}-cpu"), 1000.0 * cpu_us_per(broker_cpu, wall, received))]
        }
        "restart" => vec![
            ("restart-rss".to_string(), extra(extras, "rss_mb").unwrap_or(f64::NAN)),
            ("restart-store".to_string(), extra(extras, "store_mb").unwrap_or(f64::NAN)),
        ],
        _ => vec![],
    }
}

pub fn report(input: &Path, markdown: Option<&Path>, svg: Option<&Path>) -> std::io::Result<()> {
    let text = std::fs::read_to_string(input)?;
    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            continue;
        }
        let cell = cells.entry((f[1].to_string(), f[0].to_string())).or_default();
        cell.values.push(f[2].parse().unwrap_or(f64::NAN));
        cell.gen_cpu.push(f[5].parse().unwrap_or(f64::NAN));
        cell.broker_cpu.push(f[6].parse().unwrap_or(f64::NAN));
        if f[7] != "-" {
            cell.errors.push(f[7].to_string());
        }
        let broker_cpu: f64 = f[6].parse().unwrap_or(f64::NAN);
        let derived = derived_rows(f[1], broker_cpu, f[4].parse().unwrap_or(f64::NAN), f.get(8).copied().unwrap_or(""));
        for (row, value) in derived {
            let cell = cells.entry((row, f[0].to_string())).or_default();
            cell.values.push(value);
            cell.gen_cpu.push(f[5].parse().unwrap_or(f64::NAN));
            cell.broker_cpu.push(broker_cpu);
        }
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| scenario | unit | moth | Mosquitto | rumqttd | moth vs Mosquitto | moth vs rumqttd | generator CPU % (moth run) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for scenario in ORDER {
        let (unit, higher) = unit(scenario);
        let med: Vec<f64> = BROKERS
            .iter()
            .map(|b| cells.get(&(scenario.to_string(), b.to_string())).map_or(f64::NAN, |c| median(&c.values)))
            .collect();
        if med.iter().all(|v| !v.is_finite()) {
            continue;
        }
        let gen_cpu = cells.get(&(scenario.to_string(), "moth".to_string())).map_or(f64::NAN, |c| median(&c.gen_cpu));
        let ratio = |other: f64| {
            let r = advantage(med[0], other, higher);
            if r.is_finite() { format!("{r:.2}x") } else { "—".into() }
        };
        let _ = writeln!(
            md,
            "| {scenario} | {unit} | {} | {} | {} | {} | {} | {} |",
            fmt_value(med[0]),
            fmt_value(med[1]),
            fmt_value(med[2]),
            ratio(med[1]),
            ratio(med[2]),
            fmt_value(gen_cpu)
        );
        rows.push((scenario, unit, higher, med));
    }
    let mut notes = String::new();
    for ((scenario, broker), cell) in &cells {
        if !cell.errors.is_empty() {
            let _ = writeln!(notes, "- {broker} {scenario}: {}", cell.errors.join("; "));
        }
    }
    if !notes.is_empty() {
        md.push_str("\nRuns whose counts did not add up (not used as figures where the rate is NaN):\n\n");
        md.push_str(&notes);
    }
    md.push_str("\nRatios are moth's advantage (>1 means moth is better, for latency and memory too).\n");
    print!("{md}");
    if let Some(path) = markdown {
        std::fs::write(path, &md)?;
    }
    if let Some(path) = svg {
        std::fs::write(path, chart(&rows))?;
    }
    Ok(())
}

fn chart(rows: &[(&str, &str, bool, Vec<f64>)]) -> String {
    const COLORS: [&str; 3] = ["#d9822b", "#4a78b0", "#6a9a4a"];
    // The unit under each scenario name runs to about 40 characters.
    let (left, bar_h, gap, width) = (250.0, 14.0, 16.0, 420.0);
    let group_h = bar_h * 3.0 + gap;
    let height = 60.0 + group_h * rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="11">"#,
        left + width + 90.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">moth vs Mosquitto vs rumqttd (medians; bar length relative to the best in each row)</text>"#
    );
    for (i, b) in BROKERS.iter().enumerate() {
        let x = 10.0 + i as f64 * 110.0;
        let _ = writeln!(s, r#"<rect x="{x}" y="28" width="10" height="10" fill="{}"/>"#, COLORS[i]);
        let _ = writeln!(s, r#"<text x="{}" y="37">{b}</text>"#, x + 14.0);
    }
    for (r, (scenario, unit, higher, med)) in rows.iter().enumerate() {
        let y0 = 50.0 + r as f64 * group_h;
        let best = med
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(if *higher { 0.0 } else { f64::INFINITY }, |a, b| if *higher { a.max(b) } else { a.min(b) });
        let _ = writeln!(s, r#"<text x="10" y="{}">{scenario}</text>"#, y0 + bar_h);
        let _ = writeln!(s, r##"<text x="10" y="{}" fill="#666">{unit}</text>"##, y0 + bar_h * 2.0);
        for (i, v) in med.iter().enumerate() {
            let y = y0 + i as f64 * bar_h;
            let rel = if !v.is_finite() || *v <= 0.0 {
                0.0
            } else if *higher {
                v / best
            } else {
                best / v
            };
            let w = (rel * width).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{y}" width="{w:.1}" height="{}" fill="{}"/>"#,
                bar_h - 2.0,
                COLORS[i]
            );
            let _ = writeln!(s, r#"<text x="{:.1}" y="{}">{}</text>"#, left + w + 4.0, y + bar_h - 4.0, fmt_value(*v));
        }
    }
    s.push_str("</svg>\n");
    s
}
