//! BENCHMARKS.md's SVG charts (plotters): latency and throughput against the offered rate of
//! the 1 x 50 sweep, one line per server, and memory per idle connection, one bar per server.
use std::path::Path;

use plotters::prelude::*;

use super::report::{label, servers, Measurement, ReportError};

const SIZE: (u32, u32) = (900, 520);
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// One server's line: its name and its (x, y) points.
type Line = (String, Vec<(f64, f64)>);

fn chart_error(path: &Path) -> impl Fn(String) -> ReportError + '_ {
    move |e| ReportError::Chart(path.display().to_string(), e)
}

/// Each server's sweep as (offered rate, value) points, rate ascending.
fn sweep_lines(results: &[Measurement], value: impl Fn(&super::BenchReport) -> f64) -> Vec<Line> {
    servers(results)
        .into_iter()
        .map(|server| {
            let mut points: Vec<(f64, f64)> = results
                .iter()
                .filter(|m| m.server == server && m.shape == "sweep")
                .map(|m| (m.report.offered_rate, value(&m.report)))
                .filter(|(x, y)| *x > 0.0 && *y > 0.0)
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (server, points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect()
}

/// A log-log line chart of `lines`.
fn log_lines(
    path: &Path,
    caption: &str,
    y_desc: &str,
    lines: &[Line],
    dashed_second: Option<&[Line]>,
) -> Result<(), ReportError> {
    let err = chart_error(path);
    let all = lines
        .iter()
        .chain(dashed_second.into_iter().flatten())
        .flat_map(|(_, p)| p.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x0 * 0.8..x1 * 1.25).log_scale(),
            (y0 * 0.7..y1 * 1.5).log_scale(),
        )
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("offered edits per second (all clients)")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, (server, points)) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let name = match dashed_second {
            Some(_) => format!("{} p50", label(server)),
            None => label(server).to_string(),
        };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    for (i, (server, points)) in dashed_second.into_iter().flatten().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(DashedLineSeries::new(
                points.iter().copied(),
                6,
                4,
                colour.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(format!("{} p99", label(server)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// p50 (solid) and p99 (dashed) latency against the offered rate.
pub fn latency(results: &[Measurement], path: &Path) -> Result<(), ReportError> {
    let p50 = sweep_lines(results, |r| r.latency_ms.p50);
    let p99 = sweep_lines(results, |r| r.latency_ms.p99);
    log_lines(
        path,
        "Send-to-receipt latency, 1 room x 50 clients",
        "milliseconds",
        &p50,
        Some(&p99),
    )
}

/// Receipts per second against the offered rate (ideal: 49 x the rate).
pub fn throughput(results: &[Measurement], path: &Path) -> Result<(), ReportError> {
    let lines = sweep_lines(results, |r| r.delivered_per_sec);
    log_lines(
        path,
        "Edits delivered per second, 1 room x 50 clients",
        "receipts per second",
        &lines,
        None,
    )
}

/// One bar per server: RSS per idle connection.
pub fn memory(results: &[Measurement], path: &Path) -> Result<(), ReportError> {
    let err = chart_error(path);
    let bars: Vec<(String, f64)> = servers(results)
        .into_iter()
        .filter_map(|server| {
            let kb = results
                .iter()
                .find(|m| m.server == server && m.shape == "idle")
                .and_then(|m| m.report.server.as_ref())
                .map(|s| s.rss_per_connection_bytes as f64 / 1e3)?;
            Some((server, kb))
        })
        .collect();
    let top = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max) * 1.2;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Server memory per idle connection", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(|e| err(e.to_string()))?;
    let names: Vec<String> = bars.iter().map(|(s, _)| label(s).to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let slot = x - x.floor();
            if (slot - 0.5).abs() < 0.01 {
                names.get(x.floor() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("KB of RSS per connection")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, kb))| {
            let colour = COLOURS[i % COLOURS.len()];
            Rectangle::new(
                [(i as f64 + 0.2, 0.0), (i as f64 + 0.8, *kb)],
                colour.filled(),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, kb))| {
            Text::new(
                format!("{kb:.1} KB"),
                (i as f64 + 0.35, kb + top * 0.03),
                ("sans-serif", 16),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}
