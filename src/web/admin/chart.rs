//! Charts as inline SVG, drawn on the server: stacked columns (counts over time, one colour
//! per kind) and horizontal bars (a rate per row). Integer arithmetic throughout; each chart
//! carries a text equivalent for screen readers.

use maud::{html, Markup};

/// One column of a stacked chart: its label and a count per series (in `series` order).
pub struct Column {
    pub label: String,
    pub counts: Vec<i64>,
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 220;
const LEFT: i64 = 40;
const BOTTOM: i64 = 24;

/// Stacked columns: `series` names each count of a column, with its CSS class (its colour).
pub fn stacked(title: &str, series: &[(&str, &str)], columns: &[Column]) -> Markup {
    let top = columns
        .iter()
        .map(|c| c.counts.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = HEIGHT - BOTTOM - 8;
    let n = columns.len().max(1) as i64;
    let slot = (WIDTH - LEFT) / n;
    let bar = (slot * 3 / 4).max(1);
    let total: Vec<i64> = (0..series.len())
        .map(|i| {
            columns
                .iter()
                .map(|c| c.counts.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let summary = series
        .iter()
        .zip(&total)
        .map(|((name, _), t)| format!("{name} {t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rects = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let x = LEFT + i as i64 * slot + (slot - bar) / 2;
        let mut base = HEIGHT - BOTTOM;
        for (count, (name, class)) in column.counts.iter().zip(series) {
            if *count > 0 {
                let h = (count * plot_h / top).max(1);
                base -= h;
                rects.push(Rect {
                    class,
                    x,
                    y: base,
                    h,
                    title: format!("{} {name}: {count}", column.label),
                });
            }
        }
    }
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label={ (title) ": " (summary) } {
                title { (title) }
                line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
                text.tick x="0" y="14" { (top) }
                text.tick x="0" y=(HEIGHT - BOTTOM) { "0" }
                @for r in &rects {
                    rect class=(r.class) x=(r.x) y=(r.y) width=(bar) height=(r.h) { title { (r.title) } }
                }
                @for (i, column) in columns.iter().enumerate() {
                    @if i % label_every(columns.len()) == 0 {
                        text.tick x=(LEFT + i as i64 * slot + (slot - bar) / 2) y=(HEIGHT - 6) { (column.label) }
                    }
                }
            }
            figcaption {
                (title) ": "
                @for ((name, class), t) in series.iter().zip(&total) {
                    span.key { span class={ "swatch " (class) } {} (name) " " (t) } " "
                }
            }
        }
    }
}

struct Rect<'a> {
    class: &'a str,
    x: i64,
    y: i64,
    h: i64,
    title: String,
}

/// Every how many columns a label is written, so about ten fit.
fn label_every(columns: usize) -> usize {
    columns.div_ceil(10).max(1)
}

/// One row of a bar chart: its label, the rate in permille, and the text beside the bar.
pub struct Bar {
    pub label: String,
    pub permille: i64,
    pub text: String,
}

/// Horizontal bars, one per row, each as long as its rate.
pub fn bars(title: &str, rows: &[Bar]) -> Markup {
    let row_h = 28;
    let height = (rows.len() as i64 * row_h).max(row_h);
    let label_w = 200;
    let bar_w = WIDTH - label_w - 140;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label=(title) {
                title { (title) }
                @for (i, row) in rows.iter().enumerate() {
                    @let y = i as i64 * row_h;
                    text.label x="0" y=(y + 18) { (row.label) }
                    rect.track x=(label_w) y=(y + 6) width=(bar_w) height="16" {}
                    rect.fill x=(label_w) y=(y + 6) width=(row.permille.clamp(0, 1000) * bar_w / 1000) height="16" {}
                    text.value x=(label_w + bar_w + 8) y=(y + 18) { (row.text) }
                }
            }
            figcaption {
                (title) ": "
                @for row in rows { (row.label) " " (row.text) "; " }
            }
        }
    }
}

/// `part` of `whole` as permille, and as text with one decimal: `973`, `97.3%`.
pub fn rate(part: i64, whole: i64) -> (i64, String) {
    if whole <= 0 {
        return (0, "n/a".into());
    }
    let permille = part * 1000 / whole;
    (permille, format!("{}.{}%", permille / 10, permille % 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_permille_rounded_down() {
        assert_eq!(rate(1, 3), (333, "33.3%".to_string()));
        assert_eq!(rate(5, 5), (1000, "100.0%".to_string()));
        assert_eq!(rate(0, 0), (0, "n/a".to_string()));
    }

    #[test]
    fn columns_stack_and_say_their_totals() {
        let svg = stacked(
            "Checkouts",
            &[("confirmed", "ok"), ("expired", "bad")],
            &[
                Column {
                    label: "10:00".into(),
                    counts: vec![3, 1],
                },
                Column {
                    label: "10:01".into(),
                    counts: vec![0, 2],
                },
            ],
        )
        .into_string();
        assert!(svg.contains("confirmed 3, expired 3"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }
}
