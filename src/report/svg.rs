//! Small SVG charts for the HTML report and `--plot`: line charts (linear or the HdrHistogram
//! percentile axis) and bar charts. Hand-written on purpose: a charting crate would need a font
//! backend (and a font file shipped) just to measure axis labels; SVG `<text>` needs neither.

use std::fmt::Write as _;

/// One named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// How the x axis is labelled.
pub enum XAxis<'a> {
    /// Plain numbers with this unit name.
    Linear(&'a str),
    /// x = log10(1 / (1 - q)): 90% sits at 1, 99% at 2, 99.9% at 3 (HdrHistogram's plots).
    Percentile,
}

const W: f64 = 720.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 44.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step for a range: 1, 2 or 5 times a power of ten.
fn step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() < 1e4 {
        format!("{v:.0}")
    } else if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

struct Frame {
    svg: String,
    x0: f64,
    x1: f64,
    y1: f64,
}

impl Frame {
    fn new(title: &str, y_label: &str, x0: f64, x1: f64, y1: f64, standalone: bool) -> Frame {
        let mut svg = String::new();
        let ns = if standalone {
            r#" xmlns="http://www.w3.org/2000/svg""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r#"<svg{ns} viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11" role="img"><title>{t}</title><rect width="{W}" height="{H}" fill="white"/><text x="{cx}" y="20" text-anchor="middle" font-size="14">{t}</text><text x="14" y="{cy}" transform="rotate(-90 14 {cy})" text-anchor="middle">{yl}</text>"#,
            t = esc(title),
            cx = W / 2.0,
            cy = (TOP + H - BOTTOM) / 2.0,
            yl = esc(y_label),
        );
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let y1 = if y1 > 0.0 { y1 * 1.05 } else { 1.0 };
        let f = Frame { svg, x0, x1, y1 };
        let mut f = f;
        let ystep = step(f.y1, 5.0);
        let mut y = 0.0;
        while y <= f.y1 + 1e-9 {
            let py = f.py(y);
            let _ = write!(
                f.svg,
                r##"<line x1="{LEFT}" x2="{xr}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{lx}" y="{ty:.1}" text-anchor="end">{l}</text>"##,
                xr = W - RIGHT,
                lx = LEFT - 6.0,
                ty = py + 4.0,
                l = label(y)
            );
            y += ystep;
        }
        f
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - y / self.y1 * (H - TOP - BOTTOM)
    }

    /// A labelled x position; `grid` draws a guide line up the chart (not through bars).
    fn x_tick(&mut self, x: f64, text: &str, grid: bool) {
        let px = self.px(x);
        if grid {
            let _ = write!(
                self.svg,
                r##"<line x1="{px:.1}" x2="{px:.1}" y1="{t}" y2="{b}" stroke="#eee"/>"##,
                t = TOP,
                b = H - BOTTOM
            );
        }
        let _ = write!(
            self.svg,
            r#"<text x="{px:.1}" y="{ly}" text-anchor="middle">{l}</text>"#,
            ly = H - BOTTOM + 16.0,
            l = esc(text)
        );
    }

    fn finish(mut self, x_label: &str, legend: &[(&str, &str)]) -> String {
        let _ = write!(
            self.svg,
            r##"<line x1="{LEFT}" x2="{xr}" y1="{b}" y2="{b}" stroke="#333"/><text x="{cx}" y="{ly}" text-anchor="middle">{xl}</text>"##,
            xr = W - RIGHT,
            b = H - BOTTOM,
            cx = (LEFT + W - RIGHT) / 2.0,
            ly = H - 8.0,
            xl = esc(x_label)
        );
        for (i, (name, color)) in legend.iter().enumerate() {
            let x = LEFT + 10.0 + i as f64 * 150.0;
            let _ = write!(
                self.svg,
                r#"<rect x="{x}" y="{y}" width="12" height="4" fill="{color}"/><text x="{tx}" y="{ty}">{n}</text>"#,
                y = TOP - 2.0,
                tx = x + 16.0,
                ty = TOP + 3.0,
                n = esc(name)
            );
        }
        self.svg.push_str("</svg>");
        self.svg
    }
}

/// A line chart. `standalone` adds the SVG namespace for a file of its own (inline SVG in
/// HTML needs none, and the HTML report stays free of any http reference).
pub fn line_chart(
    title: &str,
    x_axis: XAxis<'_>,
    y_label: &str,
    series: &[Series<'_>],
    standalone: bool,
) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for (x, y) in all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if let XAxis::Percentile = x_axis {
        x0 = 0.0;
    }
    let mut f = Frame::new(title, y_label, x0, x1, y1, standalone);
    let x_label = match x_axis {
        XAxis::Percentile => {
            for (k, name) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
                .iter()
                .enumerate()
            {
                if k as f64 <= f.x1 + 1e-9 {
                    f.x_tick(k as f64, name, true);
                }
            }
            "percentile"
        }
        XAxis::Linear(unit) => {
            // Seconds are whole: no tick between two of them.
            let s = match unit {
                "second" => step(f.x1 - f.x0, 8.0).max(1.0),
                _ => step(f.x1 - f.x0, 8.0),
            };
            let mut x = (f.x0 / s).ceil() * s;
            while x <= f.x1 + 1e-9 {
                f.x_tick(x, &label(x), true);
                x += s;
            }
            unit
        }
    };
    for s in series {
        let mut d = String::new();
        for (i, (x, y)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                f.px(*x),
                f.py(*y)
            );
        }
        let _ = write!(
            f.svg,
            r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.8"><title>{n}</title></path>"#,
            c = s.color,
            n = esc(s.name)
        );
    }
    let legend: Vec<_> = series.iter().map(|s| (s.name, s.color)).collect();
    f.finish(x_label, &legend)
}

/// A bar chart of one value per label.
pub fn bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    bars: &[(String, f64)],
    color: &str,
) -> String {
    let y1 = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let n = bars.len().max(1) as f64;
    let mut f = Frame::new(title, y_label, 0.0, n, y1, false);
    let width = (W - LEFT - RIGHT) / n;
    let every = (bars.len() / 16).max(1);
    for (i, (name, v)) in bars.iter().enumerate() {
        let x = f.px(i as f64);
        let y = f.py(*v);
        let _ = write!(
            f.svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"><title>{n}: {v:.1}</title></rect>"#,
            w = (width * 0.8).max(0.5),
            h = (H - BOTTOM - y).max(0.0),
            n = esc(name)
        );
        if i % every == 0 {
            f.x_tick(i as f64 + 0.4, name, false);
        }
    }
    f.finish(x_label, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_timeline_is_labelled_in_whole_seconds() {
        let points = vec![(0.0, 10.0), (1.0, 12.0), (2.0, 11.0)];
        let svg = line_chart(
            "t",
            XAxis::Linear("second"),
            "req/s",
            &[Series {
                name: "ok",
                color: "#000",
                points,
            }],
            false,
        );
        assert!(!svg.contains(">0.50<") && !svg.contains(">1.50<"), "{svg}");
        assert!(svg.contains(">1<") && svg.contains(">2<"), "{svg}");
    }

    #[test]
    fn charts_hold_their_series_and_escape_text() {
        let svg = line_chart(
            "a <b>",
            XAxis::Linear("s"),
            "ms",
            &[Series {
                name: "p99",
                color: "#c00",
                points: vec![(0.0, 1.0), (1.0, 2.0)],
            }],
            true,
        );
        assert!(svg.starts_with("<svg xmlns") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("<title>p99</title>"));
        let inline = bar_chart("bars", "conn", "req/s", &[("0".into(), 3.0)], "#36c");
        assert!(!inline.contains("http"));
        assert_eq!(step(100.0, 5.0), 20.0);
    }
}
