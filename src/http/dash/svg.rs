//! Charts drawn on the server as inline SVG: no JavaScript, no `style=` (the CSP forbids inline styles), only
//! presentation attributes and the stylesheet's `.chart`, `.bar` and `.axis` classes. Geometry is integer
//! arithmetic on the values (money stays in minor units). A chart is one image to assistive technology
//! (`role="img"` with its summary as label and `<title>`); pages show the numbers themselves beside it.

use maud::{Markup, html};

/// One bar: what it stands for (`12-05`), its value, and the text its tooltip shows (`2026-12-05: $12.50`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub label: String,
    pub value: i64,
    pub text: String,
}

const WIDTH: i64 = 600;
const HEIGHT: i64 = 160;
const PAD_X: i64 = 8;
const TOP: i64 = 18;
const BOTTOM: i64 = 20;

/// Where a bar sits: `(x, y, width, height)` in the chart's coordinates; `None` for a bar of no height.
fn geometry(index: usize, count: usize, value: i64, max: i64) -> Option<(i64, i64, i64, i64)> {
    let count = i64::try_from(count.max(1)).unwrap_or(1);
    let index = i64::try_from(index).unwrap_or(0);
    let plot_w = WIDTH - 2 * PAD_X;
    let plot_h = HEIGHT - TOP - BOTTOM;
    if value <= 0 || max <= 0 {
        return None;
    }
    let slot = plot_w / count;
    let width = (slot * 3 / 4).max(1);
    let x = PAD_X + index * slot + (slot - width) / 2;
    // at least one unit tall, so a small day next to a big one is still seen
    let height = i64::try_from((i128::from(value) * i128::from(plot_h) / i128::from(max)).max(1)).unwrap_or(plot_h);
    Some((x, TOP + plot_h - height, width, height))
}

/// A bar chart of `points` (oldest first), labelled with `summary`; `top` names the tallest bar's value.
pub fn bars(summary: &str, points: &[Point], top: &str) -> Markup {
    let max = points.iter().map(|p| p.value).max().unwrap_or(0);
    let baseline = HEIGHT - BOTTOM;
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img" aria-label=(summary)
            direction="ltr" preserveAspectRatio="xMidYMid meet" {
            title { (summary) }
            line.axis x1=(PAD_X) y1=(baseline) x2=(WIDTH - PAD_X) y2=(baseline) stroke-width="1" {}
            line.axis x1=(PAD_X) y1=(TOP) x2=(WIDTH - PAD_X) y2=(TOP) stroke-width="1" stroke-dasharray="4 4" {}
            text x=(PAD_X) y=(TOP - 5) text-anchor="start" { (top) }
            @for (i, p) in points.iter().enumerate() {
                @if let Some((x, y, w, h)) = geometry(i, points.len(), p.value, max) {
                    rect.bar x=(x) y=(y) width=(w) height=(h) { title { (p.text) } }
                }
            }
            @if let (Some(first), Some(last)) = (points.first(), points.last()) {
                text x=(PAD_X) y=(HEIGHT - 5) text-anchor="start" { (first.label) }
                text x=(WIDTH - PAD_X) y=(HEIGHT - 5) text-anchor="end" { (last.label) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: i64) -> Point {
        Point { label: format!("d{value}"), value, text: format!("value {value}") }
    }

    #[test]
    fn the_tallest_bar_fills_the_plot_and_empty_days_draw_nothing() {
        let plot_h = HEIGHT - TOP - BOTTOM;
        assert_eq!(geometry(0, 30, 500, 500).map(|g| g.3), Some(plot_h));
        assert_eq!(geometry(1, 30, 250, 500).map(|g| g.3), Some(plot_h / 2));
        assert_eq!(geometry(2, 30, 0, 500), None);
        assert_eq!(geometry(3, 30, 1, i64::MAX).map(|g| g.3), Some(1), "a tiny value is still seen");
        let last = geometry(29, 30, 1, 1).unwrap();
        assert!(last.0 + last.2 <= WIDTH - PAD_X, "bars stay inside the chart: {last:?}");
    }

    #[test]
    fn a_chart_is_an_image_with_a_summary_and_no_inline_style() {
        let svg = bars("Orders per day", &[point(0), point(3), point(1)], "3").into_string();
        assert!(svg.contains(r#"role="img""#) && svg.contains(r#"aria-label="Orders per day""#), "{svg}");
        assert!(svg.contains("<title>Orders per day</title>"), "{svg}");
        assert_eq!(svg.matches(r#"<rect class="bar""#).count(), 2, "{svg}");
        assert!(svg.contains("<title>value 3</title>"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
        let text = bars("<x>", &[point(1)], "1").into_string();
        assert!(text.contains("&lt;x&gt;") && !text.contains("<x>"), "text is escaped: {text}");
    }
}
