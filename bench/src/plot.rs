//! Charts as PNG: grouped (optionally two-part stacked) bars, one panel per metric, drawn with
//! plotters' bitmap backend. Text is rasterized here with ab_glyph from the DejaVu Sans file
//! shipped in `bench/assets`, so no system font library is needed. This module only draws
//! what it is given; choosing figures (medians, units) is the callers' job.

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _, point};
use anyhow::Context as _;
use plotters::prelude::*;
use std::path::Path;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// One bar: a lower part and an optional upper part stacked on it (e.g. transfer + load).
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    pub lower: f64,
    pub upper: f64,
}

/// One panel: `values[series][group]`.
pub struct Panel {
    pub title: String,
    pub groups: Vec<String>,
    pub series: Vec<String>,
    pub values: Vec<Vec<Bar>>,
    /// Legend names of the two parts when bars are stacked.
    pub parts: Option<(String, String)>,
    /// How a bar's total is printed above it.
    pub label: fn(f64) -> String,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A round step of about `max / 5`: 1, 2 or 5 times a power of ten.
pub fn tick_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws `s` with its baseline-left at (x, y), or centered on x when `center`.
fn text(area: &Area, font: &FontRef, s: &str, (x, y): (i32, i32), px: f32, center: bool) {
    let scaled = font.as_scaled(PxScale::from(px));
    let width: f32 = s.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum();
    let mut pen = if center {
        x as f32 - width / 2.0
    } else {
        x as f32
    };
    for c in s.chars() {
        let id = font.glyph_id(c);
        let glyph = id.with_scale_and_position(PxScale::from(px), point(pen, y as f32));
        if let Some(outlined) = font.outline_glyph(glyph) {
            let b = outlined.px_bounds();
            outlined.draw(|gx, gy, cov| {
                if cov > 0.05 {
                    let p = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                    let _ = area.draw_pixel(p, &BLACK.mix(f64::from(cov.min(1.0))));
                }
            });
        }
        pen += scaled.h_advance(id);
    }
}

fn panel(area: &Area, font: &FontRef, p: &Panel) -> anyhow::Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let (left, right, top, bottom) = (70, 20, 60, 50);
    text(area, font, &p.title, (w / 2, 28), 17.0, true);
    let max = p
        .values
        .iter()
        .flatten()
        .map(|b| b.lower + b.upper)
        .fold(0.0, f64::max);
    let step = tick_step(max);
    let top_value = (max / step).ceil().max(1.0) * step;
    let y_of = |v: f64| h - bottom - ((v / top_value) * f64::from(h - top - bottom)) as i32;
    // Axes and grid.
    let mut v = 0.0;
    while v <= top_value + step / 2.0 {
        let y = y_of(v);
        area.draw(&PathElement::new(
            vec![(left, y), (w - right, y)],
            RGBColor(225, 225, 225),
        ))?;
        text(
            area,
            font,
            &(p.label)(v),
            (left - 8 - 30, y + 5),
            12.0,
            false,
        );
        v += step;
    }
    area.draw(&PathElement::new(
        vec![
            (left, top - 10),
            (left, h - bottom),
            (w - right, h - bottom),
        ],
        BLACK,
    ))?;
    let groups = p.groups.len().max(1) as i32;
    let series = p.series.len().max(1) as i32;
    let group_w = (w - left - right) / groups;
    let bar_w = (group_w * 3 / 4) / series;
    for (g, name) in p.groups.iter().enumerate() {
        let gx = left + g as i32 * group_w + group_w / 8;
        text(
            area,
            font,
            name,
            (gx + bar_w * series / 2, h - bottom + 22),
            14.0,
            true,
        );
        for (s, values) in p.values.iter().enumerate() {
            let Some(b) = values.get(g) else { continue };
            let x0 = gx + s as i32 * bar_w;
            let color = COLORS[s % COLORS.len()];
            let y_lower = y_of(b.lower);
            let y_total = y_of(b.lower + b.upper);
            area.draw(&Rectangle::new(
                [(x0 + 2, y_lower), (x0 + bar_w - 2, h - bottom)],
                color.filled(),
            ))?;
            if b.upper > 0.0 {
                area.draw(&Rectangle::new(
                    [(x0 + 2, y_total), (x0 + bar_w - 2, y_lower)],
                    color.mix(0.45).filled(),
                ))?;
            }
            let label = (p.label)(b.lower + b.upper);
            text(
                area,
                font,
                &label,
                (x0 + bar_w / 2, y_total - 5),
                12.0,
                true,
            );
        }
    }
    // Legend: series colors, then the stacked parts.
    let mut lx = left + 10;
    for (s, name) in p.series.iter().enumerate() {
        area.draw(&Rectangle::new(
            [(lx, 40), (lx + 12, 52)],
            COLORS[s % COLORS.len()].filled(),
        ))?;
        text(area, font, name, (lx + 16, 51), 12.0, false);
        lx += 30 + 8 * name.len() as i32;
    }
    if let Some((lower, upper)) = &p.parts {
        text(
            area,
            font,
            &format!("solid: {lower}, light: {upper}"),
            (lx + 10, 51),
            12.0,
            false,
        );
    }
    Ok(())
}

/// Renders `panels` side by side under `title`.
pub fn render(path: &Path, title: &str, panels: &[Panel]) -> anyhow::Result<()> {
    let font = FontRef::try_from_slice(FONT).context("the bundled font does not parse")?;
    let width = 520 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    text(&root, &font, title, (width as i32 / 2, 22), 19.0, true);
    let (_, body) = root.split_vertically(32);
    for (area, p) in body
        .split_evenly((1, panels.len().max(1)))
        .iter()
        .zip(panels)
    {
        panel(area, &font, p)?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `512 MiB`, `4.0 GiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.0} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_are_round() {
        assert_eq!(super::tick_step(10.0), 2.0);
        assert_eq!(super::tick_step(37.0), 10.0);
        assert_eq!(super::tick_step(0.9), 0.2);
        assert_eq!(super::tick_step(0.0), 1.0);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(super::human(512 << 20), "512 MiB");
        assert_eq!(super::human(4 << 30), "4.0 GiB");
    }
}
