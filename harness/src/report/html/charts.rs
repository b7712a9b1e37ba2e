//! The HTML report's charts: a scenario's [`Timeline`] drawn by plotters as
//! inline SVG, every chart on the same time axis, with fault windows shaded
//! and service events marked (a faint line each; labels on the top chart).
//!
//! plotters' SVG backend writes `<text>` elements and lets the browser pick
//! the font, so no font file is read or embedded.

use crate::timeline::{Bucket, EventKind, Timeline};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;
use std::error::Error;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 230;
/// The top chart is taller: it carries the event labels.
const TOP_HEIGHT: u32 = 280;
/// Rows of event labels above the data, so close events do not overwrite each other.
const LABEL_LANES: i32 = 4;
const LANE_HEIGHT: i32 = 13;
const FONT: &str = "sans-serif";

/// The fault windows' fill; the page's legend and the tests use it too.
pub(crate) const FAULT_FILL: RGBColor = RGBColor(249, 115, 22);
const FAULT_OPACITY: f64 = 0.16;

const REQUESTS: RGBColor = RGBColor(59, 130, 246);
const ERRORS: RGBColor = RGBColor(220, 38, 38);
const CLIENT_ERRORS: RGBColor = RGBColor(147, 51, 234);
const P50: RGBColor = RGBColor(37, 99, 235);
const P95: RGBColor = RGBColor(217, 119, 6);
const P99: RGBColor = RGBColor(220, 38, 38);
const IN_FLIGHT: RGBColor = RGBColor(13, 148, 136);
const VERSIONS: [RGBColor; 6] = [
    RGBColor(37, 99, 235),
    RGBColor(22, 163, 74),
    RGBColor(147, 51, 234),
    RGBColor(234, 88, 12),
    RGBColor(8, 145, 178),
    RGBColor(219, 39, 119),
];
const GRID: RGBColor = RGBColor(229, 231, 235);
const AXIS: RGBColor = RGBColor(107, 114, 128);

/// One chart, ready for the page.
#[derive(Debug, Serialize)]
pub(crate) struct Chart {
    /// Stable name for the page and its tests: `throughput`, `latency`, `in-flight`, `versions`, `alerts`.
    pub name: &'static str,
    pub title: String,
    /// The SVG document, or empty when drawing failed (then `error` says why).
    pub svg: String,
    /// Data points drawn, over all series.
    pub points: usize,
    pub legend: Vec<LegendItem>,
    pub error: Option<String>,
}

/// A legend entry, drawn by the page (HTML) rather than inside the SVG.
#[derive(Debug, Serialize)]
pub(crate) struct LegendItem {
    pub label: String,
    /// CSS colour, `#rrggbb`.
    pub color: String,
    /// `line`, `area` or `band`: how the swatch is drawn.
    pub kind: &'static str,
}

enum Shape {
    /// Filled from 0 up to the points.
    Area,
    /// A line with a dot on each point; `None` values break it.
    Line,
}

struct Series {
    label: String,
    color: RGBColor,
    shape: Shape,
    points: Vec<(f64, Option<f64>)>,
}

struct Spec {
    name: &'static str,
    title: String,
    y_desc: &'static str,
    /// Fixed top of the y axis (a percentage); otherwise from the data.
    y_max: Option<f64>,
    series: Vec<Series>,
    /// Whether to write the event labels (the top chart does).
    label_events: bool,
}

/// The charts of one scenario, top to bottom.
pub(crate) fn scenario_charts(timeline: &Timeline) -> Vec<Chart> {
    let mut specs = vec![throughput(timeline), latency(timeline), in_flight(timeline)];
    if timeline.has_several_versions() {
        specs.push(versions(timeline));
    }
    if !timeline.alerts.is_empty() {
        specs.push(alerts(timeline));
    }
    specs.into_iter().map(|spec| draw(timeline, spec)).collect()
}

/// Where a bucket's value is drawn: its middle.
fn mid(bucket: &Bucket) -> f64 {
    (bucket.start + bucket.end) as f64 / 2e6
}

fn series(label: &str, color: RGBColor, shape: Shape, points: Vec<(f64, Option<f64>)>) -> Series {
    Series {
        label: label.to_string(),
        color,
        shape,
        points,
    }
}

fn throughput(t: &Timeline) -> Spec {
    let per_bucket = |f: fn(&Bucket) -> f64| t.buckets.iter().map(|b| (mid(b), Some(f(b)))).collect();
    let mut all = vec![
        series("requests/s (by start)", REQUESTS, Shape::Area, per_bucket(|b| b.requests_per_s)),
        series("errors/s (transport or 5xx)", ERRORS, Shape::Area, per_bucket(|b| b.errors_per_s)),
    ];
    if t.buckets.iter().any(|b| b.client_errors > 0) {
        let seconds = t.bucket_ms as f64 / 1e3;
        let points = t
            .buckets
            .iter()
            .map(|b| (mid(b), Some(f64::from(b.client_errors) / seconds)))
            .collect();
        all.push(series("4xx/s", CLIENT_ERRORS, Shape::Line, points));
    }
    Spec {
        name: "throughput",
        title: "Requests and errors per second".to_string(),
        y_desc: "per second",
        y_max: None,
        series: all,
        label_events: true,
    }
}

fn latency(t: &Timeline) -> Spec {
    let per_bucket = |f: fn(&Bucket) -> Option<f64>| t.buckets.iter().map(|b| (mid(b), f(b))).collect();
    Spec {
        name: "latency",
        title: "Latency of the requests finished in each bucket".to_string(),
        y_desc: "ms",
        y_max: None,
        series: vec![
            series("P50", P50, Shape::Line, per_bucket(|b| b.p50_ms)),
            series("P95", P95, Shape::Line, per_bucket(|b| b.p95_ms)),
            series("P99", P99, Shape::Line, per_bucket(|b| b.p99_ms)),
        ],
        label_events: false,
    }
}

fn in_flight(t: &Timeline) -> Spec {
    // In flight is an instant's count: drawn at the bucket's start, where it was taken.
    let points = t
        .buckets
        .iter()
        .map(|b| (b.start as f64 / 1e6, Some(f64::from(b.in_flight))))
        .collect();
    Spec {
        name: "in-flight",
        title: "Requests in flight".to_string(),
        y_desc: "requests",
        y_max: None,
        series: vec![series("in flight", IN_FLIGHT, Shape::Area, points)],
        label_events: false,
    }
}

/// Stacked shares: each version's area reaches the sum of its share and
/// those of the versions before it, and the areas are drawn tallest first.
fn versions(t: &Timeline) -> Spec {
    let mut stacked = Vec::new();
    for (i, name) in t.versions.iter().enumerate().skip(1) {
        let points = t
            .buckets
            .iter()
            .map(|b| {
                let versioned: u32 = b.version_counts.iter().skip(1).sum();
                let cumulative: f64 = b.version_share.iter().take(i + 1).sum();
                (mid(b), (versioned > 0).then_some(cumulative * 100.0))
            })
            .collect();
        stacked.push(series(name, VERSIONS[(i - 1) % VERSIONS.len()], Shape::Area, points));
    }
    stacked.reverse();
    Spec {
        name: "versions",
        title: "Share of each served version".to_string(),
        y_desc: "% of requests",
        y_max: Some(100.0),
        series: stacked,
        label_events: false,
    }
}

/// The stack's own alerts (its monitoring's rule states) on the same time
/// axis as the faults, so a reader sees how long after a swap an alert fired.
fn alerts(t: &Timeline) -> Spec {
    Spec {
        name: "alerts",
        title: "Alerts the stack's monitoring reported (1 firing, 0.5 pending, 0 inactive)".into(),
        y_desc: "state",
        y_max: Some(1.0),
        series: t
            .alerts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let points = a.states.iter().map(|(at, v)| (*at as f64 / 1e6, *v)).collect();
                series(
                    &format!("{} ({})", a.alert, a.requirement),
                    VERSIONS[i % VERSIONS.len()],
                    Shape::Line,
                    points,
                )
            })
            .collect(),
        label_events: false,
    }
}

fn draw(timeline: &Timeline, spec: Spec) -> Chart {
    let mut legend: Vec<LegendItem> = spec
        .series
        .iter()
        .map(|s| LegendItem {
            label: s.label.clone(),
            color: hex(s.color),
            kind: match s.shape {
                Shape::Area => "area",
                Shape::Line => "line",
            },
        })
        .collect();
    if !timeline.windows.is_empty() {
        legend.push(LegendItem {
            label: "fault window".to_string(),
            color: hex(FAULT_FILL),
            kind: "band",
        });
    }
    let points = spec
        .series
        .iter()
        .map(|s| s.points.iter().filter(|(_, y)| y.is_some()).count())
        .sum();
    let (svg, error) = match render_svg(timeline, &spec) {
        // Names the chart for the page's tests and for screen readers.
        Ok(svg) => (
            svg.replacen(
                "<svg ",
                &format!(
                    "<svg data-chart=\"{}\" data-points=\"{points}\" data-fault-fill=\"{}\" role=\"img\" aria-label=\"{}\" ",
                    spec.name,
                    hex(FAULT_FILL),
                    spec.title
                ),
                1,
            ),
            None,
        ),
        Err(e) => (String::new(), Some(e.to_string())),
    };
    Chart {
        name: spec.name,
        title: spec.title,
        svg,
        points,
        legend,
        error,
    }
}

fn render_svg(timeline: &Timeline, spec: &Spec) -> Result<String, Box<dyn Error>> {
    let height = if spec.label_events { TOP_HEIGHT } else { HEIGHT };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        plot(&root, timeline, spec)?;
        root.present()?;
    }
    Ok(svg)
}

fn plot(root: &DrawingArea<SVGBackend<'_>, Shift>, timeline: &Timeline, spec: &Spec) -> Result<(), Box<dyn Error>> {
    let x_max = (timeline.end as f64 / 1e6).max(0.001);
    let data_max = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(_, y)| *y))
        .fold(0.0f64, f64::max);
    let y_max = spec.y_max.unwrap_or((data_max * 1.15).max(1.0));
    let top = if spec.label_events { 14 + LABEL_LANES * LANE_HEIGHT } else { 12 };
    let mut chart = ChartBuilder::on(root)
        .margin_top(top)
        .margin_right(16)
        .margin_left(6)
        .margin_bottom(4)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    let y_format = |v: &f64| {
        if y_max < 10.0 { format!("{v:.1}") } else { format!("{v:.0}") }
    };
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(spec.y_desc)
        .x_labels(12)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&y_format)
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(AXIS)
        .label_style((FONT, 12).into_font().color(&AXIS))
        .axis_desc_style((FONT, 12).into_font().color(&AXIS))
        .draw()?;
    for window in &timeline.windows {
        let (from, to) = (window.from as f64 / 1e6, window.to as f64 / 1e6);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (to, y_max)],
            FAULT_FILL.mix(FAULT_OPACITY).filled(),
        )))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((from, 0.0)) + Text::new(window.label.clone(), (4, -16), (FONT, 12).into_font().color(&FAULT_FILL)),
        ))?;
    }
    for s in &spec.series {
        match s.shape {
            Shape::Area => {
                let points = s.points.iter().map(|&(x, y)| (x, y.unwrap_or(0.0)));
                chart.draw_series(AreaSeries::new(points, 0.0, s.color.mix(0.35)).border_style(s.color.stroke_width(1)))?;
            }
            Shape::Line => {
                for segment in segments(&s.points) {
                    chart.draw_series(LineSeries::new(segment, s.color.stroke_width(2)).point_size(3))?;
                }
            }
        }
    }
    draw_events(&mut chart, timeline, y_max, spec.label_events)?;
    if spec.name == "versions" {
        draw_marks(&mut chart, timeline, y_max)?;
    }
    Ok(())
}

/// Deployment steps across the share chart: a dark line where traffic
/// moved, a red one labelled where a bad canary was taken out.
fn draw_marks(chart: &mut Chart2d<'_, '_>, timeline: &Timeline, y_max: f64) -> Result<(), Box<dyn Error>> {
    for mark in &timeline.marks {
        let x = mark.at as f64 / 1e6;
        let abort = mark.label == "abort";
        let color = if abort { ERRORS } else { AXIS };
        chart.draw_series(LineSeries::new(
            [(x, 0.0), (x, y_max)],
            color.stroke_width(if abort { 2 } else { 1 }),
        ))?;
        if abort {
            let font = (FONT, 11).into_font().color(&ERRORS);
            chart.draw_series(std::iter::once(
                EmptyElement::at((x, y_max * 0.5)) + Text::new("abort", (3, 0), font),
            ))?;
        }
    }
    Ok(())
}

type Chart2d<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A faint vertical line per event; on the top chart a label too, in the
/// first lane where it does not overlap the previous label, and ending at
/// the line when it would run past the right edge.
fn draw_events(chart: &mut Chart2d<'_, '_>, timeline: &Timeline, y_max: f64, labels: bool) -> Result<(), Box<dyn Error>> {
    let right_edge = chart.backend_coord(&(timeline.end as f64 / 1e6, y_max)).0;
    let mut lane_ends = [i32::MIN; LABEL_LANES as usize];
    for event in &timeline.events {
        let x = event.at as f64 / 1e6;
        let color = event_color(event.kind);
        // Solid and faint rather than dashed: plotters draws a dash as a polyline each.
        chart.draw_series(LineSeries::new([(x, 0.0), (x, y_max)], color.mix(0.55).stroke_width(1)))?;
        if !labels {
            continue;
        }
        let text = format!("{}: {}", event.service, event.label);
        let px = chart.backend_coord(&(x, y_max)).0;
        // The naive width of sans-serif at 11 px: about 6 px a character.
        let width = text.chars().count() as i32 * 6 + 6;
        let flush_right = px + width > right_edge;
        let (left, right) = if flush_right { (px - width, px) } else { (px, px + width) };
        let Some(lane) = lane_ends.iter().position(|&end| end < left) else {
            continue; // still in the events table below the charts
        };
        lane_ends[lane] = right;
        let dy = -(LABEL_LANES - lane as i32) * LANE_HEIGHT - 4;
        let font = (FONT, 11).into_font().color(&color);
        let label = if flush_right {
            Text::new(text, (-2, dy), font.pos(Pos::new(HPos::Right, VPos::Top)))
        } else {
            Text::new(text, (2, dy), font)
        };
        chart.draw_series(std::iter::once(EmptyElement::at((x, y_max)) + label))?;
    }
    Ok(())
}

fn event_color(kind: EventKind) -> RGBColor {
    match kind {
        EventKind::Started => RGBColor(22, 163, 74),
        EventKind::Ready => RGBColor(14, 116, 144),
        EventKind::Signalled => RGBColor(185, 28, 28),
        EventKind::Exited => RGBColor(109, 40, 217),
    }
}

/// Runs of consecutive points that have a value.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        match y {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

pub(crate) fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample_report;
    use crate::timeline::timeline;

    #[test]
    fn segments_break_at_gaps() {
        let points = [(0.0, Some(1.0)), (1.0, None), (2.0, Some(2.0)), (3.0, Some(3.0)), (4.0, None)];
        assert_eq!(segments(&points), vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
        assert!(segments(&[(0.0, None)]).is_empty());
    }

    #[test]
    fn charts_hold_the_data_and_the_fault_window() {
        let report = sample_report();
        let t = timeline(&report.scenarios[0].history, 1_000);
        let charts = scenario_charts(&t);
        let names: Vec<_> = charts.iter().map(|c| c.name).collect();
        assert_eq!(names, ["throughput", "latency", "in-flight"]);
        for chart in &charts {
            assert!(chart.error.is_none(), "{:?}", chart.error);
            assert!(chart.svg.starts_with("<svg"), "{}", chart.name);
            assert!(chart.points > 0, "{}", chart.name);
            assert!(
                chart.svg.contains(&format!("fill=\"{}\"", hex(FAULT_FILL))),
                "{} has no fault window",
                chart.name
            );
        }
        // The top chart labels events, and plotters escapes their text.
        assert!(charts[0].svg.contains("app: started (pid 4242)"));
        assert!(charts[0].svg.contains("SIGTERM to app"));
        // 41 buckets: requests/s and errors/s at each.
        assert_eq!(charts[0].points, 2 * t.buckets.len());
    }

    #[test]
    fn a_second_version_adds_the_share_chart() {
        let mut report = sample_report();
        let history = &mut report.scenarios[0].history;
        history.versions.push("1.5.0".to_string());
        history.requests[1].version = 2;
        let charts = scenario_charts(&timeline(history, 1_000));
        let versions = charts.iter().find(|c| c.name == "versions").expect("versions chart");
        assert!(versions.points > 0);
        assert_eq!(versions.legend[0].label, "1.5.0");
    }
}
